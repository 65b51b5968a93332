//! What oodscope's tests share: the checkout's root, the fixtures that `scripts/test.sh` makes with
//! the venv's PyTorch (`tests/fixtures/*.py`), their references, and the venv's Python. No engine:
//! the metrics crate's tests use it without linking libtorch.

use std::path::{Path, PathBuf};

/// The checkout's root (the workspace's folder).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The fixtures folder made by `tests/fixtures/make_fixtures.py` (scripts/test.sh makes it):
/// `$OODSCOPE_FIXTURES`, else `target/fixtures`.
pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("OODSCOPE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/fixtures"));
    assert!(
        dir.join("reference/manifest.json").is_file(),
        "fixtures missing in {}: run scripts/test.sh (it makes them with the venv's PyTorch)",
        dir.display()
    );
    dir
}

/// The fixture folder `name`, made by `tests/fixtures/{script}` (scripts/test.sh runs it), with
/// its `references.json` read by [`references`].
pub fn fixture_folder(name: &str, script: &str) -> PathBuf {
    let dir = fixtures().join(name);
    assert!(
        dir.join("references.json").is_file(),
        "{name} fixtures missing in {}: run python tests/fixtures/{script} \"$OODSCOPE_FIXTURES\"",
        dir.display()
    );
    dir
}

/// The `references.json` of a [`fixture_folder`].
pub fn references(dir: &Path) -> serde_json::Value {
    read_json(&dir.join("references.json"))
}

/// A JSON file, parsed (a test's panic names the file).
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The venv's Python (scripts/setup.sh makes it), else `python3`.
pub fn python() -> PathBuf {
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() { venv } else { PathBuf::from("python3") }
}
