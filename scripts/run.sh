#!/usr/bin/env bash
# Sets up everything and runs the main job: the oodscope window on the bundled model and demo sets
# (the last session's settings after the first run; `--demo` forces the demo). Where there is no
# display, oodscope says so in one line and prints the headless demo report instead.
# Extra arguments go to oodscope (e.g. --model M.pt --id DIR --ood DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh

cargo build --release
exec target/release/oodscope "$@"
