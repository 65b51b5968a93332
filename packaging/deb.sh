#!/usr/bin/env bash
# Builds a Debian package of oodscope with dpkg-deb: scripts/install.sh into a staging folder with
# prefix /usr (binary, libtorch's CPU libraries in /usr/lib/oodscope, demo assets, .desktop, icon).
# No CUDA libraries: the package is for CPU machines (--system-torch makes a small package that
# uses the PyTorch 2.13 of the user's python3, CUDA included, at run time).
# Usage: packaging/deb.sh [--system-torch] [OUT_DIR]   (default OUT_DIR: target/deb)
set -euo pipefail
cd "$(dirname "$0")/.."
FLAVOUR=()
SUFFIX=""
if [ "${1:-}" = --system-torch ]; then
  FLAVOUR=(--system-torch)
  SUFFIX="-system-torch"
  shift
fi
OUT="${1:-target/deb}"
mkdir -p "$OUT"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/oodscope-deb.XXXXXX")
trap 'rm -rf -- "$STAGE"' EXIT

DESTDIR="$STAGE" bash scripts/install.sh --prefix /usr "${FLAVOUR[@]}" | sed 's/^/  /'
rm -f "$STAGE/usr/share/oodscope/installed-files" # dpkg keeps the list
mkdir -p "$STAGE/DEBIAN"
if [ ${#FLAVOUR[@]} = 0 ]; then
  DEPENDS="libc6 (>= 2.31), libstdc++6, libgcc-s1"
  NOTE="Includes libtorch's CPU libraries (PyTorch 2.13) in /usr/lib/oodscope."
  OTHER=oodscope-system-torch
else
  DEPENDS="libc6 (>= 2.31), libstdc++6, libgcc-s1, python3"
  NOTE="Uses the PyTorch 2.13 of python3 (pip install torch==2.13.0) or LIBTORCH at run time."
  OTHER=oodscope
fi
cat >"$STAGE/DEBIAN/control" <<EOF
Package: oodscope$SUFFIX
Version: $VERSION
Section: science
Priority: optional
Architecture: amd64
Depends: $DEPENDS
Conflicts: $OTHER
Installed-Size: $(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
Maintainer: oodscope developers <oodscope@localhost>
Description: inspector for out-of-distribution detection in PyTorch classifiers
 Opens a TorchScript image classifier and folders of in-distribution and
 out-of-distribution images, and shows how well a confidence score tells them
 apart (histograms, ROC/PR curves, FPR at 95% TPR, AUROC, AUPR), with twenty
 scoring methods; the same engine runs from the command line.
 .
 $NOTE
EOF
DEB="$OUT/oodscope${SUFFIX}_${VERSION}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
echo "deb: $DEB $(du -h "$DEB" | cut -f1) (installed size $(du -sh --exclude=DEBIAN "$STAGE" | cut -f1))"
