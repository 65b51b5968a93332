#!/usr/bin/env bash
# Tests the install (scripts/install.sh): installs into a throwaway prefix, then runs the installed
# oodscope with the checkout and its .venv out of reach — the headless demo report (no display) and
# one `score` on the installed demo assets — and checks them: the report's run line, sets, metrics
# and PNG; the score's table and per-image scores equal to the same run of the checkout's build;
# libtorch loaded from the prefix.
#
# Out of reach: a private mount namespace (unshare) with empty folders mounted over the checkout
# and the venv's real folder, so nothing else on the machine notices; where namespaces are not
# allowed (or with OODSCOPE_TEST_RENAME=1), target/ and .venv are renamed for the installed runs
# and put back on every exit.
# Usage: scripts/test_install.sh   (45 s on 2 quiet cores)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
source scripts/env.sh
VENV_REAL=$(readlink -f .venv)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/oodscope-install-test.XXXXXX")
PREFIX="$WORK/prefix"
RENAMED=()
restore() {
  local i
  for ((i = ${#RENAMED[@]} - 1; i >= 0; i--)); do
    mv -T -- "${RENAMED[i]}.out-of-reach" "${RENAMED[i]}" || echo "test_install: could not restore ${RENAMED[i]}" >&2
  done
  RENAMED=()
}
trap 'restore; rm -rf -- "$WORK"' EXIT
trap 'exit 130' INT TERM

fail() { echo "test_install: FAIL: $*" >&2; exit 1; }
t0=$SECONDS

bash scripts/install.sh --prefix "$PREFIX" | sed 's/^/  /'
ASSETS="$PREFIX/share/oodscope"
[ -x "$PREFIX/bin/oodscope" ] || fail "no $PREFIX/bin/oodscope"
grep -qx "Exec=$PREFIX/bin/oodscope" "$PREFIX/share/applications/oodscope.desktop" || fail "no .desktop entry with Exec"
[ -f "$PREFIX/share/icons/hicolor/256x256/apps/oodscope.png" ] || fail "no icon"
if command -v readelf >/dev/null; then
  runpath=$(readelf -d "$PREFIX/bin/oodscope" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
  [ "$runpath" = '$ORIGIN/../lib/oodscope' ] || fail "installed RUNPATH is '$runpath'"
  if readelf -d "$PREFIX/bin/oodscope" | grep -q 'NEEDED.*libtorch_cuda'; then fail "the binary links libtorch_cuda"; fi
fi
echo "test_install: installed in $((SECONDS - t0)) s: $(du -sh "$PREFIX" | cut -f1) in $PREFIX"

# The score, run by the checkout's build (reference) and by the installed binary; then, installed
# only, the loader's trace and the headless report.
# $1: the oodscope, $2: its assets folder, $3: output folder, $4: "installed" for the rest.
COMMANDS='
set -euo pipefail
exe=$1 assets=$2 out=$3
mkdir -p "$out" && cd "$out"
export OODSCOPE_CACHE_DIR="$out/cache"
"$exe" score --model "$assets/models/fmnist-resnet.pt" --id "$assets/assets/demo/fmnist-test" \
  --ood "$assets/assets/demo/mnist" --ood "$assets/assets/demo/photo-crops" --method energy \
  --quiet --scores scores.csv >score.out 2>score.err
sed "s|$assets/||" scores.csv >scores.rel.csv
[ "${4:-}" = installed ] || exit 0
LD_DEBUG=libs "$exe" methods 2>libs.err >/dev/null
env -u DISPLAY -u WAYLAND_DISPLAY "$exe" >headless.out 2>headless.err
'
echo "test_install: reference score by $REPO/target/release/oodscope"
bash -c "$COMMANDS" ref "$REPO/target/release/oodscope" "$REPO" "$WORK/ref" reference

INSTALLED=("$PREFIX/bin/oodscope" "$ASSETS" "$WORK/installed" installed)
echo "test_install: the installed oodscope, with $REPO and $VENV_REAL out of reach"
if [ -z "${OODSCOPE_TEST_RENAME:-}" ] && unshare --user --map-root-user --mount true 2>/dev/null; then
  # shellcheck disable=SC2016
  unshare --user --map-root-user --mount bash -c '
    set -euo pipefail
    repo=$1 venv=$2
    shift 2
    mount -t tmpfs -o size=1m,mode=755 none "$repo"
    case "$venv" in "$repo"/*) ;; *) mount -t tmpfs -o size=1m,mode=755 none "$venv" ;; esac
    [ -z "$(ls -A "$repo")" ] || { echo "checkout still visible" >&2; exit 1; }
    bash -c "$1" "${@:2}"' hide "$REPO" "$VENV_REAL" "$COMMANDS" installed "${INSTALLED[@]}" ||
    fail "the installed oodscope failed: $(tail -n 3 "$WORK"/installed/*.err 2>/dev/null)"
  HIDDEN="mount namespace"
else
  for p in target .venv; do
    if [ -e "$p" ] || [ -L "$p" ]; then
      mv -T -- "$p" "$p.out-of-reach"
      RENAMED+=("$REPO/$p")
    fi
  done
  if [ -L .venv.out-of-reach ]; then
    echo "test_install: note: .venv is a link; $VENV_REAL stays (the installed rpath is relative only)"
  fi
  bash -c "$COMMANDS" installed "${INSTALLED[@]}" ||
    fail "the installed oodscope failed: $(tail -n 3 "$WORK"/installed/*.err 2>/dev/null)"
  restore
  HIDDEN="target/ and .venv renamed"
fi

I="$WORK/installed" R="$WORK/ref"
# The headless report: said so; the demo's model, sets and counts; the six metrics of ODIN and of
# the baseline for each OOD set, as percentages; a PNG histogram.
grep -q "no display" "$I/headless.err" || fail "headless: no 'no display' line: $(head -3 "$I/headless.err")"
grep -qF "fmnist-resnet on cpu (7000 images in 5 sets), ODIN (T = 1000, ε = 0.0014)" "$I/headless.err" ||
  fail "headless: no run line: $(head -3 "$I/headless.err")"
for s in "Model: fmnist-resnet    ID images: 2000" "OOD set: mnist (2000 images)" \
  "OOD set: photo-crops (1000 images)" "OOD set: uniform (1000 images)" "OOD set: gaussian (1000 images)"; do
  grep -qF "$s" "$I/headless.out" || fail "headless report lacks '$s'"
done
rows='^(FPR at 95% TPR|  OOD-positive variant|Detection error|AUROC|AUPR-In|AUPR-Out) .* [0-9]+\.[0-9]%  +[0-9]+\.[0-9]%$'
metrics=$(grep -cE "$rows" "$I/headless.out" || true)
[ "$metrics" = 24 ] || fail "headless: $metrics metric rows with two percentages, expected 6 × 4 sets"
[ "$(head -c 8 "$I/oodscope-demo-histogram.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
  fail "headless: oodscope-demo-histogram.png is not a PNG"
# The score: every image's energy score and prediction, and the table, as the checkout's build.
lines=$(wc -l <"$I/scores.rel.csv")
[ "$lines" = 5001 ] || fail "scores.csv: $lines lines, expected 5001"
cmp -s "$R/scores.rel.csv" "$I/scores.rel.csv" || fail "per-image scores differ from the checkout's build"
diff "$R/score.out" "$I/score.out" >&2 || fail "score table differs from the checkout's build"
# libtorch came from the prefix, never the checkout; the CPU install has no CUDA part to load.
grep -qE "calling init: $PREFIX/(bin/\.\./)?lib/oodscope/libtorch_cpu.so" "$I/libs.err" ||
  fail "libtorch_cpu not from $PREFIX/lib/oodscope: $(grep 'calling init: .*libtorch_cpu' "$I/libs.err")"
if grep -q "libtorch_cuda" "$I/libs.err"; then fail "the CPU install loaded libtorch_cuda"; fi
if grep -E "calling init: ($REPO|$VENV_REAL)/" "$I/libs.err" >&2; then fail "a library came from the checkout"; fi

echo "test_install: ok ($HIDDEN; headless report; energy scores equal the checkout build's; $((SECONDS - t0)) s)"
