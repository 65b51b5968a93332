//! AOTInductor packages (`.pt2`, made by tests/fixtures/make_aoti_models.py): a small CNN exported
//! with `scripts/export_model.py --format aoti` (logits + features) and by hand (logits only) scores
//! like the eager PyTorch model (MSP, energy, max logit, GradNorm, KNN to 1e-4 relative) at every
//! batch size, the package's batch bounds met by padding and splitting; the methods that need input
//! gradients are refused in one line, as are broken packages and a package on the wrong device,
//! and nothing is left in the temporary folder.

use crate::support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

const TOLERANCE: f64 = 1e-4;

/// The AOTInductor fixtures (scripts/test.sh makes them).
fn aoti() -> PathBuf {
    support::fixture_folder("aoti", "make_aoti_models.py")
}

fn path(rel: &str) -> String {
    aoti().join(rel).to_str().unwrap().to_string()
}

fn references() -> Value {
    support::references(&aoti())
}

/// Runs oodscope with a private fit cache and a private temporary folder, which must be empty
/// afterwards (the unpacked package is removed, on failure too); (exit code, stdout, stderr).
fn oodscope(args: &[&str]) -> (i32, String, String) {
    let cache = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_oodscope"))
        .args(args)
        .env("OODSCOPE_CACHE_DIR", cache.path())
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "oodscope {args:?} left {left:?} in its temporary folder"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `oodscope score` of `sets` (`--id`/`--ood` pairs) with one method; the scores by file name.
fn scores(model: &str, method: &str, sets: &[(&str, &str)], extra: &[&str]) -> HashMap<String, f64> {
    let out = tempfile::tempdir().unwrap();
    let csv = out.path().join("scores.csv");
    let model = path(model);
    let folders: Vec<(String, String)> = sets.iter().map(|(flag, dir)| (flag.to_string(), path(dir))).collect();
    let mut args = vec![
        "score", "--model", &model, "--method", method, "--quiet", "--device", "cpu",
    ];
    for (flag, dir) in &folders {
        args.extend([flag.as_str(), dir.as_str()]);
    }
    args.extend(["--scores", csv.to_str().unwrap()]);
    args.extend_from_slice(extra);
    let (code, _, err) = oodscope(&args);
    assert_eq!(code, 0, "oodscope score --method {method} on {model}: {err}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (path_col, score_col) = (column("path"), column("score"));
    text.lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let name = Path::new(fields[path_col])
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            (name, fields[score_col].parse().unwrap())
        })
        .collect()
}

/// Every scored image against the eager model's reference; the largest difference relative to the
/// scores' scale (the largest |reference|: a max logit near 0 carries the float noise of logits ~3).
fn compare(model: &str, method: &str, got: &HashMap<String, f64>, expected_count: usize) -> f64 {
    let refs = references();
    let want = refs["models"][model]["scores"][method].as_object().unwrap();
    assert_eq!(
        got.len(),
        expected_count,
        "{model} {method}: scored {} images",
        got.len()
    );
    let scale = want.values().map(|v| v.as_f64().unwrap().abs()).fold(1e-6, f64::max);
    let mut largest = 0.0f64;
    for (image, score) in got {
        let expected = want[image].as_f64().unwrap();
        let relative = (score - expected).abs() / scale;
        assert!(
            relative <= TOLERANCE,
            "{model} {method} {image}: oodscope {score}, eager PyTorch {expected} (relative {relative:.1e})"
        );
        largest = largest.max(relative);
    }
    largest
}

#[test]
fn an_exported_package_with_features_scores_like_eager_pytorch() {
    let sets = [("--id", "images/id"), ("--ood", "images/ood")];
    let train = path("images/train");
    let k = format!("k={}", references()["knn"]["k"].as_u64().unwrap());
    // 13 images: one batch below the package's minimum of 16 (padded), or batches of 5.
    for batch in ["64", "5"] {
        let runs: [(&str, Vec<&str>); 5] = [
            ("msp", vec![]),
            ("energy", vec![]),
            ("maxlogit", vec![]),
            ("gradnorm", vec![]),
            ("knn", vec!["--train", &train, "--param", &k]),
        ];
        for (method, extra) in runs {
            let mut extra = extra.clone();
            extra.extend(["--batch-size", batch]);
            let got = scores("features.pt2", method, &sets, &extra);
            let worst = compare("features", method, &got, 13);
            eprintln!(
                "features.pt2 {method} at batch size {batch}: max relative difference to eager PyTorch {worst:.1e}"
            );
        }
    }
}

#[test]
fn a_logits_package_is_padded_and_split_to_its_batch_bounds() {
    // Exported at batch 2, the package takes 2…15: 25 images in one batch of 32 are split, a
    // batch of 1 is padded.
    let sets = [("--id", "images/id"), ("--id", "images/train"), ("--ood", "images/ood")];
    for batch in ["32", "1", "7"] {
        for method in ["msp", "energy", "maxlogit"] {
            let got = scores("logits.pt2", method, &sets, &["--batch-size", batch]);
            let worst = compare("logits", method, &got, 25);
            eprintln!(
                "logits.pt2 {method} at batch size {batch}: max relative difference to eager PyTorch {worst:.1e}"
            );
        }
    }
}

/// Exit code 1 (not a panic's 101) and one `error:` line holding every `expect` (a run may print
/// its fit's line first: a method's ε is checked with the rest of its run).
fn assert_one_line_failure(code: i32, err: &str, expect: &[&str]) {
    assert_eq!(code, 1, "exit code {code}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "not one error line: {err}");
    for e in expect {
        assert!(errors[0].contains(e), "expected `{e}` in: {err}");
    }
}

fn score_fails(model: &str, extra: &[&str]) -> (i32, String) {
    let (model, id, ood) = (path(model), path("images/id"), path("images/ood"));
    let mut args = vec!["score", "--model", &model, "--id", &id, "--ood", &ood, "--quiet"];
    args.extend_from_slice(extra);
    let (code, _, err) = oodscope(&args);
    (code, err)
}

#[test]
fn methods_that_need_input_gradients_are_refused_in_one_line() {
    let refusal = "an AOTInductor package is inference-only:";
    let advice = "needs input gradients; export TorchScript with scripts/export_model.py for it";
    let (code, err) = score_fails("features.pt2", &["--method", "odin", "--device", "cpu"]);
    assert_one_line_failure(code, &err, &[refusal, "`odin` needs input gradients", advice]);
    let train = path("images/train");
    for (method, eps, fit) in [
        ("energy", "epsilon=0.001", None),
        ("mahalanobis", "epsilon=0.002", Some(&train)),
    ] {
        let mut args = vec!["--method", method, "--param", eps, "--device", "cpu"];
        if let Some(train) = fit {
            args.extend(["--train", train.as_str()]);
        }
        let (code, err) = score_fails("features.pt2", &args);
        assert_one_line_failure(code, &err, &[refusal, &format!("`{method}` with ε = "), advice]);
    }
    // The method list (and so the Compare view) shows ODIN as unsupported, with the reason.
    let (code, out, err) = oodscope(&["methods", "--model", &path("features.pt2")]);
    assert_eq!(code, 0, "{err}");
    let odin = out.lines().find(|l| l.trim_start().starts_with("odin ")).unwrap();
    assert!(
        odin.contains("needs input gradients (an AOTInductor package is inference-only)"),
        "{odin}"
    );
    let energy = out.lines().find(|l| l.trim_start().starts_with("energy ")).unwrap();
    assert!(!energy.contains("not for this model"), "{energy}");
}

#[test]
fn broken_packages_and_the_wrong_device_get_one_line() {
    let (code, err) = score_fails("broken.pt2", &["--method", "msp", "--device", "cpu"]);
    assert_eq!(err.trim().lines().count(), 1, "more than one line: {err}");
    assert_one_line_failure(
        code,
        &err,
        &[&path("broken.pt2"), "cannot load this AOTInductor package"],
    );
    let (code, err) = score_fails("truncated.pt2", &["--method", "msp", "--device", "cpu"]);
    assert_one_line_failure(code, &err, &[&path("truncated.pt2")]);
    // A CPU package asked to run on CUDA: the device it was compiled for, whether or not CUDA is here.
    let (code, err) = score_fails("features.pt2", &["--method", "msp", "--device", "cuda"]);
    assert_one_line_failure(code, &err, &[&path("features.pt2")]);
    assert!(
        err.contains("runs only on the device it was compiled for, cpu") || err.contains("no CUDA device"),
        "{err}"
    );
    // A package without its card says what it is and how to export one with a card.
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("bare.pt2");
    std::fs::copy(aoti().join("features.pt2"), &bare).unwrap();
    let (code, _, err) = oodscope(&["methods", "--model", bare.to_str().unwrap()]);
    assert_one_line_failure(
        code,
        &err,
        &["an AOTInductor package (.pt2) without its card", "--format aoti"],
    );
}
