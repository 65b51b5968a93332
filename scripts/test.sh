#!/usr/bin/env bash
# Sets up everything (venv with PyTorch, fixtures made by PyTorch itself) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh

echo "test: making fixtures and PyTorch / scikit-learn references in $OODSCOPE_FIXTURES"
python tests/fixtures/make_fixtures.py "$OODSCOPE_FIXTURES"
python tests/fixtures/make_metric_refs.py "$OODSCOPE_FIXTURES/metric_refs.json"
python tests/fixtures/make_tune_refs.py "$OODSCOPE_FIXTURES"
python tests/fixtures/make_feature_refs.py "$OODSCOPE_FIXTURES"
python tests/fixtures/make_preprocess_refs.py "$OODSCOPE_FIXTURES"
python tests/fixtures/make_own_models.py "$OODSCOPE_FIXTURES"
python tests/fixtures/make_aoti_models.py "$OODSCOPE_FIXTURES"

cargo fmt --all -- --check
python scripts/check_layers.py
python scripts/check_docs.py
cargo test --release --workspace --all-targets
cargo clippy --release --workspace --all-targets -- -D warnings
bash scripts/test_install.sh
