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
# bare async-graphql + axum, no auth), measured in the same rounds.
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

# One server per build, each with one signed-up account.
ports=()
tokens=()
for bin in "$@"; do
    data=$(mktemp -d)
    dirs+=("$data")
    port=$(free_port)
    BLOGQL_ANSWER_CACHE_MIB=0 BLOGQL_JWT_SECRET=bench-secret-0123456789abcdef RUST_LOG=warn taskset -c 0 "$bin" serve \
        --data-dir "$data" --bind "127.0.0.1:$port" &
    pids+=($!)
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
    ports+=("$port")
    tokens+=("$(python3 -c "import sys; sys.path.insert(0, 'bench'); import perf; print(perf.sign_up(perf.Client($port), 0))")")
done
cport=$(free_port)
taskset -c 0 bench/calibration/target/release/calibration "127.0.0.1:$cport" &
pids+=($!)
sleep 0.5

bodies=$(mktemp -d)
dirs+=("$bodies")
python3 - "$bodies" <<'PY'
import json, sys
for name, query in [("typename", "{ __typename }"), ("viewer", "{ viewer { id } }")]:
    with open(f"{sys.argv[1]}/{name}.json", "w") as f:
        json.dump({"query": query}, f)
PY

# Runs wrk once: port, body name, token (may be empty); prints req/s.
run() {
    TOKEN=$3 BODY_FILE="$bodies/$2.json" taskset -c 1 wrk -t1 -c32 -d"${DURATION:-4s}" -s bench/graphql.lua \
        "http://127.0.0.1:$1/graphql" | awk '/Requests\/sec/ {print $2}'
}

declare -A runs
for round in $(seq 1 "${ROUNDS:-3}"); do
    for i in "${!ports[@]}"; do
        runs[$i,anon]+=" $(run "${ports[$i]}" typename "")"
        runs[$i,signed]+=" $(run "${ports[$i]}" typename "${tokens[$i]}")"
        runs[$i,viewer]+=" $(run "${ports[$i]}" viewer "${tokens[$i]}")"
    done
    runs[calibration]+=" $(run "$cport" typename "")"
    echo "  measured round $round of ${ROUNDS:-3}" >&2
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {printf "%.0f", v[int((NR+1)/2)]}'; }
echo "| build | anonymous { __typename } | signed in { __typename } | signed in { viewer { id } } |"
echo "| --- | --- | --- | --- |"
for i in "${!ports[@]}"; do
    bin=("$@")
    echo "| ${bin[$i]} | $(echo "${runs[$i,anon]}" | median) | $(echo "${runs[$i,signed]}" | median) | $(echo "${runs[$i,viewer]}" | median) |"
done
echo "calibration (bare async-graphql, anonymous { __typename }): $(echo "${runs[calibration]}" | median) req/s"
