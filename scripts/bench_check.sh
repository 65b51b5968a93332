#!/usr/bin/env bash
# Whole-process time of a one-image check: `oodscope check` with a saved detector against the same
# check written in Python as a user would (scripts/check_python.py), in turn, N times each; prints
# every wall time and the medians. Usage: scripts/bench_check.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
n="${1:-7}"
bin=target/release/oodscope
[ -x "$bin" ] || cargo build --release -p oodscope
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
image=assets/demo/mnist/00000_digit0.png
"$bin" detector save --model models/fmnist-resnet.pt --method msp --calibration assets/demo/fmnist-test \
  --out "$work/d.oodsd" --quiet > /dev/null 2>&1
delta="$("$bin" detector show "$work/d.oodsd" --json | python -c 'import json,sys; print(json.load(sys.stdin)["decision"]["threshold"])')"
time_of() { /usr/bin/time -f %e "$@" 2>&1 >/dev/null | tail -n 1; }
ours=(); theirs=()
for _ in $(seq 0 "$n"); do   # the first pair warms the caches and is not counted
  ours+=("$(time_of "$bin" check --detector "$work/d.oodsd" "$image")")
  theirs+=("$(time_of python scripts/check_python.py models/fmnist-resnet.pt "$image" "$delta")")
done
median() { printf '%s\n' "${@:2}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "oodscope check: ${ours[*]:1} s; median $(median "${ours[@]}") s"
echo "python:         ${theirs[*]:1} s; median $(median "${theirs[@]}") s"
