#!/usr/bin/env bash
# Regenerates docs/cli.md, the CLI reference, from the binary's own --help (the test
# crates/oodscope/tests/cli_reference.rs renders it, and fails when the committed page differs).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
OODSCOPE_BLESS=1 cargo test --release -p oodscope --test cli cli_reference
