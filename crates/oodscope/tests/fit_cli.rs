//! `oodscope fit` and `score --train / --fit` end to end: the cache is used the second time and
//! refits when the model changes, a foreign fit file is refused, the KNN bank read from disk gives
//! the scores of the bank in memory, cancel leaves nothing behind, and every bad input of the
//! features contract is one line with nothing else lost.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use oodscope_data::{ImageSet, Role};
use oodscope_engine::Error;
use oodscope_engine::detect::plan::{Plan, dims_with_fit};
use oodscope_engine::fit::{FitOptions, fit_model};
use oodscope_engine::model::{DeviceChoice, Model};
use oodscope_engine::score::{Method, ScoreSettings, run_scoring};
use oodscope_engine::stats::Fit;

fn fx(rel: &str) -> String {
    support::fixtures().join(rel).to_str().unwrap().to_string()
}

use support::oodscope_with_cache as oodscope;

fn score_args<'a>(model: &'a str, method: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "score", "--model", model, "--method", method, "--quiet", "--device", "cpu",
    ];
    args.extend_from_slice(extra);
    args
}

fn sets() -> [String; 2] {
    [fx("features/images/id"), fx("features/images/ood")]
}

#[test]
fn score_train_fits_once_then_uses_the_cache_and_refits_for_a_changed_model() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    // A private copy of the model, so that it can be changed.
    for file in ["feat.pt", "feat.toml"] {
        std::fs::copy(fx(&format!("features/models/{file}")), work.path().join(file)).unwrap();
    }
    let model = work.path().join("feat.pt");
    let model = model.to_str().unwrap();
    let [id, ood] = sets();
    let train = fx("features/fit");
    let report = work.path().join("r.json");
    let args = score_args(
        model,
        "knn",
        &[
            "--train",
            &train,
            "--id",
            &id,
            "--ood",
            &ood,
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let (code, first_table, err) = oodscope(cache.path(), &args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("fit: computed from 120 images"), "{err}");
    let (code, second_table, err) = oodscope(cache.path(), &args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("fit: using the cached statistics"), "{err}");
    assert_eq!(first_table, second_table, "the cached fit scores the same");
    // The report says which fit was used and whether it came from the cache.
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["settings"]["params"]["k"], 50.0);
    assert_eq!(json["settings"]["fit"]["cached"], true);
    assert_eq!(json["settings"]["fit"]["images"], 120);
    assert_eq!(json["settings"]["fit"]["labels"], "folders");

    // The model changes (its card here): the cache is stale for it, so it refits.
    let card = work.path().join("feat.toml");
    let text = std::fs::read_to_string(&card).unwrap();
    std::fs::write(&card, text.replace("name = \"feat\"", "name = \"feat-v2\"")).unwrap();
    let (code, _, err) = oodscope(cache.path(), &args);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("fit: computed from 120 images"),
        "a changed model refits: {err}"
    );

    // A fit file given with --fit that was made for the old model is refused in one line.
    let fits: Vec<PathBuf> = std::fs::read_dir(cache.path().join("fits"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(fits.len(), 2);
    std::fs::write(&card, text).unwrap();
    let stale = fits
        .iter()
        .find(|f| f.file_name().unwrap().to_str().unwrap().starts_with("feat-v2"))
        .unwrap();
    let (code, _, err) = oodscope(
        cache.path(),
        &score_args(
            model,
            "knn",
            &["--fit", stale.to_str().unwrap(), "--id", &id, "--ood", &ood],
        ),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.lines().count() == 1 && err.contains("made for another model"),
        "{err}"
    );
}

#[test]
fn fit_command_writes_a_file_that_score_fit_reads_and_unlabelled_folders_say_so() {
    let cache = tempfile::tempdir().unwrap();
    let out = cache.path().join("mine.safetensors");
    let model = fx("features/models/feat.pt");
    let (code, stdout, err) = oodscope(
        cache.path(),
        &[
            "fit",
            "--model",
            &model,
            "--train",
            &fx("features/fit_unlabelled"),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("120 images"), "{stdout}");
    assert!(err.contains("the fit uses the model's predicted classes"), "{err}");
    // Python's safetensors reads the file, header and all.
    let python = support::python();
    let check = Command::new(python)
        .args([
            "-c",
            "import sys, json; from safetensors import safe_open\nf = safe_open(sys.argv[1], 'np')\nm = json.loads(f.metadata()['oodscope'])\nprint(m['labels'], f.get_tensor('knn_bank').shape, f.get_tensor('vim_alpha').shape)",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "predicted (120, 16) (16,)"
    );
    let [id, ood] = sets();
    let (code, table, err) = oodscope(
        cache.path(),
        &score_args(
            &model,
            "mahalanobis",
            &["--fit", out.to_str().unwrap(), "--id", &id, "--ood", &ood],
        ),
    );
    assert_eq!(code, 0, "{err}");
    assert!(table.contains("AUROC"), "{table}");
}

#[test]
fn a_bank_read_from_disk_scores_what_the_bank_in_memory_scores() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(Path::new(&fx("features/models/feat.pt")), DeviceChoice::Cpu).unwrap();
    let train = ImageSet::open(&fx("features/fit"), Role::Id, &model.card.classes).unwrap();
    let path = dir.path().join("f.safetensors");
    let options = FitOptions {
        batch_size: 16,
        max_images: None,
        class_covariances: false,
    };
    fit_model(&model, &train, &options, &path, &AtomicBool::new(false), &mut |_| {}).unwrap();
    let [id, ood] = sets();
    let sets = vec![
        ImageSet::open(&id, Role::Id, &model.card.classes).unwrap(),
        ImageSet::open(&ood, Role::Ood, &model.card.classes).unwrap(),
    ];
    let mut scores = Vec::new();
    for budget in [256 << 20, 0] {
        let fit = Fit::load(&path, &model, budget).unwrap();
        assert_eq!(fit.bank.as_ref().unwrap().on_disk(), budget == 0);
        // KNN, and NNGuide (KNN's bank scaled by the fit images' energies).
        for (method, k) in ["knn", "nnguide"]
            .into_iter()
            .flat_map(|m| [1.0, 10.0, 120.0].map(|k| (m, k)))
        {
            let settings = ScoreSettings::new(
                Method::named(method),
                &oodscope_engine::detect::Params::new().with("k", k),
                &dims_with_fit(&model, Some(&fit)),
            )
            .unwrap();
            let plan = Plan::single(&model, &settings, Some(&fit)).unwrap();
            let run = run_scoring(&plan, &sets, 7, &AtomicBool::new(false), &mut |_| {}).unwrap();
            scores.push(run.scores().to_vec());
        }
    }
    assert_eq!(scores[..6], scores[6..], "disk and memory banks give the same scores");
}

#[test]
fn a_cancelled_fit_leaves_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(Path::new(&fx("features/models/feat.pt")), DeviceChoice::Cpu).unwrap();
    let train = ImageSet::open(&fx("features/fit"), Role::Id, &model.card.classes).unwrap();
    let path = dir.path().join("f.safetensors");
    let cancel = AtomicBool::new(false);
    let options = FitOptions {
        batch_size: 8,
        max_images: None,
        class_covariances: false,
    };
    let result = fit_model(&model, &train, &options, &path, &cancel, &mut |p| {
        if p.done >= 16 {
            cancel.store(true, Ordering::Relaxed);
        }
    });
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn bad_feature_inputs_are_one_line_each_and_lose_nothing() {
    let cache = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let few = tempfile::tempdir().unwrap();
    // A fit folder of 10 images, fewer than KNN's default k = 50.
    for (i, entry) in std::fs::read_dir(fx("features/fit/c0")).unwrap().take(10).enumerate() {
        std::fs::copy(entry.unwrap().path(), few.path().join(format!("{i}.png"))).unwrap();
    }
    let [id, ood] = sets();
    let feat = fx("features/models/feat.pt");
    let plain = fx("models/plain.pt");
    let train = fx("features/fit");
    let (no_head, mismatch, wrong) = (
        fx("features/models/bad/no_head.pt"),
        fx("features/models/bad/head_mismatch.pt"),
        fx("features/models/bad/wrong_features.pt"),
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            score_args(&plain, "knn", &["--train", &train]),
            "method `knn` needs penultimate features: the card of plain must say outputs = \"logits+features\"",
        ),
        (
            score_args(&no_head, "msp", &[]),
            "head `nope`: no submodule of that name",
        ),
        (
            score_args(&mismatch, "msp", &[]),
            "does not reproduce the logits from the features",
        ),
        (
            score_args(&wrong, "msp", &[]),
            "outputs = \"logits+features\" expects [2, 19]",
        ),
        (
            score_args(&feat, "knn", &["--train", few.path().to_str().unwrap()]),
            "k = 50, but the fit has only 10 images",
        ),
        (
            score_args(&feat, "vim", &["--train", &train, "--param", "dim=16"]),
            "dim must be between 1 and 15, got 16",
        ),
        (
            score_args(&feat, "knn", &["--train", empty.path().to_str().unwrap()]),
            "no images found",
        ),
        (
            score_args(&feat, "knn", &[]),
            "needs statistics of ID training images: give --train DIR",
        ),
        (
            score_args(&feat, "ash-p", &["--param", "percentile=99.9"]),
            "keeps none of the 16 features",
        ),
    ];
    for (mut args, expected) in cases {
        args.extend(["--id", &id, "--ood", &ood]);
        let (code, _, err) = oodscope(cache.path(), &args);
        assert_eq!(code, 1, "{args:?}: {err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert!(
            errors.len() == 1 && errors[0].contains(expected),
            "{args:?}: expected one error line with {expected:?}, got:\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // Nothing half-written in the cache from the failed runs.
    if let Ok(entries) = std::fs::read_dir(cache.path().join("fits")) {
        for e in entries {
            let name = e.unwrap().file_name();
            let name = name.to_str().unwrap();
            assert!(name.ends_with(".safetensors"), "left behind: {name}");
        }
    }
}
