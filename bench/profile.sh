#!/usr/bin/env bash
# Profiles blogql under one query shape: release build (symbols kept), server
# pinned to core 0 and seeded like bench/perf.sh, wrk on core 1 for DURATION,
# `perf record` on the server meanwhile; prints perf's top entries.
#   bash bench/profile.sh nested      (a shape of bench/perf.py; BLOGQL_BIN, DURATION, CONNECTIONS)
#   bash bench/profile.sh writes      (perf.sh's write mix: createPost, createComment, likePost)
#   PERF_CALL_GRAPH="--call-graph dwarf,32768" records whole stacks (default -g: frame pointers)
set -euo pipefail
cd "$(dirname "$0")/.."
shape=${1:-nested}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
command -v perf >/dev/null || { echo "perf is not installed (Debian: linux-perf)"; exit 1; }
[ -n "${BLOGQL_BIN:-}" ] || cargo build --release --quiet
bin=${BLOGQL_BIN:-target/release/blogql}
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BLOGQL_JWT_SECRET=bench-secret-0123456789abcdef RUST_LOG=warn taskset -c 0 "$bin" serve \
    --data-dir "$data" --bind "127.0.0.1:$port" --signups-per-ip-per-minute 1000000 \
    --writes-per-user-per-minute 1000000000 --write-bytes-per-user-per-minute 4000000000 &
server=$!
# KEEP_PERF=path keeps the recording for `perf report -i path`.
trap 'kill $server 2>/dev/null || true; [ -z "${KEEP_PERF:-}" ] || cp "$data/perf.data" "$KEEP_PERF"; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
body=$(mktemp --suffix=.json)
python3 - "$port" "$shape" "$body" <<'PY'
import json, sys
sys.path.insert(0, "bench")
import perf
port, shape, body = int(sys.argv[1]), sys.argv[2], sys.argv[3]
tokens, posts, _ = perf.seed(port)
if shape == "writes":
    perf.write_accounts(body, tokens, posts)
else:
    json.dump({"query": perf.SHAPES[shape]}, open(body, "w"))
PY
if [ "$shape" = writes ]; then export ACCOUNTS=$body; else export BODY_FILE=$body; fi
perf record -F 999 ${PERF_CALL_GRAPH:--g} -p "$server" -o "$data/perf.data" -- sleep "${DURATION%s}" >/dev/null 2>&1 &
recorder=$!
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s bench/graphql.lua "http://127.0.0.1:$port/graphql" | grep Requests/sec
wait $recorder || true
perf report -i "$data/perf.data" --no-children --stdio --percent-limit 1.5 2>/dev/null | grep -E '^ +[0-9.]+%' | head -25
