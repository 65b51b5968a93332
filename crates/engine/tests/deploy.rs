//! Saved detectors through the library: a detector keeps only its method's fit tensors and scores
//! exactly as the method with the whole fit; embedded models make one file the whole detector;
//! damaged, newer, moved or changed detectors are refused in one line; and the conformal rule keeps
//! the false-alarm rate on new ID images at most α over many random calibration/test splits of
//! real scores.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use oodscope_data::rng::SplitMix64;
use oodscope_data::{ImageSet, Role};
use oodscope_engine::deploy::{Calibration, SaveRequest, SavedDetector, SetSummary, default_name, save};
use oodscope_engine::detect::plan::{Plan, dims_with_fit};
use oodscope_engine::fit::{FitOptions, fit_model};
use oodscope_engine::model::{DeviceChoice, Model};
use oodscope_engine::score::{Method, ScoreSettings, run_scoring, score_sets};
use oodscope_engine::stats::Fit;
use oodscope_engine::stats::fit_file::Reader;

fn fx() -> PathBuf {
    support::fixtures()
}

fn feature_model() -> Model {
    Model::load(&fx().join("features/models/feat.toml"), DeviceChoice::Cpu).unwrap()
}

fn set(rel: &str, role: Role, model: &Model) -> ImageSet {
    ImageSet::open(fx().join(rel).to_str().unwrap(), role, &model.card.classes).unwrap()
}

fn make_fit(model: &Model, dir: &Path) -> PathBuf {
    let out = dir.join("fit.safetensors");
    let train = set("features/fit", Role::Id, model);
    let options = FitOptions {
        batch_size: 32,
        max_images: None,
        class_covariances: true,
    };
    fit_model(model, &train, &options, &out, &AtomicBool::new(false), &mut |_| {}).unwrap();
    out
}

/// Saves a detector of `settings` calibrated (α = 0.1) on the ID fixture images.
fn save_detector(model: &Model, settings: &ScoreSettings, fit: Option<&Fit>, out: &Path, embed: bool) -> Calibration {
    let id = set("features/images/id", Role::Id, model);
    let run = score_sets(model, fit, std::slice::from_ref(&id), settings, 16).unwrap();
    let calibration = Calibration::conformal(run.scores().to_vec(), 0.1).unwrap();
    save(
        &SaveRequest {
            name: default_name(model, settings),
            model,
            settings,
            fit,
            calibration: &calibration,
            calibration_set: "features/images/id".into(),
            calibration_skipped: 0,
            embed_model: embed,
            made_by: "test".into(),
            sets: vec![SetSummary {
                name: id.name.clone(),
                role: "calibration".into(),
                images: id.len(),
            }],
            metrics: None,
        },
        out,
    )
    .unwrap();
    calibration
}

#[test]
fn a_detector_keeps_only_its_methods_fit_tensors_and_scores_as_the_method_with_the_whole_fit() {
    let checked = saved_detectors_score_as_their_methods(&feature_model(), |_| true);
    for name in [
        "knn",
        "nnguide",
        "pnml",
        "mahalanobis",
        "rmds",
        "gmm",
        "vim",
        "residual",
        "react",
        "dice",
        "fdbd",
        "nci",
        "she",
        "vra",
        "tempscale",
        "openmax",
        "klm",
        "msp",
    ] {
        assert!(checked.contains(&name), "{name} was not checked: {checked:?}");
    }
}

/// Saves a detector of every method `model` can run (that `keep` keeps) with a fit of the fixture's
/// training images, and checks that it holds only its method's fit tensors and scores the test
/// images exactly as the method with the whole fit; returns the methods checked.
fn saved_detectors_score_as_their_methods(model: &Model, keep: impl Fn(&str) -> bool) -> Vec<&'static str> {
    let dir = tempfile::tempdir().unwrap();
    let fit = Fit::load(&make_fit(model, dir.path()), model, usize::MAX).unwrap();
    let dims = dims_with_fit(model, Some(&fit));
    let sets = vec![
        set("features/images/id", Role::Id, model),
        set("features/images/ood", Role::Ood, model),
    ];
    let caps = model.capabilities();
    let mut checked = Vec::new();
    for method in Method::all().filter(|m| m.missing(&caps, true).is_none() && keep(m.name())) {
        let settings = ScoreSettings::default_for(method, &dims);
        let needs_fit = method.detector().needs().fit;
        let path = dir.path().join(format!("{}.oodsd", method.name()));
        let calibration = save_detector(model, &settings, needs_fit.then_some(&fit), &path, false);

        // Only the method's tensors (and the counts and KL templates every fit has) are kept.
        let reader = Reader::open(&path).unwrap();
        let mut expected: Vec<&str> = vec!["calibration_scores", "card", "manifest"];
        if needs_fit {
            expected.extend(["counts", "fit_info", "klm_templates"]);
            expected.extend(method.detector().fit_tensors());
        }
        expected.sort_unstable();
        expected.dedup();
        let mut kept: Vec<String> = safetensors::SafeTensors::read_metadata(&std::fs::read(&path).unwrap())
            .unwrap()
            .1
            .tensors()
            .into_keys()
            .collect();
        kept.sort();
        assert_eq!(kept, expected, "{}", method.name());
        drop(reader);

        // Loaded, it scores every image exactly as the method with the whole fit.
        let detector = SavedDetector::load(&path, DeviceChoice::Cpu).unwrap();
        assert_eq!(detector.settings, settings);
        assert_eq!(detector.calibration, calibration);
        let whole = Plan::single(model, &settings, Some(&fit)).unwrap();
        let want = run_scoring(&whole, &sets, 16, &AtomicBool::new(false), &mut |_| {}).unwrap();
        let got = detector
            .score_sets(&sets, 16, &AtomicBool::new(false), &mut |_| {})
            .unwrap();
        assert_eq!(got.scores(), want.scores(), "{}", method.name());
        assert_eq!(
            got.images.iter().map(|i| i.pred).collect::<Vec<_>>(),
            want.images.iter().map(|i| i.pred).collect::<Vec<_>>()
        );
        checked.push(method.name());
    }
    checked
}

/// The methods on inner blocks, saved from the feature model that returns its blocks: a gram
/// detector keeps the block widths and Gram's bounds, multi-mahalanobis its per-block statistics.
#[test]
fn block_method_detectors_keep_their_tensors_and_score_as_the_methods() {
    let model = Model::load(&fx().join("features/models/feat_blocks.toml"), DeviceChoice::Cpu).unwrap();
    let blocks = ["gram", "multi-mahalanobis", "rankfeat"];
    let mut checked = saved_detectors_score_as_their_methods(&model, |name| blocks.contains(&name));
    checked.sort_unstable();
    assert_eq!(checked, blocks);
}

#[test]
fn decoded_pixels_score_as_the_streamed_run_in_any_batch() {
    let dir = tempfile::tempdir().unwrap();
    let model = feature_model();
    let fit = Fit::load(&make_fit(&model, dir.path()), &model, usize::MAX).unwrap();
    let settings = ScoreSettings::default_for(Method::named("knn"), &dims_with_fit(&model, Some(&fit)));
    let path = dir.path().join("knn.oodsd");
    save_detector(&model, &settings, Some(&fit), &path, false);
    let detector = SavedDetector::load(&path, DeviceChoice::Cpu).unwrap();
    let ood = set("features/images/ood", Role::Ood, &model);
    let run = detector
        .score_sets(std::slice::from_ref(&ood), 64, &AtomicBool::new(false), &mut |_| {})
        .unwrap();
    let pre = detector.preprocess();
    let pixels: Vec<Vec<f32>> = (0..ood.len())
        .map(|i| oodscope_data::decode_file(Path::new(&ood.item_name(i)), &pre).unwrap())
        .collect();
    for batch in [1, 3, pixels.len()] {
        let verdicts: Vec<_> = pixels
            .chunks(batch)
            .flat_map(|chunk| detector.score_pixels(chunk).unwrap())
            .collect();
        for (i, v) in verdicts.iter().enumerate() {
            let want = run.scores()[i];
            assert!(
                (v.score - want).abs() <= 1e-6 * want.abs().max(1.0),
                "batch {batch}, image {i}: {} vs {want}",
                v.score
            );
            assert_eq!(v.class, run.images[i].pred as usize);
            assert_eq!(v.is_ood, detector.calibration.is_ood(v.score));
            assert_eq!(v.p_value, detector.calibration.p_value(v.score));
        }
    }
}

#[test]
fn an_embedded_model_makes_the_file_the_whole_detector() {
    let dir = tempfile::tempdir().unwrap();
    // A copy of the model, card and head, removed once the detector is written.
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    for entry in std::fs::read_dir(fx().join("features/models")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), models.join(entry.file_name())).unwrap();
        }
    }
    let model = Model::load(&models.join("feat.toml"), DeviceChoice::Cpu).unwrap();
    let settings = ScoreSettings::default_for(Method::named("energy"), &dims_with_fit(&model, None));
    let path = dir.path().join("energy.oodsd");
    save_detector(&model, &settings, None, &path, true);
    let id = set("features/images/id", Role::Id, &model);
    let want = score_sets(&model, None, std::slice::from_ref(&id), &settings, 16).unwrap();
    drop(model);
    std::fs::remove_dir_all(&models).unwrap();
    let moved = dir.path().join("elsewhere");
    std::fs::create_dir(&moved).unwrap();
    std::fs::rename(&path, moved.join("energy.oodsd")).unwrap();
    let detector = SavedDetector::load(&moved.join("energy.oodsd"), DeviceChoice::Cpu).unwrap();
    assert!(detector.manifest.model.embedded);
    let got = detector
        .score_sets(std::slice::from_ref(&id), 16, &AtomicBool::new(false), &mut |_| {})
        .unwrap();
    assert_eq!(got.scores(), want.scores());
}

/// Loads a detector that must fail, and returns the message.
fn refused(path: &Path) -> String {
    let e = SavedDetector::load(path, DeviceChoice::Cpu).unwrap_err().to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    assert!(e.contains(&path.display().to_string()), "names the file: {e}");
    e
}

#[test]
fn damaged_newer_moved_changed_or_foreign_files_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    for name in ["plain.pt", "plain.toml"] {
        std::fs::copy(fx().join("models").join(name), models.join(name)).unwrap();
    }
    let model = Model::load(&models.join("plain.pt"), DeviceChoice::Cpu).unwrap();
    let settings = ScoreSettings::default_for(Method::named("msp"), &dims_with_fit(&model, None));
    let good = dir.path().join("msp.oodsd");
    let id = ImageSet::open(fx().join("images/id").to_str().unwrap(), Role::Id, &model.card.classes).unwrap();
    let run = score_sets(&model, None, std::slice::from_ref(&id), &settings, 16).unwrap();
    let calibration = Calibration::conformal(run.scores().to_vec(), 0.2).unwrap();
    let request = SaveRequest {
        name: "plain-msp".into(),
        model: &model,
        settings: &settings,
        fit: None,
        calibration: &calibration,
        calibration_set: "images/id".into(),
        calibration_skipped: 0,
        embed_model: false,
        made_by: "test".into(),
        sets: Vec::new(),
        metrics: None,
    };
    save(&request, &good).unwrap();
    assert!(SavedDetector::load(&good, DeviceChoice::Cpu).is_ok());
    let bytes = std::fs::read(&good).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;

    // One byte of the data changed (the manifest's first byte: the digest covers it too).
    let mut damaged = bytes.clone();
    damaged[8 + header_len] ^= 0x01;
    let path = dir.path().join("damaged.oodsd");
    std::fs::write(&path, &damaged).unwrap();
    assert!(refused(&path).contains("is damaged"));

    // A newer format version in the header.
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    let newer_header = header.replace("\"format_version\":\"1\"", "\"format_version\":\"9\"");
    assert_ne!(newer_header, header);
    let mut newer = bytes[..8].to_vec();
    newer.extend_from_slice(newer_header.as_bytes());
    newer.extend_from_slice(&bytes[8 + header_len..]);
    let path = dir.path().join("newer.oodsd");
    std::fs::write(&path, &newer).unwrap();
    let e = refused(&path);
    assert!(e.contains("format 9") && e.contains("upgrade oodscope"), "{e}");

    // Truncated, not a safetensors file, a fit file.
    let path = dir.path().join("truncated.oodsd");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(refused(&path).contains("damaged") || refused(&path).contains("not a detector file"));
    let path = dir.path().join("text.oodsd");
    std::fs::write(&path, "hello").unwrap();
    assert!(refused(&path).contains("not a detector file"));
    let feat = feature_model();
    let fit_path = make_fit(&feat, dir.path());
    assert!(refused(&fit_path).contains("is a fit file, not a detector"));

    // Moved away from its model.
    let away = dir.path().join("away");
    std::fs::create_dir(&away).unwrap();
    std::fs::copy(&good, away.join("msp.oodsd")).unwrap();
    let nested = away.join("deeper");
    std::fs::create_dir(&nested).unwrap();
    std::fs::copy(&good, nested.join("msp.oodsd")).unwrap();
    let e = refused(&nested.join("msp.oodsd"));
    assert!(e.contains("is not there") && e.contains("--embed-model"), "{e}");

    // The model's card changed since.
    let card = std::fs::read_to_string(models.join("plain.toml")).unwrap();
    std::fs::write(models.join("plain.toml"), format!("{card}\n# edited\n")).unwrap();
    let e = refused(&good);
    assert!(e.contains("differs from the one it was made with"), "{e}");
}

/// The conformal guarantee, checked statistically on real scores: the bundled Fashion-MNIST model's
/// MSP and energy scores of the 2000 demo test images, split at random 2000 times into n
/// calibration images and the rest; δ from the calibration part; the share of the rest below δ is
/// a false alarm. Its mean must be at most α (within two standard errors), and no more than one
/// calibration rank below it (the rule is tight, not just safe).
#[test]
fn the_conformal_threshold_keeps_the_false_alarm_rate_on_new_id_images_at_most_alpha() {
    let root = oodscope_engine::assets_root();
    let model = Model::load(&root.join("models/fmnist-resnet.pt"), DeviceChoice::Cpu).unwrap();
    let id = ImageSet::open(
        root.join("assets/demo/fmnist-test").to_str().unwrap(),
        Role::Id,
        &model.card.classes,
    )
    .unwrap();
    for method in ["msp", "energy"] {
        let settings = ScoreSettings::default_for(Method::named(method), &dims_with_fit(&model, None));
        let run = score_sets(&model, None, std::slice::from_ref(&id), &settings, 128).unwrap();
        let scores = run.scores().to_vec();
        assert_eq!(scores.len(), 2000);
        let mut rng = SplitMix64(20261206);
        for (alpha, n) in [(0.05, 300), (0.1, 100), (0.01, 500)] {
            let splits = 2000;
            let mut rates = Vec::with_capacity(splits);
            for _ in 0..splits {
                let order = rng.permutation(scores.len());
                let pick = |range: std::ops::Range<usize>| -> Vec<f32> {
                    order[range].iter().map(|&i| scores[i as usize]).collect()
                };
                let calibration = Calibration::conformal(pick(0..n), alpha).unwrap();
                let test = pick(n..scores.len());
                let flagged = test.iter().filter(|&&s| calibration.is_ood(s)).count();
                rates.push(flagged as f64 / test.len() as f64);
            }
            let mean = rates.iter().sum::<f64>() / splits as f64;
            let sd = (rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (splits - 1) as f64).sqrt();
            let se = sd / (splits as f64).sqrt();
            eprintln!("{method} α = {alpha}, n = {n}: mean false alarm {mean:.5} ± {se:.5}");
            assert!(mean <= alpha + 2.0 * se, "{method} α = {alpha}: {mean} ± {se}");
            let floor = alpha - 1.0 / (n + 1) as f64;
            assert!(
                mean >= floor - 3.0 * se,
                "{method} α = {alpha}: {mean} ± {se} is far below α"
            );
        }
    }
}
