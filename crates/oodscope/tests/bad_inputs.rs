//! Bad input gets a clear message and loses nothing: broken images are skipped with reasons while the
//! rest is scored; broken models, empty folders and wrong settings stop with one clear line; a
//! cancelled run stops early.

use crate::support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use oodscope_data::{ImageSet, Role};
use oodscope_engine::Error;
use oodscope_engine::detect::plan::Plan;
use oodscope_engine::model::{DeviceChoice, Model};
use oodscope_engine::pipeline::DecodeSchedule;
use oodscope_engine::score::run_scoring_with;

fn oodscope(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oodscope"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn fx(rel: &str) -> String {
    support::fixtures().join(rel).to_str().unwrap().to_string()
}

/// Runs `score` with the given model on good sets; returns exit code and stderr.
fn score_with_model(model: &str) -> (i32, String) {
    let (code, _, err) = oodscope(&[
        "score",
        "--model",
        &fx(model),
        "--id",
        &fx("images/id"),
        "--ood",
        "uniform:4",
        "--quiet",
    ]);
    (code, err)
}

#[test]
fn broken_images_are_skipped_with_reasons_and_the_rest_scored() {
    let report = tempfile::NamedTempFile::new().unwrap();
    let (code, stdout, stderr) = oodscope(&[
        "score",
        "--model",
        &fx("models/plain.pt"),
        "--id",
        &fx("images_bad"),
        "--ood",
        &fx("images/ood"),
        "--report",
        report.path().to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("AUROC"), "{stdout}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(report.path()).unwrap()).unwrap();
    let reasons: Vec<(String, String)> = json["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().rsplit('/').next().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let reason_of = |name: &str| {
        reasons
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{name} not listed in {reasons:?}"))
    };
    assert!(reason_of("zero.png").contains("empty file"));
    assert!(reason_of("text.png").contains("not an image"));
    assert!(reason_of("truncated.png").contains("truncated"));
    assert!(reason_of("bomb.png").contains("decompression bomb"));
    assert!(reason_of("loop").contains("loop"));
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    let bad_set = &json["sets"][0];
    assert_eq!(
        (
            bad_set["files"].as_u64(),
            bad_set["scored"].as_u64(),
            bad_set["skipped"].as_u64()
        ),
        (Some(8), Some(4), Some(4))
    );
    assert!(stderr.contains("skipped 5 files"), "{stderr}");
}

#[test]
fn broken_models_stop_with_one_line_naming_the_file_and_the_fault() {
    let cases = [
        ("models/bad/not_torchscript.pt", "not a TorchScript file"),
        ("models/bad/wrong_classes.pt", "expected [2, 5] (5 classes in the card)"),
        ("models/bad/wrong_input.pt", "shapes cannot be multiplied"),
        ("models/bad/no_confidence.pt", "outputs = \"logits+confidence\" expects"),
        ("models/bad/tuple_for_logits.pt", "returns a tuple"),
        ("models/bad/no_card.pt", "needs a card"),
        ("models/bad/missing_std.pt", "missing field `std`"),
        ("models/bad/does_not_exist.pt", "no such file"),
    ];
    for (model, expected) in cases {
        let (code, stderr) = score_with_model(model);
        assert_eq!(code, 1, "{model}: {stderr}");
        let stem = model.rsplit('/').next().unwrap().trim_end_matches(".pt");
        assert_eq!(stderr.lines().count(), 1, "{model}: one line expected, got {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(stem) && stderr.contains(expected),
            "{model}: {stderr}"
        );
    }
}

#[test]
fn empty_or_missing_folders_and_wrong_settings_are_clear_errors() {
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("readme.txt"), "no images here").unwrap();
    let plain = fx("models/plain.pt");
    let id = fx("images/id");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--id", empty.path().to_str().unwrap(), "--ood", "uniform:3"],
            "no images found",
        ),
        (
            vec!["--id", "/nonexistent/folder", "--ood", "uniform:3"],
            "no such folder",
        ),
        (vec!["--id", &id, "--ood", "uniform:0"], "positive count"),
        (
            vec!["--id", &id, "--ood", "uniform:3", "--method", "confidence"],
            "needs a model with a confidence branch",
        ),
        (
            vec![
                "--id",
                &id,
                "--ood",
                "uniform:3",
                "--method",
                "odin",
                "--temperature",
                "0",
            ],
            "temperature must be positive",
        ),
        (
            vec!["--id", &id, "--ood", "uniform:3", "--method", "odin", "--epsilon", "-1"],
            "epsilon must be zero or positive",
        ),
        (
            vec!["--id", &id, "--ood", "uniform:3", "--temperature", "10"],
            "method `msp` has no parameters (got `temperature`)",
        ),
        (
            vec!["--id", &id, "--ood", "uniform:3", "--method", "odin", "--param", "k=3"],
            "method `odin` has no parameter `k` (its parameters: temperature, epsilon)",
        ),
        (
            vec!["--id", &id, "--ood", "uniform:3", "--batch-size", "0"],
            "batch-size must be at least 1",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["score", "--model", &plain, "--quiet"];
        args.extend(extra.iter().copied());
        let (code, _, stderr) = oodscope(&args);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected) && stderr.lines().count() == 1,
            "{args:?}: {stderr}"
        );
    }
    if !tch::Cuda::is_available() {
        let (code, _, stderr) = oodscope(&[
            "score",
            "--model",
            &plain,
            "--id",
            &id,
            "--ood",
            "uniform:3",
            "--device",
            "cuda",
        ]);
        assert_eq!(code, 1);
        assert!(stderr.contains("no CUDA device"), "{stderr}");
    }
}

#[test]
fn ensemble_card_with_a_missing_member_names_the_member() {
    let dir = tempfile::tempdir().unwrap();
    let card = std::fs::read_to_string(fx("models/ensemble.toml"))
        .unwrap()
        .replace("ens_m1.pt", "gone.pt");
    std::fs::write(dir.path().join("ens.toml"), card).unwrap();
    std::fs::copy(fx("models/ens_m0.pt"), dir.path().join("ens_m0.pt")).unwrap();
    let err = Model::load(&dir.path().join("ens.toml"), DeviceChoice::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gone.pt") && err.contains("no such file"), "{err}");
}

#[test]
fn a_cancelled_run_stops_early() {
    let model = Model::load(std::path::Path::new(&fx("models/plain.pt")), DeviceChoice::Cpu).unwrap();
    let sets = vec![
        ImageSet::open(&fx("images/id"), Role::Id, &model.card.classes).unwrap(),
        ImageSet::open("uniform:5000", Role::Ood, &[]).unwrap(),
    ];
    let settings = support::settings(&model, "odin", &[("temperature", 1000.0), ("epsilon", 0.0014)]);
    let plan = Plan::single(&model, &settings, None).unwrap();
    for schedule in [DecodeSchedule::InTurn, DecodeSchedule::Overlapped] {
        let cancel = AtomicBool::new(false);
        let mut batches = 0;
        let result = run_scoring_with(&plan, &sets, 8, schedule, &cancel, &mut |p| {
            batches += 1;
            assert!(p.done < p.total);
            if batches == 3 {
                cancel.store(true, Ordering::Relaxed);
            }
        });
        assert!(matches!(result, Err(Error::Cancelled)), "{schedule:?}: {result:?}");
        assert_eq!(batches, 3, "{schedule:?}: no batch is scored after cancel");
    }
}
