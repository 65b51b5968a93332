//! `oodscope tune` end to end: the summary naming each number's split, the grid CSV, the heatmap PNG,
//! and one-line errors for bad tuning arguments.

use crate::support;

use std::process::{Command, Output};

fn fx(rel: &str) -> String {
    support::fixtures().join(rel).to_str().unwrap().to_string()
}

fn oodscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oodscope"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn tune_prints_splits_and_writes_grid_csv_and_heatmap() {
    let out = tempfile::tempdir().unwrap();
    let csv_path = out.path().join("grid.csv");
    let png_path = out.path().join("heat.png");
    let (model, id, ood) = (fx("models/plain.pt"), fx("images/ood"), fx("images/id"));
    let result = oodscope(&[
        "tune",
        "--model",
        &model,
        "--id",
        &id,
        "--ood",
        &ood,
        "--ood",
        "uniform:30",
        "--method",
        "odin",
        "--temperatures",
        "1000,1,10",
        "--epsilons",
        "0,0.002,0.001",
        "--validation",
        "0.5",
        "--tune-on",
        "id",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--grid",
        csv_path.to_str().unwrap(),
        "--heatmap",
        png_path.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");

    // Which split each number comes from: sizes, the choice, and one table per split.
    for needle in [
        "objective FPR at 95% TPR (lower is better) on OOD set id",
        "[validation] split (chooses T and ε): ID ood 9, OOD id 26, OOD uniform 15",
        "[test] split (reports the choice): ID ood 9, OOD id 26, OOD uniform 15",
        "[validation] best setting: ODIN (T = ",
        "=== [validation] split, chosen setting ===",
        "=== [test] split, chosen setting (never seen by the search) beside the MSP baseline ===",
        "OOD set: id (26 images)",
        "OOD set: uniform (15 images)",
        "Baseline (MSP)",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in\n{stdout}");
    }
    let validation_block = stdout.split("=== [test]").next().unwrap();
    assert!(!validation_block.contains("Baseline (MSP)"), "{stdout}");
    assert!(
        stderr.contains("[validation] searched 9 settings on 50 images"),
        "{stderr}"
    );

    // CSV: 3 T × 3 ε × 2 OOD sets on validation, in grid order (sorted), then the choice on test.
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("temperature,epsilon,split,set,fpr_at_95_tpr,detection_error,auroc,aupr_in,aupr_out")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3 * 3 * 2 + 2);
    assert!(
        rows.iter()
            .all(|r| r.len() == 9 && r[4..].iter().all(|v| v.parse::<f64>().is_ok()))
    );
    let settings: Vec<(&str, &str, &str)> = rows[..18].iter().step_by(2).map(|r| (r[0], r[1], r[2])).collect();
    assert_eq!(settings[0], ("1", "0", "validation"));
    assert_eq!(settings[1], ("1", "0.001", "validation"));
    assert_eq!(settings[8], ("1000", "0.002", "validation"));
    assert!(
        rows[..18]
            .iter()
            .enumerate()
            .all(|(i, r)| r[3] == ["id", "uniform"][i % 2])
    );
    let (test_id, test_uniform) = (&rows[18], &rows[19]);
    assert_eq!((test_id[2], test_id[3], test_uniform[3]), ("test", "id", "uniform"));
    // The test rows are at the chosen setting: the best validation FPR95 on `id`, first in grid order.
    let fpr = |r: &Vec<&str>| r[4].parse::<f64>().unwrap();
    let best = rows[..18]
        .iter()
        .filter(|r| r[3] == "id")
        .min_by(|a, b| fpr(a).total_cmp(&fpr(b)))
        .unwrap();
    assert_eq!((test_id[0], test_id[1]), (best[0], best[1]));
    assert!(
        stdout.contains(&format!("T = {}, ε = {}", best[0], best[1])),
        "{stdout}"
    );

    // Heatmap: a real PNG of the promised size, drawn in more than a couple of colours.
    let png = image::open(&png_path).unwrap().to_rgb8();
    assert_eq!(png.width(), 1200);
    let colours: std::collections::HashSet<_> = png.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 50, "{} colours", colours.len());
}

#[test]
fn confidence_tunes_epsilon_only() {
    let out = tempfile::tempdir().unwrap();
    let csv_path = out.path().join("grid.csv");
    let result = oodscope(&[
        "tune",
        "--model",
        &fx("models/conf.pt"),
        "--id",
        &fx("images/id"),
        "--ood",
        &fx("images/ood"),
        "--method",
        "confidence",
        "--epsilon-steps",
        "3",
        "--epsilon-max",
        "0.002",
        "--validation",
        "5",
        "--objective",
        "auroc",
        "--device",
        "cpu",
        "--quiet",
        "--grid",
        csv_path.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    assert!(
        stdout.contains("Tuning Confidence branch on conf: 3 ε = 3 settings; objective AUROC (higher is better)"),
        "{stdout}"
    );
    // The confidence branch has no T: the grid and its CSV have ε only.
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert!(csv.starts_with("epsilon,split,set,"), "{csv}");
    let settings: Vec<(&str, &str)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0], f[1])
        })
        .collect();
    assert_eq!(
        settings[..3],
        [("0", "validation"), ("0.001", "validation"), ("0.002", "validation")]
    );
    assert_eq!(settings.len(), 4);
}

#[test]
fn bad_tuning_arguments_are_one_line_errors() {
    let (model, id, ood) = (fx("models/plain.pt"), fx("images/id"), fx("images/ood"));
    let base = [
        "tune", "--model", &model, "--id", &id, "--ood", &ood, "--device", "cpu", "--quiet",
    ];
    let cases: [(&[&str], i32, &str); 6] = [
        (
            &["--tune-on", "nope"],
            1,
            "--tune-on nope: no OOD set has that name (the OOD sets are: ood)",
        ),
        (
            &["--validation", "18"],
            1,
            "OOD set `ood` has 18 images: a validation split of 18 leaves none",
        ),
        (&["--validation", "1.5"], 2, "neither an image count"),
        (&["--method", "msp"], 1, "method `msp` has no parameters to tune"),
        (&["--temperatures", "1,0"], 1, "temperature must be positive, got 0"),
        (
            &["--epsilons", "0,0.001", "--epsilon-steps", "5"],
            2,
            "cannot be used with",
        ),
    ];
    for (extra, code, message) in cases {
        let result = oodscope(&[&base[..], extra].concat());
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(code), "{extra:?}: {stderr}");
        assert!(stderr.contains(message), "{extra:?}: {stderr}");
        let error_lines = stderr.lines().filter(|l| l.contains("error")).count();
        assert_eq!(error_lines, 1, "{extra:?}: {stderr}");
    }
}

#[test]
fn tune_from_a_results_file_equals_tuning_with_the_model() {
    let out = tempfile::tempdir().unwrap();
    let root = oodscope_testkit::repo_root();
    let model = root.join("models/fmnist-resnet.pt");
    let (id, ood) = (root.join("assets/demo/fmnist-test"), root.join("assets/demo/mnist"));
    let parquet = out.path().join("r.parquet");
    let sets = [
        "--id",
        id.to_str().unwrap(),
        "--ood",
        ood.to_str().unwrap(),
        "--ood",
        "uniform:300",
    ];
    let grid = [
        "--method",
        "energy",
        "--temperatures",
        "1,2,5,10,100,1000",
        "--validation",
        "0.25",
    ];
    let run = |args: Vec<&str>| {
        let result = oodscope(&args);
        assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
        String::from_utf8_lossy(&result.stdout).into_owned()
    };
    let mut score = vec!["score", "--model", model.to_str().unwrap(), "--method", "msp"];
    score.extend(sets);
    score.extend([
        "--results",
        parquet.to_str().unwrap(),
        "--save-logits",
        "--device",
        "cpu",
        "--quiet",
    ]);
    run(score);

    let (with_model, from_file) = (out.path().join("model.csv"), out.path().join("file.csv"));
    let mut tune = vec!["tune", "--model", model.to_str().unwrap()];
    tune.extend(sets);
    tune.extend(grid);
    tune.extend([
        "--epsilons",
        "0",
        "--device",
        "cpu",
        "--quiet",
        "--grid",
        with_model.to_str().unwrap(),
    ]);
    let summary_model = run(tune);
    let mut tune = vec!["tune", "--from", parquet.to_str().unwrap()];
    tune.extend(grid);
    tune.extend(["--quiet", "--grid", from_file.to_str().unwrap()]);
    let summary_file = run(tune);

    // The same splits, validation metrics of every setting, choice and test metrics.
    assert_eq!(summary_file, summary_model);
    let (a, b) = (std::fs::read(&with_model).unwrap(), std::fs::read(&from_file).unwrap());
    assert!(
        a.len() > 200 && a == b,
        "{}\n---\n{}",
        String::from_utf8_lossy(&a),
        String::from_utf8_lossy(&b)
    );

    // A step needs the gradients.
    let result = oodscope(&[
        "tune",
        "--from",
        parquet.to_str().unwrap(),
        "--method",
        "energy",
        "--epsilons",
        "0,0.001",
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(
        stderr.contains("re-scores only at ε = 0") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
}
