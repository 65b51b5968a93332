#!/usr/bin/env bash
# `oodscope serve` against the FastAPI + uvicorn + PyTorch server a user would write
# (scripts/bench_serve_python.py): the same model, method (MSP), preprocessing and decision, the
# same load generator (`oodscope-bench serve-load`: one image per request, binary data, keep-alive
# connections) at concurrency 1, 8 and 64, one server after the other in the same run. Prints each
# server's throughput and p50 / p99 latency per level, after checking that both give the same
# verdicts on the same images.
#   scripts/bench_serve.sh [REQUESTS_PER_LEVEL]   (default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
REQUESTS=${1:-2000}
cargo build --release -p oodscope -p oodscope-bench >&2
BIN=target/release
WORK=$(mktemp -d)
trap 'kill $RUST_PID $PY_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
RUST_PID= PY_PID=
RUST_PORT=18500 PY_PORT=18501

$BIN/oodscope detector save --model models/fmnist-resnet.pt --method msp \
  --calibration assets/demo/fmnist-test --false-alarm 0.05 --name fmnist-msp --embed-model \
  --device cpu --quiet --out "$WORK/d.oodsd" >&2
mapfile -t IMAGES < <(find assets/demo/fmnist-test assets/demo/mnist -name '*.png' | sort | awk 'NR % 50 == 1')

wait_ready() {
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$1/v2/health/ready" >/dev/null && return 0
    sleep 0.1
  done
  echo "bench_serve: the server on port $1 did not start" >&2
  exit 1
}

load() {
  $BIN/oodscope-bench serve-load --addr "127.0.0.1:$1" --model fmnist-msp --label "$2" \
    --requests "$REQUESTS" --images "${IMAGES[@]}"
}

$BIN/oodscope serve --detector "$WORK/d.oodsd" --port $RUST_PORT --device cpu 2>"$WORK/rust.log" &
RUST_PID=$!
wait_ready $RUST_PORT
curl -s "http://127.0.0.1:$RUST_PORT/oodscope/v1/watch" >"$WORK/decision.json"
.venv/bin/python scripts/bench_serve_python.py --model models/fmnist-resnet.pt \
  --decision "$WORK/decision.json" --port $PY_PORT 2>"$WORK/python.log" &
PY_PID=$!
wait_ready $PY_PORT

# The same verdicts from both on the same images (JSON, base64).
.venv/bin/python - "$RUST_PORT" "$PY_PORT" "${IMAGES[@]}" <<'PY'
import base64, json, sys, urllib.request
rust, py, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
body = json.dumps({"inputs": [{"name": "image", "shape": [len(paths)], "datatype": "BYTES",
                                "data": [base64.b64encode(open(p, "rb").read()).decode() for p in paths]}]}).encode()
def ask(port):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/fmnist-msp/infer", body, {"Content-Type": "application/json"})
    return {o["name"]: o["data"] for o in json.load(urllib.request.urlopen(req))["outputs"]}
a, b = ask(rust), ask(py)
gap = max(abs(x - y) for x, y in zip(a["score"], b["score"]))
assert a["class"] == b["class"] and a["is_ood"] == b["is_ood"], "the two servers disagree"
print(f"bench_serve: {len(paths)} images, same verdicts and classes, max |score difference| {gap:.2e}", file=sys.stderr)
PY

# One server at a time: the other idles.
load $RUST_PORT oodscope | tee "$WORK/rust.json"
load $PY_PORT python | tee "$WORK/python.json"
.venv/bin/python - "$WORK/rust.json" "$WORK/python.json" <<'PY'
import json, sys
runs = [json.load(open(p)) for p in sys.argv[1:]]
print(f"{'server':<10}{'concurrency':>12}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
for run in runs:
    for level in run["levels"]:
        print(f"{run['server']:<10}{level['concurrency']:>12}{level['requests_per_s']:>10.0f}{level['p50_ms']:>10.2f}{level['p99_ms']:>10.2f}")
PY
