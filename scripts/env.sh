# Sourced by the other scripts: points the tch build at the venv's PyTorch (libtorch).
# shellcheck shell=bash
OODSCOPE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export OODSCOPE_ROOT
export PATH="$OODSCOPE_ROOT/.venv/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
export OODSCOPE_FIXTURES="${OODSCOPE_FIXTURES:-$OODSCOPE_ROOT/target/fixtures}"
# The Python extension module (crates/python) links no libpython, whoever builds it (maturin sets
# the same): the interpreter that imports it provides those symbols.
export PYO3_BUILD_EXTENSION_MODULE=1
# Mesa's software renderers (llvmpipe, lavapipe) vectorise at the CPU's widest width unless told:
# one width everywhere makes the window's snapshot tests render the same pixels on any x86-64 CPU.
export LP_NATIVE_VECTOR_WIDTH="${LP_NATIVE_VECTOR_WIDTH:-128}"
