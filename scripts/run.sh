#!/usr/bin/env bash
# Sets up everything and runs the main job. Until the GUI lands, the main job scores the bundled
# demo sets with the bundled Fashion-MNIST ResNet, ODIN beside the MSP baseline, prints the metrics
# table and writes scores, report and a histogram PNG under target/demo/.
# Extra arguments are passed to `oodscope score` (e.g. --method energy --temperature 1 --epsilon 0).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh

cargo build --release
mkdir -p target/demo
exec target/release/oodscope score \
  --model models/fmnist-resnet.pt \
  --id assets/demo/fmnist-test \
  --ood assets/demo/mnist --ood assets/demo/photo-crops --ood uniform:1000 --ood gaussian:1000 \
  --method odin --temperature 1000 --epsilon 0.0014 \
  --scores target/demo/scores.csv --report target/demo/report.json --histogram target/demo/histogram.png \
  "$@"
