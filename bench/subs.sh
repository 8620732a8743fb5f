#!/usr/bin/env bash
# Subscription benchmark: blogql (release, embedded store) pinned to core 0,
# the client (bench/subs.rs, built as the `subs` example) and wrk on core 1.
# Reports RSS per idle socket and per idle subscription (1,000 sockets,
# 10,000 subscriptions), commit-to-delivery p50/p99 with 1, 100 and 1,000
# subscribers on one post, and the write mix with and without 1,000
# subscribers attached.
#   bash bench/subs.sh        (COMMENTS=50 DURATION=5s BLOGQL_BIN=path to change)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }
# 1,000 sockets on each side, with room to spare.
ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet
cargo build --release --quiet --example subs
bin=${BLOGQL_BIN:-target/release/blogql}
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Every client is 127.0.0.1: the per-address limits are raised so 1,000 sockets fit.
BLOGQL_JWT_SECRET=bench-secret-0123456789abcdef RUST_LOG=warn taskset -c 0 "$bin" serve \
    --data-dir "$data" --bind "127.0.0.1:$port" --signups-per-ip-per-minute 1000000 \
    --writes-per-user-per-minute 1000000000 --write-bytes-per-user-per-minute 4000000000 \
    --max-connections 4096 --max-connections-per-ip 4096 &
blogql=$!
trap 'kill $blogql 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
BASE="http://127.0.0.1:$port" PID=$blogql taskset -c 1 target/release/examples/subs
echo "blogql peak RSS (VmHWM): $(awk '/VmHWM/ {print int($2/1024)}' /proc/$blogql/status) MiB"
