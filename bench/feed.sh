#!/usr/bin/env bash
# Feed benchmark (issue 19): 5,000 authors with 5 posts each (seeded with
# `blogql seed`), readers following 10, 100, 1,000 and 5,000 of them (per
# size one following the oldest accounts, the worst case, and one following
# accounts spread over the seed; see bench/feed.py); wrk runs `feed(first: 20)` with author names as each reader, and
# `posts(first: 20)` of the same shape, at 1 and 32 connections. Release
# build, embedded store, blogql pinned to core 0 and wrk to core 1.
#   bash bench/feed.sh        (DURATION=5s AUTHORS=5000 BLOGQL_BIN=path to change;
#                              PROFILE=1000 [KIND=spread] profiles that reader's feed instead)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }
cargo build --release --quiet
bin=${BLOGQL_BIN:-target/release/blogql}
data=$(mktemp -d)
export BLOGQL_JWT_SECRET=bench-secret-0123456789abcdef
authors=${AUTHORS:-5000}
"$bin" seed --data-dir "$data" --users "$authors" --posts-per-user 5 --comments-per-post 0 --likes-per-post 0 \
    --follows-per-user 0 --tokens-out "$data/tokens.txt" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn taskset -c 0 "$bin" serve --data-dir "$data" --bind "127.0.0.1:$port" \
    --signups-per-ip-per-minute 1000000 --writes-per-user-per-minute 1000000000 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
python3 bench/feed.py "$port" "$data/tokens.txt" "$server"
