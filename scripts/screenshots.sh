#!/usr/bin/env bash
# Runs the real app in a real window under Xvfb (Mesa's llvmpipe renders it) on the bundled demo,
# lets it take its own screenshots of each view (--screenshots), and writes screenshots/*.png.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh

packages=(xvfb xauth libegl1 libegl-mesa0 libgl1-mesa-dri libxkbcommon-x11-0 libxcursor1 libxi6 libx11-xcb1)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "screenshots: installing ${missing[*]}"
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo build --release
mkdir -p screenshots
# A screen larger than the window, which sits at (0, 0): Xvfb parks the pointer at the screen's
# centre, and a pointer over a plot would draw a hover crosshair.
# A private data folder: the tour starts from no saved window state (panel widths, last session),
# so the pictures are the same on every machine.
data_home=$(mktemp -d)
trap 'rm -rf "$data_home"' EXIT
XDG_DATA_HOME="$data_home" timeout 600 xvfb-run -a -s "-screen 0 3200x2000x24" target/release/oodscope --screenshots screenshots
ls -l screenshots/*.png
