#!/usr/bin/env bash
# Builds the Python package (crates/python: the engine as the extension module oodscope._native,
# with PyO3, and python/oodscope/) into a wheel with maturin, and installs it into the project venv.
# Cargo rebuilds only what changed; the wheel is reinstalled only when it changed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

wheels=target/wheels
mkdir -p "$wheels"
# Stripped: the release profile's debug information would make the wheel five times larger.
maturin build --release --strip --quiet --manifest-path crates/python/Cargo.toml --interpreter .venv/bin/python \
  --out "$wheels" --compatibility linux 2>&1 | grep -v -E "^(📦|🔗|🐍|⚠️  Warning: You're building a library|🍹|📡|✏️|🛠)" || true
wheel="$(ls -t "$wheels"/oodscope-*.whl | head -n 1)"
stamp=".venv/.oodscope-wheel.sha256"
sum="$(sha256sum "$wheel" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ] || ! python -c "import oodscope" 2>/dev/null; then
  pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"
  echo "$sum" > "$stamp"
fi
echo "python_package: $(python -c 'import oodscope; print("oodscope", oodscope.__version__, "installed from", oodscope.__file__)')"
