#!/usr/bin/env bash
# Builds the release binaries and runs every benchmark (oodscope vs PyTorch, interaction budget,
# memory on a generated 100 000-image folder; then the detectors: fit throughput and memory, KNN
# against faiss-cpu, a 1 000 000 × 512 bank from disk, all post-hoc methods against MSP); prints the
# figures and writes docs/benchmarks.md. Arguments go to scripts/bench.py (e.g. --repeats 1
# --memory-images 10000 for a quick run; --only main or --only detectors for one section).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The KNN benchmark's comparison (scripts/bench_knn.py): faiss-cpu's exact flat index.
if ! .venv/bin/python -c "import faiss" 2>/dev/null; then
  echo "bench: installing faiss-cpu into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check faiss-cpu
fi
source scripts/env.sh
cargo build --release --bin oodscope --bin oodscope-bench
python scripts/bench.py "$@"
