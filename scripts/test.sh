#!/usr/bin/env bash
# Sets up everything (venv with PyTorch, fixtures made by PyTorch itself) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh

# The window's snapshot tests render with wgpu on Mesa's lavapipe (Vulkan on the CPU).
packages=(mesa-vulkan-drivers libvulkan1)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test: installing ${missing[*]}"
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The quick checks first: formatting, the shape of the code, the manual's links.
cargo fmt --all -- --check
python scripts/check_layers.py
python scripts/check_docs.py

# The build (every test target), the Python package and clippy (every target: the benchmark binary
# and the examples too) run beside the fixture scripts: neither keeps both cores busy all the time.
build_log="$(mktemp)"
echo "test: [${SECONDS} s] building the tests and running clippy (in the background: $build_log)"
{
  cargo test --release --workspace --tests --no-run &&
    bash scripts/python_package.sh &&
    cargo clippy --release --workspace --all-targets -- -D warnings
} > "$build_log" 2>&1 &
build=$!
trap 'kill "$build" 2>/dev/null || true; rm -f "$build_log"' EXIT

echo "test: [${SECONDS} s] making fixtures and PyTorch / scikit-learn references in $OODSCOPE_FIXTURES"
python tests/fixtures/make_fixtures.py "$OODSCOPE_FIXTURES"
python tests/fixtures/make_metric_refs.py "$OODSCOPE_FIXTURES/metric_refs.json"
python tests/fixtures/make_tune_refs.py "$OODSCOPE_FIXTURES"
python tests/fixtures/make_feature_refs.py "$OODSCOPE_FIXTURES"
python tests/fixtures/make_preprocess_refs.py "$OODSCOPE_FIXTURES"
python tests/fixtures/make_own_models.py "$OODSCOPE_FIXTURES"
python tests/fixtures/make_hf_models.py "$OODSCOPE_FIXTURES"
python tests/fixtures/make_aoti_models.py "$OODSCOPE_FIXTURES"

echo "test: [${SECONDS} s] fixtures made; waiting for the build"
if ! wait "$build"; then
  cat "$build_log"
  echo "test: the build, the Python package or clippy failed" >&2
  exit 1
fi
tail -n 2 "$build_log"

echo "test: [${SECONDS} s] running the tests"
cargo test --release --workspace --tests
# The Python package (built above into the venv) against the CLI, scikit-learn, eager PyTorch, Ray Serve.
echo "test: [${SECONDS} s] the Python package's tests"
python -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning tests/python
echo "test: [${SECONDS} s] the relocatable install"
bash scripts/test_install.sh
echo "test: [${SECONDS} s] all passed"
