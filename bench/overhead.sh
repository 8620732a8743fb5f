#!/usr/bin/env bash
# Per-request overhead: what HTTP, GraphQL and the token check cost when a
# request does almost nothing else, which is where a write's or a small
# signed-in query's time goes besides its own work. blogql (release, embedded
# store, default settings but the answer cache, off so that every request
# runs) pinned to core 0, wrk on core 1 at 32 connections. Prints the median
# req/s of ROUNDS alternating runs of:
#   anonymous   { __typename }
#   signed in   { __typename }            (the token check, nothing to load)
#   signed in   { viewer { id } }         (the token check and the account read)
# for each build, and anonymous { __typename } on the calibration server (a
# bare async-graphql + axum, no auth), measured in the same rounds, and any
# answer that carried GraphQL errors (bench/overhead.py drives the runs).
#   bash bench/overhead.sh                  this tree, built in release
#   bash bench/overhead.sh OLD_BIN NEW_BIN  builds to compare (not rebuilt)
#   DURATION=4s ROUNDS=3 to change the runs
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }
if [ $# -eq 0 ]; then
    cargo build --release --quiet
    set -- target/release/blogql
fi
cargo build --release --quiet --manifest-path bench/calibration/Cargo.toml
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
dirs=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "${dirs[@]}"' EXIT

# One server per build.
builds=()
for bin in "$@"; do
    data=$(mktemp -d)
    dirs+=("$data")
    port=$(free_port)
    BLOGQL_ANSWER_CACHE_MIB=0 BLOGQL_JWT_SECRET=bench-secret-0123456789abcdef RUST_LOG=warn taskset -c 0 "$bin" serve \
        --data-dir "$data" --bind "127.0.0.1:$port" &
    pids+=($!)
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
    builds+=("$bin=$port")
done
cport=$(free_port)
taskset -c 0 bench/calibration/target/release/calibration "127.0.0.1:$cport" &
pids+=($!)
sleep 0.5
DURATION=${DURATION:-4s} python3 bench/overhead.py "$cport" "${builds[@]}"
