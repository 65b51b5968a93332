//! SIGTERM (as `timeout`, Slurm and Kubernetes send) and SIGINT (Ctrl-C) during long commands
//! (issue 22): `fit`, `score --train` and `compare --results` stop at the next batch with one line,
//! exit 143 / 130 and leave no temporary; a second signal stops the run at once.

use crate::reliability_outputs::{fx, left_behind, names, s, temporaries, wait_until};
use crate::support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Starts oodscope with `args` (its fit cache in `cache`), its stderr read line by line on a thread.
struct Running {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(cache: &Path, args: &[&str]) -> Running {
        let (child, lines) = support::spawn_reading_stderr(
            Command::new(env!("CARGO_BIN_EXE_oodscope"))
                .args(args)
                .env("OODSCOPE_CACHE_DIR", cache)
                .stdout(Stdio::null()),
        );
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line starting with `start`.
    fn wait_for_line(&mut self, start: &str) {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|e| panic!("no line {start:?} ({e}): {:?}", self.seen));
            self.seen.push(line.clone());
            if line.starts_with(start) {
                return;
            }
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The exit code and every stderr line.
    fn finish(mut self) -> (Option<i32>, Vec<String>) {
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        (status.code(), self.seen)
    }
}

const SIGTERM_LINE: &str = "oodscope: terminated (SIGTERM): stopping after this batch and removing temporary files (a second signal stops at once)";
const SIGINT_LINE: &str = "oodscope: interrupted (SIGINT): stopping after this batch and removing temporary files (Ctrl-C again stops at once)";

fn demo(rel: &str) -> String {
    s(&support::repo_root().join(rel))
}

/// `fit` of the bundled model on the demo's 6000 training images, into `out`, in small batches.
fn start_fit(cache: &Path, out: &Path) -> Running {
    let (model, train) = (demo("models/fmnist-resnet.pt"), demo("assets/demo/fmnist-train"));
    let out = s(out);
    let args = [
        "fit",
        "--model",
        &model,
        "--train",
        &train,
        "--device",
        "cpu",
        "--batch-size",
        "4",
        "--out",
        &out,
    ];
    let mut run = Running::start(cache, &args);
    run.wait_for_line("oodscope: fitting");
    run
}

/// Waits until the run has a file in `dir` (its pass has started), then sends `signal`.
fn signal_once_writing(run: &mut Running, dir: &Path, signal: &str) {
    let Running { child, .. } = run;
    wait_until(child, "a temporary file", || !left_behind(dir).is_empty());
    run.signal(signal);
}

/// A fit stopped by `signal` (`TERM` or `INT`, named `name` in its line) says so once as its
/// last line `line`, exits `code` and leaves no temporary.
fn fit_stopped_by(signal: &str, name: &str, line: &str, code: i32) {
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut run = start_fit(cache.path(), &out.path().join("f.safetensors"));
    signal_once_writing(&mut run, out.path(), signal);
    let (exit, lines) = run.finish();
    assert_eq!(exit, Some(code), "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some(line), "{lines:?}");
    assert_eq!(lines.iter().filter(|l| l.contains(name)).count(), 1, "{lines:?}");
    assert!(left_behind(out.path()).is_empty(), "left: {:?}", names(out.path()));
}

#[test]
fn sigterm_during_fit_says_so_cleans_up_and_exits_143() {
    fit_stopped_by("TERM", "SIGTERM", SIGTERM_LINE, 143);
}

#[test]
fn sigint_during_fit_says_so_cleans_up_and_exits_130() {
    fit_stopped_by("INT", "SIGINT", SIGINT_LINE, 130);
}

#[test]
fn a_second_signal_stops_the_run_at_once() {
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut run = start_fit(cache.path(), &out.path().join("f.safetensors"));
    // Held stopped, the run receives SIGINT and SIGTERM together when it continues: the one handled
    // second stops the run before the current batch can end. Which of the two pending signals the
    // kernel delivers first is its choice, so either order is right, each with its own exit code.
    signal_once_writing(&mut run, out.path(), "STOP");
    run.signal("INT");
    run.signal("TERM");
    run.signal("CONT");
    let (code, lines) = run.finish();
    let tail: Vec<&str> = lines.iter().rev().take(2).rev().map(String::as_str).collect();
    let int_first = [SIGINT_LINE, "oodscope: terminated (SIGTERM) again: stopping now"];
    let term_first = [SIGTERM_LINE, "oodscope: interrupted (SIGINT) again: stopping now"];
    match code {
        Some(143) => assert_eq!(tail, int_first, "{lines:?}"),
        Some(130) => assert_eq!(tail, term_first, "{lines:?}"),
        other => panic!("exit {other:?}: {lines:?}"),
    }
}

#[test]
fn sigint_during_the_fit_of_score_train_leaves_nothing_in_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let (model, train, test) = (
        demo("models/fmnist-resnet.pt"),
        demo("assets/demo/fmnist-train"),
        demo("assets/demo/fmnist-test"),
    );
    let args = [
        "score",
        "--model",
        &model,
        "--id",
        &test,
        "--ood",
        "uniform:100",
        "--method",
        "knn",
        "--train",
        &train,
        "--device",
        "cpu",
        "--batch-size",
        "4",
    ];
    let mut run = Running::start(cache.path(), &args);
    let fits = cache.path().join("fits");
    let Running { child, .. } = &mut run;
    wait_until(child, "a file in the fit cache", || {
        fits.is_dir() && !left_behind(&fits).is_empty()
    });
    run.signal("INT");
    let (code, lines) = run.finish();
    assert_eq!(code, Some(130), "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some(SIGINT_LINE), "{lines:?}");
    assert!(left_behind(&fits).is_empty(), "left in the cache: {:?}", names(&fits));
}

#[test]
fn sigterm_during_compare_with_results_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (results, scores) = (s(&d.join("r.parquet")), s(&d.join("s.csv")));
    let (model, id) = (fx("models/plain.pt"), fx("images/id"));
    let args = [
        "compare",
        "--model",
        &model,
        "--id",
        &id,
        "--ood",
        "uniform:400000",
        "--methods",
        "msp,energy",
        "--device",
        "cpu",
        "--results",
        &results,
        "--scores",
        &scores,
    ];
    let mut run = Running::start(d, &args);
    run.wait_for_line("oodscope: comparing");
    let Running { child, .. } = &mut run;
    wait_until(child, "its temporaries", || temporaries(d).len() == 2);
    run.signal("TERM");
    let (code, lines) = run.finish();
    assert_eq!(code, Some(143), "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some(SIGTERM_LINE), "{lines:?}");
    assert!(left_behind(d).is_empty(), "left: {:?}", names(d));
}
