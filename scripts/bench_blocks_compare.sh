#!/usr/bin/env bash
# Issue 25's benchmark (docs/benchmarks.md, "With inner blocks"): 7 alternating whole-process runs of
# MSP on the plain ResNet-18, compare of every method that needs no input gradient on the ResNet-18
# exported with its four blocks, and MSP on that one (fit cached by a warm-up run). Expects
# scripts/bench_compare.py's files under target/bench-compare, and the blocks model beside them:
#   python scripts/export_model.py --model torchvision:resnet18 --blocks layer1,layer2,layer3,layer4 \
#     --num-classes 10 --no-freeze --out target/bench-compare/resnet18_blocks.pt
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
B=target/bench-compare
O=./target/release/oodscope
M=$($O methods --model $B/resnet18_blocks.pt | awk '/^  [a-z]/{print $1}' | grep -v -x -e odin -e confidence -e ensemble | paste -sd,)
echo "methods: $(echo $M | tr ',' '\n' | wc -l): $M"
common=(--id $B/id --ood $B/ood --device cpu --quiet)
$O compare --model $B/resnet18_blocks.pt --methods "$M" --train $B/train "${common[@]}" > /dev/null
$O score --model $B/resnet18.pt --method msp "${common[@]}" > /dev/null
$O score --model $B/resnet18_blocks.pt --method msp "${common[@]}" > /dev/null
# Wall seconds of one whole process.
t() {
  local start
  start=$(date +%s.%N)
  "$@" > /dev/null 2>&1
  echo "$(date +%s.%N) - $start" | bc
}
for i in 1 2 3 4 5 6 7; do
  a=$(t $O score --model $B/resnet18.pt --method msp "${common[@]}")
  b=$(t $O compare --model $B/resnet18_blocks.pt --methods "$M" --train $B/train "${common[@]}")
  c=$(t $O score --model $B/resnet18_blocks.pt --method msp "${common[@]}")
  echo "run $i: msp plain $a  compare blocks $b  msp blocks $c"
done
