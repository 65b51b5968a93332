#!/bin/sh
# oodscope launcher, installed by `scripts/install.sh --system-torch`: finds libtorch 2.13 at run
# time (LIBTORCH, else the `torch` package of python3 / $OODSCOPE_PYTHON), puts it on
# LD_LIBRARY_PATH and runs the binary in ../libexec. A CUDA torch gives CUDA.
set -eu
bin_dir=$(dirname "$(readlink -f "$0")")
exe="$bin_dir/../libexec/oodscope"
want=2.13
if [ -n "${LIBTORCH:-}" ]; then
  lib="$LIBTORCH/lib"
  version=$(cat "$LIBTORCH/build-version" 2>/dev/null || echo "$want")
  where="LIBTORCH=$LIBTORCH"
else
  python=${OODSCOPE_PYTHON:-python3}
  # Where torch is, without importing it (an import takes seconds); its version from version.py.
  torch_dir=$("$python" -c 'import importlib.util as u; s = u.find_spec("torch"); print(s.submodule_search_locations[0])' 2>/dev/null) || torch_dir=""
  lib="${torch_dir:+$torch_dir/lib}"
  version=$(sed -n "s/^__version__ = '\(.*\)'.*/\1/p" "$torch_dir/version.py" 2>/dev/null | head -1)
  where="the torch package of $python"
fi
if [ ! -f "$lib/libtorch_cpu.so" ]; then
  echo "oodscope: libtorch not found in $where: install PyTorch $want (pip install torch==$want.0) or set LIBTORCH to a libtorch $want folder" >&2
  exit 1
fi
case "$version" in
  "$want" | "$want".* | "$want"+*) ;;
  *)
    echo "oodscope: needs PyTorch $want, found $version in $where (set LIBTORCH or OODSCOPE_PYTHON to another)" >&2
    exit 1
    ;;
esac
LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
exec "$exe" "$@"
