//! What the command line's tests share: the test kit (fixtures, references, Python), a method's
//! settings by name, and the oodscope binary run with a private fit cache.

pub use oodscope_testkit::*;

/// A method's settings for `model` from name=value pairs (the rest at their defaults).
pub fn settings(
    model: &oodscope_engine::model::Model,
    method: &str,
    params: &[(&str, f64)],
) -> oodscope_engine::score::ScoreSettings {
    let dims = oodscope_engine::detect::plan::dims_of(model);
    oodscope_engine::score::ScoreSettings::named(method, params, &dims).unwrap()
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

/// Runs `scripts/export_model.py` with `args` (and this oodscope for its load probe); returns (exit
/// code, everything it printed: stdout then stderr).
pub fn export_model(args: &[&str]) -> (i32, String) {
    let done = std::process::Command::new(python())
        .arg(repo_root().join("scripts/export_model.py"))
        .args(args)
        .env("OODSCOPE_BIN", env!("CARGO_BIN_EXE_oodscope"))
        .output()
        .unwrap();
    (
        done.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&done.stdout).to_string() + &String::from_utf8_lossy(&done.stderr),
    )
}

/// Runs a Python snippet (`python -c CODE ARGS…`) with the venv's interpreter; returns the last line
/// of its stdout (failing the test with its stderr when it fails).
pub fn python_last_line(code: &str, args: &[String]) -> String {
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_string()
}

/// The names in `dir` (hidden ones included), sorted.
pub fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Starts `command` with its stderr piped, and a channel that receives each line of it as it comes
/// (from a thread of its own, so the child never blocks on a full pipe).
pub fn spawn_reading_stderr(
    command: &mut std::process::Command,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = command.stderr(std::process::Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    (child, lines)
}
