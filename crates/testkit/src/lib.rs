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
pub fn references(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("references.json")).unwrap()).unwrap()
}

/// A method's settings for `model` from name=value pairs (the rest at their defaults).
pub fn settings(
    model: &oodscope::model::Model,
    method: &str,
    params: &[(&str, f64)],
) -> oodscope::score::ScoreSettings {
    let mut given = oodscope::detect::Params::new();
    for (name, value) in params {
        given.set(name, *value);
    }
    let method = oodscope::score::Method::find(method).unwrap_or_else(|| panic!("no method {method}"));
    oodscope::score::ScoreSettings::new(method, &given, &oodscope::detect::plan::dims_of(model)).unwrap()
}

/// ODIN-style settings: T and ε where the method has them.
pub fn t_eps(model: &oodscope::model::Model, method: &str, t: f64, eps: f64) -> oodscope::score::ScoreSettings {
    let m = oodscope::score::Method::find(method).unwrap();
    let names: Vec<&str> = m
        .params(&oodscope::detect::plan::dims_of(model))
        .iter()
        .map(|s| s.name)
        .collect();
    let mut given = Vec::new();
    if names.contains(&"temperature") {
        given.push(("temperature", t));
    }
    if names.contains(&"epsilon") {
        given.push(("epsilon", eps));
    }
    settings(model, method, &given)
}

/// Scores every image of `sets` with one method (a plan of one).
pub fn run_one(
    model: &oodscope::model::Model,
    sets: &[oodscope::data::ImageSet],
    settings: &oodscope::score::ScoreSettings,
    batch_size: usize,
) -> oodscope::score::ScoreRun {
    let plan = oodscope::detect::plan::Plan::single(model, settings, None).unwrap();
    oodscope::score::run_scoring(
        &plan,
        sets,
        batch_size,
        &std::sync::atomic::AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap()
}

/// The venv's Python (scripts/setup.sh makes it), else `python3`.
pub fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() { venv } else { PathBuf::from("python3") }
}

/// Runs the oodscope binary with its fit cache in `cache`; returns (exit code, stdout, stderr).
pub fn oodscope_with_cache(cache: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_oodscope"))
        .args(args)
        .env("OODSCOPE_CACHE_DIR", cache)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}
