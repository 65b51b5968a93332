#!/usr/bin/env bash
# Builds the release binaries and runs every benchmark (oodscope vs PyTorch, interaction budget,
# memory on a generated 100 000-image folder); prints the figures and writes BENCHMARKS.md.
# Arguments go to scripts/bench.py (e.g. --repeats 1 --memory-images 10000 for a quick run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
cargo build --release --bin oodscope --bin oodscope-bench
python scripts/bench.py "$@"
