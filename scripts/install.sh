#!/usr/bin/env bash
# Installs oodscope as a desktop application that runs without this checkout:
#   PREFIX/bin/oodscope                      the binary (rpath $ORIGIN/../lib/oodscope)
#   PREFIX/lib/oodscope/                     libtorch's CPU libraries, copied from the build's PyTorch
#   PREFIX/share/oodscope/                   the bundled models and demo images (models/, assets/)
#   PREFIX/share/applications/oodscope.desktop, PREFIX/share/icons/hicolor/…/oodscope.{svg,png}
# With --system-torch no libraries are copied: PREFIX/bin/oodscope is a launcher that finds
# PyTorch 2.13 at run time (LIBTORCH, or python3's torch) and runs PREFIX/libexec/oodscope.
#
# Usage: scripts/install.sh [--prefix DIR] [--system-torch] [--no-build] [--uninstall]
#   --prefix DIR     where to install (default ~/.local)
#   --system-torch   rely on the user's PyTorch instead of copying libtorch (small, CUDA if theirs has it)
#   --no-build       install target/release/oodscope as it is (no cargo build)
#   --uninstall      remove what an earlier install into PREFIX wrote
# DESTDIR, if set, is prepended to every written path (packaging: packaging/deb.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

PREFIX="$HOME/.local"
SYSTEM_TORCH=0
BUILD=1
UNINSTALL=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a folder}"; shift 2 ;;
    --prefix=*) PREFIX="${1#--prefix=}"; shift ;;
    --system-torch) SYSTEM_TORCH=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install: unknown option $1 (see scripts/install.sh --help)" >&2; exit 2 ;;
  esac
done
case "$PREFIX" in /*) ;; *) PREFIX="$(pwd)/$PREFIX" ;; esac
PREFIX="${PREFIX%/}"
DEST="${DESTDIR:-}$PREFIX"
MANIFEST="$DEST/share/oodscope/installed-files"

# Removes the files an earlier install listed, then the folders they leave empty.
uninstall() {
  [ -f "$MANIFEST" ] || return 0
  sed "s|^|$DEST/|" "$MANIFEST" | xargs -r -d '\n' rm -f --
  rm -f -- "$MANIFEST"
  for dir in share/oodscope lib/oodscope; do
    [ -d "$DEST/$dir" ] && find "$DEST/$dir" -depth -type d -empty -delete 2>/dev/null || true
  done
}

if [ "$UNINSTALL" = 1 ]; then
  if [ ! -f "$MANIFEST" ]; then
    echo "install: nothing to uninstall in $DEST (no $MANIFEST)" >&2
    exit 1
  fi
  uninstall
  echo "install: removed oodscope from $DEST"
  exit 0
fi

BUILT="$REPO/target/release/oodscope"
if [ "$BUILD" = 1 ]; then
  [ -x .venv/bin/python ] || bash scripts/setup.sh
  # shellcheck source=env.sh
  source scripts/env.sh
  cargo build --release --bin oodscope
fi
[ -x "$BUILT" ] || { echo "install: $BUILT is missing: build it first (cargo build --release)" >&2; exit 1; }

uninstall # a previous install into this prefix (of either kind)
STAGE_LIST=$(mktemp)
trap 'rm -f "$STAGE_LIST"' EXIT
# put SRC REL [MODE]: copies a file to $DEST/REL and lists it for --uninstall.
put() {
  install -D -m "${3:-644}" -- "$1" "$DEST/$2"
  printf '%s\n' "$2" >>"$STAGE_LIST"
}

# The binary, its rpath cut to the relative entry alone (build/libtorch_link.rs writes
# "$ORIGIN/../lib/oodscope:<build libtorch>"): the installed binary never reaches the checkout.
if [ "$SYSTEM_TORCH" = 1 ]; then
  BIN_REL=libexec/oodscope
else
  BIN_REL=bin/oodscope
fi
put "$BUILT" "$BIN_REL" 755
BIN="$DEST/$BIN_REL"
if command -v strip >/dev/null; then
  strip --strip-debug "$BIN" # line tables: 202 MB → 28 MB; symbols stay for backtraces
fi
marker='$ORIGIN/../lib/oodscope:'
hits=$(LC_ALL=C grep -obUaF -- "$marker" "$BIN" | cut -d: -f1 || true)
if [ "$(printf '%s\n' "$hits" | grep -c .)" != 1 ]; then
  echo "install: $BUILT has no rpath \"$marker…\" (built before build.rs set it? rebuild)" >&2
  exit 1
fi
before=$(dd if="$BIN" bs=1 skip=$((hits - 1)) count=1 status=none | od -An -tx1 | tr -d ' \n')
[ "$before" = 00 ] || { echo "install: the relative rpath is not first in $BIN" >&2; exit 1; }
printf '\0' | dd of="$BIN" bs=1 seek=$((hits + ${#marker} - 1)) conv=notrunc status=none

if [ "$SYSTEM_TORCH" = 1 ]; then
  put packaging/launcher.sh bin/oodscope 755
else
  # libtorch's CPU libraries and what they load (from the build's PyTorch: libtorch_cpu, c10,
  # gomp, and the CUDA runtime and CUPTI that PyPI's libtorch_cpu links): every library the
  # binary resolves inside the PyTorch installation, as the loader finds them now.
  torch_cpu=$(ldd "$BUILT" | awk '$1 == "libtorch_cpu.so" {print $3}')
  [ -f "$torch_cpu" ] || { echo "install: $BUILT does not find libtorch_cpu.so (ldd)" >&2; exit 1; }
  torch_root=$(cd "$(dirname "$(readlink -f "$torch_cpu")")/../.." && pwd)
  while read -r name path; do
    real=$(readlink -f "$path")
    case "$real" in "$torch_root"/*) ;; *) continue ;; esac
    put "$real" "lib/oodscope/$name" 644
    if command -v strip >/dev/null; then
      strip --strip-unneeded "$DEST/lib/oodscope/$name" # libtorch_cpu: 438 MB → 349 MB
    fi
  done < <(ldd "$BUILT" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}')
  # The CUDA part is not copied: the binary loads lib/oodscope/libtorch_cuda.so only where it
  # exists (crates/engine/src/torch_libs.rs), and --system-torch gives CUDA from the user's PyTorch.
fi

# The bundled models and the demo (and the screenshot tour's photos, the fonts): one copy, listed.
mkdir -p "$DEST/share/oodscope"
cp -R --no-preserve=mode,ownership models assets "$DEST/share/oodscope/"
find models assets -type f | sed 's|^|share/oodscope/|' >>"$STAGE_LIST"

sed "s|@EXEC@|$PREFIX/bin/oodscope|g" packaging/oodscope.desktop >"$STAGE_LIST.desktop"
put "$STAGE_LIST.desktop" share/applications/oodscope.desktop 644
rm -f "$STAGE_LIST.desktop"
put packaging/oodscope.svg share/icons/hicolor/scalable/apps/oodscope.svg 644
put packaging/oodscope.png share/icons/hicolor/256x256/apps/oodscope.png 644

install -D -m 644 "$STAGE_LIST" "$MANIFEST"

if [ -z "${DESTDIR:-}" ]; then
  if command -v update-desktop-database >/dev/null; then
    update-desktop-database -q "$PREFIX/share/applications" || true
  fi
  if command -v gtk-update-icon-cache >/dev/null && [ -f "$PREFIX/share/icons/hicolor/index.theme" ]; then
    gtk-update-icon-cache -q -t "$PREFIX/share/icons/hicolor" || true
  fi
fi

size() { du -sh "$@" 2>/dev/null | awk '{print $1}' | paste -sd+ -; }
echo "install: oodscope in $DEST ($(wc -l <"$MANIFEST") files)"
echo "  $BIN_REL  $(size "$BIN")"
if [ "$SYSTEM_TORCH" = 1 ]; then
  echo "  bin/oodscope  launcher: libtorch from LIBTORCH or python3's torch at run time"
else
  echo "  lib/oodscope  $(size "$DEST/lib/oodscope")  (libtorch CPU)"
fi
echo "  share/oodscope  $(size "$DEST/share/oodscope")  (models and demo images)"
echo "  share/applications/oodscope.desktop, share/icons/hicolor/{scalable,256x256}/apps/oodscope.*"
case ":$PATH:" in *":$PREFIX/bin:"*) ;; *) echo "  note: $PREFIX/bin is not on PATH" ;; esac
