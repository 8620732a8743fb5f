#!/usr/bin/env bash
# Load benchmark: seed thousands of users and posts, hold 64 connections of mixed
# reads and writes (deletes included) for 60 s against a release build, then
# report req/s, latency percentiles, errors and peak RSS, and run `blogql check`.
#   bash bench/load.sh            (DURATION=60s CONNECTIONS=64 USERS=2000 POSTS=5 BLOGQL_BIN=path to change)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-60s}
CONNECTIONS=${CONNECTIONS:-64}
USERS=${USERS:-2000}
POSTS=${POSTS:-5}
PORT=${PORT:-18080}

command -v wrk >/dev/null || { apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }
[ -n "${BLOGQL_BIN:-}" ] || cargo build --release --quiet
bin=${BLOGQL_BIN:-target/release/blogql}   # another build, e.g. one copied aside (not rebuilt)
data=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
export BLOGQL_JWT_SECRET=${BLOGQL_JWT_SECRET:-load-test-secret-0123456789abcdef}

"$bin" seed --data-dir "$data" --users "$USERS" --posts-per-user "$POSTS" --comments-per-post 2 \
    --likes-per-post 2 --follows-per-user 5 --tokens-out "$data/tokens.txt"
RUST_LOG=warn "$bin" serve --data-dir "$data" --bind "127.0.0.1:$PORT" \
    --writes-per-user-per-minute 1000000000 --write-bytes-per-user-per-minute 4000000000 &
server=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")

TOKENS="$data/tokens.txt" wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/mixed.lua "http://127.0.0.1:$PORT" | tee "$data/wrk.txt"

peak=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
echo "RSS: $((rss_before / 1024)) MiB after seeding and start, peak $((peak / 1024)) MiB under load"
kill -TERM "$server"; wait "$server" || true
"$bin" check --data-dir "$data"
