#!/usr/bin/env bash
# A long run of `oodscope serve` on 127.0.0.1: REQUESTS requests (default 100000) at concurrency 1,
# 8 and 64 with the load generator (`oodscope-bench serve-load`, one PNG per request, binary data),
# the server's resident size (VmRSS) printed after the warm-up and after each level, and its
# error counters at the end. Any transport error or non-200 answer fails the load generator.
#   scripts/bench_serve_soak.sh [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
REQUESTS=${1:-100000}
cargo build --release -p oodscope -p oodscope-bench >&2
BIN=target/release
WORK=$(mktemp -d)
PID=
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=18510
$BIN/oodscope detector save --model models/fmnist-resnet.pt --method msp \
  --calibration assets/demo/fmnist-test --name fmnist-msp --quiet --out "$WORK/d.oodsd" >&2
mapfile -t IMAGES < <(find assets/demo/fmnist-test assets/demo/mnist -name '*.png' | sort | awk 'NR % 50 == 1')
$BIN/oodscope serve --detector "$WORK/d.oodsd" --port $PORT --device cpu 2>"$WORK/serve.log" &
PID=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/v2/health/ready" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2 / 1024}' "/proc/$PID/status"; }
$BIN/oodscope-bench serve-load --addr "127.0.0.1:$PORT" --model fmnist-msp --label warmup \
  --concurrency 8 --requests 2000 --images "${IMAGES[@]}" >/dev/null
echo "after warm-up: RSS $(rss)"
for c in 1 8 64; do
  $BIN/oodscope-bench serve-load --addr "127.0.0.1:$PORT" --model fmnist-msp --label "c$c" \
    --concurrency "$c" --requests "$REQUESTS" --warmup 0 --images "${IMAGES[@]}"
  echo "after $REQUESTS requests at concurrency $c: RSS $(rss)"
done
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^oodscope_(requests_total|errors_total)' || true
