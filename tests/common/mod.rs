//! Shared helpers for the integration tests: where the generated fixtures are.
#![allow(dead_code)]

use std::path::PathBuf;

/// The fixtures folder made by `tests/fixtures/make_fixtures.py` (scripts/test.sh makes it).
pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("OODSCOPE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fixtures"));
    assert!(
        dir.join("reference/manifest.json").is_file(),
        "fixtures missing in {}: run scripts/test.sh (it makes them with the venv's PyTorch)",
        dir.display()
    );
    dir
}
