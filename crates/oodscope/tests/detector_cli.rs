//! `oodscope detector save/show`, `oodscope check`, and `--save-detector` of `tune` and `compare`,
//! run as users run them on the bundled model and demo images: δ is the conformal threshold of the
//! calibration scores `score` prints, every verdict and p-value follows from δ and those scores,
//! and the scores equal `score`'s.

use crate::support;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn oodscope(args: &[&str]) -> (i32, String, String) {
    let cache = tempfile::tempdir().unwrap();
    support::oodscope_with_cache(cache.path(), args)
}

fn root() -> PathBuf {
    oodscope_engine::assets_root()
}

fn demo(rel: &str) -> String {
    root().join("assets/demo").join(rel).display().to_string()
}

fn model() -> String {
    root().join("models/fmnist-resnet.pt").display().to_string()
}

/// `oodscope score --scores` of the bundled model on the demo's Fashion-MNIST test images (ID) and
/// MNIST (OOD), with the method's flags: path → score.
fn scores_by_path(method: &[&str], dir: &Path) -> HashMap<String, f32> {
    let csv_path = dir.join("scores.csv");
    let (model, fmnist, mnist) = (model(), demo("fmnist-test"), demo("mnist"));
    let mut args = vec!["score", "--model", &model, "--id", &fmnist, "--ood", &mnist];
    args.extend_from_slice(method);
    args.extend(["--scores", csv_path.to_str().unwrap(), "--quiet"]);
    let (code, _, err) = oodscope(&args);
    assert_eq!(code, 0, "{err}");
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (path, score) = (column("path"), column("score"));
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[path].to_string(), r[score].parse().unwrap())
        })
        .collect()
}

/// δ by the conformal rule, written here from its definition: the ⌊α(n+1)⌋-th smallest score.
fn conformal(mut scores: Vec<f32>, alpha: f64) -> f32 {
    scores.sort_by(f32::total_cmp);
    let k = (alpha * (scores.len() + 1) as f64).floor() as usize;
    scores[k - 1]
}

/// `oodscope detector save` of the bundled model calibrated on the demo's Fashion-MNIST test images
/// into `out`, with more flags.
fn save(out: &Path, extra: &[&str]) -> (i32, String, String) {
    let (model, calibration) = (model(), demo("fmnist-test"));
    let mut args = vec![
        "detector",
        "save",
        "--model",
        &model,
        "--calibration",
        &calibration,
        "--quiet",
    ];
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    oodscope(&args)
}

fn jsonl(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn save_show_and_check_give_the_conformal_threshold_and_verdicts_that_follow_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let detector = dir.path().join("fmnist.oodsd");
    let detector_s = detector.to_str().unwrap();
    let (code, out, err) = save(
        &detector,
        &[
            "--method",
            "energy",
            "--param",
            "temperature=2",
            "--false-alarm",
            "0.05",
            "--name",
            "fmnist-energy",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("fmnist-energy") && out.contains("false-alarm rate ≤ 0.05"),
        "{out}"
    );

    // δ is the conformal threshold of the calibration scores that `score` gives at the same T.
    let (code, shown, err) = oodscope(&["detector", "show", detector_s, "--json"]);
    assert_eq!(code, 0, "{err}");
    let manifest: Value = serde_json::from_str(&shown).unwrap();
    let scores_t2 = scores_by_path(&["--method", "energy", "--temperature", "2"], dir.path());
    let calibration_t2: Vec<f32> = scores_t2
        .iter()
        .filter(|(p, _)| p.contains("fmnist-test"))
        .map(|(_, &s)| s)
        .collect();
    let delta = conformal(calibration_t2.clone(), 0.05);
    assert_eq!(manifest["decision"]["threshold"].as_f64().unwrap() as f32, delta);

    // check on every MNIST image: the score equals score's, the verdict is `score < δ`, the
    // p-value is (1 + #{calibration ≤ s}) / (n + 1).
    let (code, out, err) = oodscope(&["check", "--detector", detector_s, "--quiet", &demo("mnist")]);
    assert_eq!(code, 0, "{err}");
    let records = jsonl(&out);
    assert_eq!(records.len(), scores_t2.len() - 2000);
    let n = calibration_t2.len() as f64;
    let mut ood = 0;
    for r in &records {
        let path = r["path"].as_str().unwrap();
        let s = r["score"].as_f64().unwrap() as f32;
        let want = scores_t2[path];
        assert!((s - want).abs() <= 1e-6 * want.abs().max(1.0), "{path}: {s} vs {want}");
        let verdict = if s < delta { "ood" } else { "id" };
        assert_eq!(r["verdict"], verdict, "{path}");
        ood += usize::from(verdict == "ood");
        let p = (1.0 + calibration_t2.iter().filter(|&&c| c <= s).count() as f64) / (n + 1.0);
        assert!((r["p_value"].as_f64().unwrap() - p).abs() < 1e-12, "{path}");
        assert!(r["class"].is_string() && r["class_index"].is_u64() && r["probability"].is_f64());
    }
    assert!(
        ood > 0 && ood < records.len(),
        "a useful test has both verdicts: {ood} of {}",
        records.len()
    );
    assert!(err.contains(&format!("{ood} ood")), "{err}");

    // --fail-on-ood: 3 on the OOD folder, 0 on ID images above δ.
    let (code, _, _) = oodscope(&[
        "check",
        "--detector",
        detector_s,
        "--fail-on-ood",
        "--quiet",
        &demo("mnist"),
    ]);
    assert_eq!(code, 3);
    let above: Vec<&String> = scores_t2
        .iter()
        .filter(|(p, s)| p.contains("fmnist-test") && **s > delta)
        .map(|(p, _)| p)
        .take(3)
        .collect();
    let mut args = vec!["check", "--detector", detector_s, "--fail-on-ood", "--format", "csv"];
    args.extend(above.iter().map(|p| p.as_str()));
    let (code, out, err) = oodscope(&args);
    assert_eq!(code, 0, "{err}");
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "path",
            "verdict",
            "score",
            "p_value",
            "class",
            "class_index",
            "probability",
            "skipped"
        ]
    );
    assert!(reader.records().all(|r| &r.unwrap()[1] == "id"));
}

#[test]
fn check_reads_paths_from_stdin_and_reports_files_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let detector = dir.path().join("msp.oodsd");
    let (code, _, err) = save(&detector, &[]);
    assert_eq!(code, 0, "{err}");
    let corrupt = dir.path().join("corrupt.png");
    std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let first = std::fs::read_dir(demo("photo-crops"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let missing = dir.path().join("missing.jpg");
    let mut child = Command::new(env!("CARGO_BIN_EXE_oodscope"))
        .args([
            "check",
            "--detector",
            detector.to_str().unwrap(),
            "--format",
            "jsonl",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let list = format!("{}\n{}\n{}\n", first.display(), corrupt.display(), missing.display());
    child.stdin.take().unwrap().write_all(list.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let records = jsonl(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(records.len(), 3, "{records:?}");
    assert_eq!(records[0]["path"], first.display().to_string());
    assert!(records[0]["verdict"].is_string());
    let skipped: HashMap<String, String> = records[1..]
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["skipped"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(skipped[&corrupt.display().to_string()].len() > 5, "{skipped:?}");
    assert_eq!(skipped[&missing.display().to_string()], "no such file");

    // The table names each file.
    let (code, out, _) = oodscope(&[
        "check",
        "--detector",
        detector.to_str().unwrap(),
        "--format",
        "table",
        first.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("path") && out.contains(first.to_str().unwrap()),
        "{out}"
    );
}

#[test]
fn an_embedded_detector_moves_alone_and_bad_requests_get_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    for name in ["fmnist-resnet.pt", "fmnist-resnet.toml"] {
        std::fs::copy(root().join("models").join(name), models.join(name)).unwrap();
    }
    let copied = models.join("fmnist-resnet.pt");
    let detector = dir.path().join("whole.oodsd");
    let (code, _, err) = oodscope(&[
        "detector",
        "save",
        "--model",
        copied.to_str().unwrap(),
        "--method",
        "maxlogit",
        "--calibration",
        &demo("fmnist-test"),
        "--threshold",
        "5.5",
        "--embed-model",
        "--out",
        detector.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    std::fs::remove_dir_all(&models).unwrap();
    let (code, out, err) = oodscope(&["check", "--detector", detector.to_str().unwrap(), &demo("mnist")]);
    assert_eq!(code, 0, "{err}");
    for r in jsonl(&out) {
        let s = r["score"].as_f64().unwrap() as f32;
        assert_eq!(r["verdict"], if s < 5.5 { "ood" } else { "id" });
    }
    let (_, shown, _) = oodscope(&["detector", "show", detector.to_str().unwrap()]);
    assert!(shown.contains("embedded") && shown.contains("given"), "{shown}");

    // Bad requests: one line each, exit 1, nothing written.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out_path = dir.path().join("x.oodsd");
    let out_s = out_path.to_str().unwrap();
    let fmnist_model = model();
    let (fmnist, bag, mnist) = (demo("fmnist-test"), demo("fmnist-test/bag"), demo("mnist"));
    let saving = |extra: &[&'static str]| -> Vec<String> {
        let mut args: Vec<String> = ["detector", "save", "--model", &fmnist_model, "--out", out_s]
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let with_calibration = |folder: &str, extra: &[&'static str]| -> Vec<String> {
        let mut args = saving(extra);
        args.extend(["--calibration".to_string(), folder.to_string()]);
        args
    };
    let overwrite = [
        "detector",
        "save",
        "--model",
        &fmnist_model,
        "--calibration",
        &fmnist,
        "--out",
        &fmnist_model,
    ]
    .map(String::from)
    .to_vec();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (with_calibration(empty.to_str().unwrap(), &[]), "no images"),
        (
            with_calibration(&bag, &["--false-alarm", "0.001"]),
            "too few for a false-alarm rate of 0.001",
        ),
        (
            with_calibration(&fmnist, &["--false-alarm", "1.5"]),
            "--false-alarm must be between 0 and 1",
        ),
        (overwrite, "would overwrite the input"),
        (with_calibration(&fmnist, &["--name", "a/b"]), "detector name `a/b`"),
        (
            ["detector", "show", &fmnist_model].map(String::from).to_vec(),
            "not a detector file",
        ),
        (
            ["check", "--detector", &fmnist_model, &mnist]
                .map(String::from)
                .to_vec(),
            "not a detector file",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = oodscope(&args);
        assert_eq!(code, 1, "{args:?}: {out} {err}");
        let last = err.trim_end().lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: ") && last.contains(expected),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out_path.exists(), "{args:?} wrote {out_s}");
    }
}

#[test]
fn tune_and_compare_save_their_choice_as_a_detector_that_check_runs() {
    let dir = tempfile::tempdir().unwrap();
    let tuned = dir.path().join("tuned.oodsd");
    let (code, _, err) = oodscope(&[
        "tune",
        "--model",
        &model(),
        "--method",
        "energy",
        "--temperatures",
        "1,10",
        "--id",
        &demo("fmnist-test"),
        "--ood",
        &demo("mnist"),
        "--validation",
        "0.25",
        "--save-detector",
        tuned.to_str().unwrap(),
        "--false-alarm",
        "0.1",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, shown, _) = oodscope(&["detector", "show", "--json", tuned.to_str().unwrap()]);
    let m: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(m["provenance"]["made_by"], "tune");
    assert_eq!(m["decision"]["false_alarm"], 0.1);
    // The ID set's validation split: the first quarter of the 2000 demo images.
    assert_eq!(m["decision"]["calibration_images"], 500);
    assert!(m["provenance"]["metrics"]["mnist"]["auroc"].is_f64(), "{m}");
    let t = m["method"]["params"]["temperature"].as_f64().unwrap();
    assert!(t == 1.0 || t == 10.0);

    let compared = dir.path().join("compared.oodsd");
    let (code, table, err) = oodscope(&[
        "compare",
        "--model",
        &model(),
        "--methods",
        "msp,energy,maxlogit",
        "--id",
        &demo("fmnist-test"),
        "--ood",
        &demo("mnist"),
        "--save-detector",
        compared.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, shown, _) = oodscope(&["detector", "show", "--json", compared.to_str().unwrap()]);
    let m: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(m["provenance"]["made_by"], "compare");
    // The leaderboard's first row (best mean AUROC) is the method saved.
    let leader = table
        .lines()
        .find(|l| l.starts_with("| ") && !l.contains("Method") && !l.contains("---"))
        .unwrap_or_default();
    let name = m["method"]["method"].as_str().unwrap();
    assert!(
        leader.to_lowercase().contains(name) || leader.contains(&name.to_uppercase()),
        "{leader} / {name}\n{table}"
    );
    let (code, out, err) = oodscope(&["check", "--detector", compared.to_str().unwrap(), &demo("photo-crops")]);
    assert_eq!(code, 0, "{err}");
    assert!(!jsonl(&out).is_empty());
}
