#!/usr/bin/env bash
# Sets up everything and runs the main job. Until the GUI and the bundled demo land, the main job
# scores the generated demo sets (tiny PyTorch-made models and images, see tests/fixtures) with the
# baseline beside ODIN, prints the metrics table and writes a histogram PNG.
# Extra arguments are passed to `oodscope score` (e.g. --method energy).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh

cargo build --release
if [ ! -f "$OODSCOPE_FIXTURES/reference/manifest.json" ]; then
  python tests/fixtures/make_fixtures.py "$OODSCOPE_FIXTURES"
fi
mkdir -p target/demo
exec target/release/oodscope score \
  --model "$OODSCOPE_FIXTURES/models/plain.pt" \
  --id "$OODSCOPE_FIXTURES/images/id" \
  --ood "$OODSCOPE_FIXTURES/images/ood" --ood uniform:1000 --ood gaussian:1000 \
  --method odin --temperature 1000 --epsilon 0.0014 \
  --scores target/demo/scores.csv --report target/demo/report.json --histogram target/demo/histogram.png \
  "$@"
