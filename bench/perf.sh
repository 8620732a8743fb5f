#!/usr/bin/env bash
# Performance benchmark: blogql (release, embedded store, default settings but
# the sign-up limit) pinned to core 0, the calibration server pinned to core 0
# when its turn comes, wrk on core 1. Seeds through the public mutations, then
# prints req/s, p50/p99 and blogql / calibration for four query shapes (the
# fourth as Apollo Client sends it: named fragments, `__typename` everywhere),
# a write mix, createPost against fan-out, and blogql's peak RSS.
#   bash bench/perf.sh        (DURATION=5s ROUNDS=3 FAN_OUT=10000 BLOGQL_BIN=path BENCH_RUST_LOG=filter to change)
#   BENCH_OTLP_SAMPLE=1 or 0.01: export traces at that ratio to a discarding receiver (bench/otlp_sink.py) on core 1
# Each table cell is the median of ROUNDS runs, blogql and the calibration alternating.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }
[ -n "${BLOGQL_BIN:-}" ] || cargo build --release --quiet
cargo build --release --quiet --manifest-path bench/calibration/Cargo.toml
bin=${BLOGQL_BIN:-target/release/blogql}   # another build to compare, e.g. an older commit's (not rebuilt)
data=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
bport=$(free_port); cport=$(free_port)
sink=""
if [ -n "${BENCH_OTLP_SAMPLE:-}" ]; then
    sport=$(free_port)
    taskset -c 1 python3 bench/otlp_sink.py "$sport" &
    sink=$!
    export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sport" OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG="$BENCH_OTLP_SAMPLE"
    echo "exporting traces at ratio $BENCH_OTLP_SAMPLE to a discarding OTLP receiver"
fi
BLOGQL_JWT_SECRET=bench-secret-0123456789abcdef RUST_LOG=${BENCH_RUST_LOG:-warn} taskset -c 0 "$bin" serve \
    --data-dir "$data" --bind "127.0.0.1:$bport" --signups-per-ip-per-minute 1000000 \
    --writes-per-user-per-minute 1000000000 --write-bytes-per-user-per-minute 4000000000 &
blogql=$!
taskset -c 0 bench/calibration/target/release/calibration "127.0.0.1:$cport" &
calibration=$!
trap 'kill $blogql $calibration $sink 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$bport/healthz" >/dev/null && break; sleep 0.1; done
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
BENCH_DATA_DIR="$data" python3 bench/perf.py "$bport" "$cport" "$blogql"
