//! `oodscope score` end to end: the table on stdout, and the CSV, JSON and PNG it writes.

use crate::support;

use std::process::Command;

fn fx(rel: &str) -> String {
    support::fixtures().join(rel).to_str().unwrap().to_string()
}

#[test]
fn score_writes_table_csv_report_and_histogram() {
    let out = tempfile::tempdir().unwrap();
    let path = |name: &str| out.path().join(name).to_str().unwrap().to_string();
    let result = Command::new(env!("CARGO_BIN_EXE_oodscope"))
        .args([
            "score",
            "--model",
            &fx("models/plain.pt"),
            "--id",
            &fx("images/id"),
            "--ood",
            &fx("images/ood"),
        ])
        .args([
            "--ood",
            "uniform:40",
            "--ood",
            "gaussian:30",
            "--method",
            "odin",
            "--temperature",
            "1000",
            "--epsilon",
            "0.0014",
        ])
        .args([
            "--batch-size",
            "16",
            "--device",
            "cpu",
            "--scores",
            &path("s.csv"),
            "--report",
            &path("r.json"),
        ])
        .args(["--histogram", &path("h.png")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");

    // Table: one block per OOD set, baseline beside ODIN, every metric row.
    for needle in [
        "OOD set: ood (18 images)",
        "OOD set: uniform (40 images)",
        "OOD set: gaussian (30 images)",
        "Baseline (MSP)",
        "ODIN (T = 1000, ε = 0.0014)",
        "FPR at 95% TPR",
        "Detection error",
        "AUROC",
        "AUPR-In",
        "AUPR-Out",
        "ID classification accuracy",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in\n{stdout}");
    }

    // CSV: header, one row per image, roles and labels.
    let csv = std::fs::read_to_string(path("s.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("set,role,path,score,pred,pred_prob,label"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 52 + 18 + 40 + 30);
    assert!(
        rows.iter()
            .all(|r| r.len() == 7 && r[3].parse::<f32>().is_ok() && r[5].parse::<f32>().is_ok())
    );
    assert!(
        rows.iter()
            .filter(|r| r[1] == "id")
            .all(|r| r[6].starts_with('c') && r[2].contains("/images/id/"))
    );
    assert!(
        rows.iter()
            .filter(|r| r[0] == "uniform")
            .all(|r| r[1] == "ood" && r[6].is_empty())
    );

    // Report: settings, counts, accuracy, metrics per OOD set as fractions.
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path("r.json")).unwrap()).unwrap();
    let settings = &report["settings"];
    assert_eq!(
        (
            settings["method"].as_str(),
            settings["temperature"].as_f64(),
            settings["epsilon"].as_f64(),
            settings["device"].as_str()
        ),
        (Some("odin"), Some(1000.0), Some(0.0014), Some("cpu"))
    );
    assert!(settings["model"].as_str().unwrap().ends_with("plain.pt"));
    assert_eq!(
        report["sets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["scored"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [52, 18, 40, 30]
    );
    let accuracy = report["id_accuracy"].as_f64().unwrap();
    let correct = rows.iter().filter(|r| r[1] == "id" && r[4] == r[6]).count() as f64;
    assert!(
        (accuracy - correct / 52.0).abs() < 1e-12,
        "accuracy {accuracy} vs CSV {}",
        correct / 52.0
    );
    for set in ["ood", "uniform", "gaussian"] {
        let m = &report["metrics"][set];
        for key in [
            "fpr_at_95_tpr",
            "fpr_at_95_tpr_ood_positive",
            "detection_error",
            "auroc",
            "aupr_in",
            "aupr_out",
        ] {
            let v = m[key].as_f64().unwrap_or_else(|| panic!("{set}.{key} missing: {m}"));
            assert!((0.0..=1.0).contains(&v), "{set}.{key} = {v}");
        }
        assert!(report["baseline_metrics"][set]["auroc"].is_number());
    }
    assert!(
        report["rule"]
            .as_str()
            .unwrap()
            .starts_with("higher scores are more in-distribution"),
        "the report says which side of a threshold is ID: {report}"
    );
    assert!(report["skipped"].as_array().unwrap().is_empty());

    // Metrics in the report are those of the CSV's scores.
    let scores_of = |pred: &dyn Fn(&Vec<&str>) -> bool| {
        rows.iter()
            .filter(|r| pred(r))
            .map(|r| r[3].parse::<f32>().unwrap())
            .collect::<Vec<_>>()
    };
    let id = scores_of(&|r| r[1] == "id");
    let uniform = scores_of(&|r| r[0] == "uniform");
    let expected = oodscope_metrics::detection_metrics(&id, &uniform).unwrap();
    assert!((report["metrics"]["uniform"]["auroc"].as_f64().unwrap() - expected.auroc).abs() < 1e-12);

    // Histogram: a real PNG of the promised size with coloured content.
    let png = image::open(path("h.png")).unwrap().to_rgb8();
    assert_eq!(png.dimensions(), (1200, 720));
    let mut colours: Vec<[u8; 3]> = png.pixels().map(|p| p.0).collect();
    colours.sort();
    colours.dedup();
    assert!(colours.len() > 50, "histogram looks empty: {} colours", colours.len());
    let has = |c: [u8; 3]| png.pixels().any(|p| p.0 == c);
    assert!(
        has([31, 119, 180]) && has([214, 39, 40]),
        "ID and first OOD colours must both be drawn"
    );
}

#[test]
fn ensemble_and_confidence_models_run_from_the_cli() {
    for (model, method) in [
        ("models/ensemble.toml", "ensemble"),
        ("models/conf.pt", "confidence"),
        ("models/grey.pt", "energy"),
    ] {
        let result = Command::new(env!("CARGO_BIN_EXE_oodscope"))
            .args([
                "score",
                "--model",
                &fx(model),
                "--id",
                &fx("images/id"),
                "--ood",
                "gaussian:20",
                "--method",
                method,
                "--quiet",
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&result.stdout);
        assert!(
            result.status.success(),
            "{model}: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        assert!(stdout.contains("AUROC"), "{model}: {stdout}");
    }
}

#[test]
fn methods_lists_every_registered_method_and_what_a_model_lacks() {
    let out = Command::new(env!("CARGO_BIN_EXE_oodscope"))
        .args(["methods", "--model", &fx("features/models/feat.pt")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for method in oodscope_engine::score::Method::all() {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("{} ", method.name()))),
            "{} missing from:\n{text}",
            method.name()
        );
    }
    // The feature model's D sets ViM's default and range; it has no confidence branch.
    assert!(text.contains("--param dim=…  default 8, range 1–15"), "{text}");
    assert!(text.contains("confidence") && text.contains("[not for this model: needs a confidence branch]"));
    assert!(text.contains("Fit on ID training data:"), "{text}");
}
