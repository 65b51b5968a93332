//! The methods on logits and penultimate features against an independent float64 NumPy / PyTorch
//! reference written from docs/methods.md (`tests/fixtures/make_feature_refs.py`): every method's
//! per-image scores to 1e-4 (relative) at batch sizes 1 and 64, the fit statistics, and AUROC within
//! 1e-3 of pytorch-ood 0.4's detectors on the same features.

use crate::support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use oodscope_data::{ImageSet, Role};
use oodscope_engine::detect::Params;
use oodscope_engine::detect::plan::{Plan, dims_with_fit};
use oodscope_engine::fit::{FitOptions, fit_model};
use oodscope_engine::model::{DeviceChoice, Model};
use oodscope_engine::score::{Method, ScoreSettings, run_scoring};
use oodscope_engine::stats::Fit;
use oodscope_engine::stats::fit_file::Reader;
use oodscope_metrics::detection_metrics;
use serde_json::Value;
use tch::Tensor;

const TOLERANCE: f64 = 1e-4;

fn fx() -> PathBuf {
    support::fixtures()
}

fn read_json(rel: &str) -> Value {
    let path = fx().join(rel);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// The fit of `model` on a fixture folder, made once per test process into a temporary folder.
fn fit_file(model: &Model, folder: &str, dir: &Path) -> PathBuf {
    let out = dir.join(format!("{}-{}.safetensors", model.card.name, folder.replace('/', "_")));
    if !out.exists() {
        let set = ImageSet::open(fx().join(folder).to_str().unwrap(), Role::Id, &model.card.classes).unwrap();
        let options = FitOptions {
            batch_size: 32,
            max_images: None,
            class_covariances: true,
        };
        fit_model(model, &set, &options, &out, &AtomicBool::new(false), &mut |_| {}).unwrap();
    }
    out
}

fn reference_scores(rel: &str) -> HashMap<String, f64> {
    let text = std::fs::read_to_string(fx().join(rel)).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let (path, score) = l.split_once(',').unwrap();
            (path.to_string(), score.parse().unwrap())
        })
        .collect()
}

fn test_sets(model: &Model) -> Vec<ImageSet> {
    vec![
        ImageSet::open(
            fx().join("features/images/id").to_str().unwrap(),
            Role::Id,
            &model.card.classes,
        )
        .unwrap(),
        ImageSet::open(
            fx().join("features/images/ood").to_str().unwrap(),
            Role::Ood,
            &model.card.classes,
        )
        .unwrap(),
    ]
}

fn params_of(case: &Value) -> Params {
    case["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect()
}

/// The manifest case's method, settings and fit.
fn setup(case: &Value, dir: &Path) -> (Model, ScoreSettings, Option<Fit>) {
    let model = Model::load(&fx().join(case["model"].as_str().unwrap()), DeviceChoice::Cpu).unwrap();
    let fit = case["fit"]
        .as_str()
        .map(|folder| Fit::load(&fit_file(&model, folder, dir), &model, 256 << 20).unwrap());
    let method: Method = case["method"].as_str().unwrap().parse().unwrap();
    let settings = ScoreSettings::new(method, &params_of(case), &dims_with_fit(&model, fit.as_ref())).unwrap();
    (model, settings, fit)
}

/// `|a − b| ≤ 1e-4·max(|b|, scale)`: relative, with scores nearer zero than a tenth of the case's
/// spread (standard deviation) compared at that scale. Methods that subtract two large terms
/// (relative Mahalanobis `d_c − d_0`, ViM `E − α‖r‖`) pass through zero, and there the last bits of
/// the float32 features (the reference runs the model in Python, oodscope in libtorch, at other
/// batch sizes) dominate a relative error.
fn close(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= TOLERANCE * b.abs().max(scale)
}

/// The standard deviation of the reference scores of a case.
fn spread(scores: &HashMap<String, f64>) -> f64 {
    let n = scores.len() as f64;
    let mean = scores.values().sum::<f64>() / n;
    (scores.values().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}

#[test]
fn every_method_matches_the_float64_reference_at_batch_sizes_1_and_64() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = read_json("features/reference/manifest.json");
    let cases = manifest.as_array().unwrap();
    let mut methods = std::collections::BTreeSet::new();
    let mut report = Vec::new();
    for case in cases {
        let (model, settings, fit) = setup(case, dir.path());
        let expected = reference_scores(case["file"].as_str().unwrap());
        let scale = spread(&expected) / 10.0;
        let plan = Plan::single(&model, &settings, fit.as_ref()).unwrap();
        let sets = test_sets(&model);
        let mut worst = 0.0f64;
        let mut by_batch = Vec::new();
        for batch in [1, 64] {
            let run = run_scoring(&plan, &sets, batch, &AtomicBool::new(false), &mut |_| {}).unwrap();
            assert_eq!(run.images.len(), expected.len(), "{case}");
            for (image, &score) in run.images.iter().zip(run.scores()) {
                let rel = Path::new(&*image.path).strip_prefix(fx()).unwrap().to_str().unwrap();
                let want = expected[rel];
                assert!(
                    close(score as f64, want, scale),
                    "{} ({}) batch {batch}, {rel}: {score} vs reference {want}",
                    settings.describe(),
                    case["model"]
                );
                worst = worst.max((score as f64 - want).abs() / want.abs().max(scale));
            }
            by_batch.push(run.scores().to_vec());
        }
        assert_eq!(by_batch[0].len(), by_batch[1].len());
        methods.insert(settings.method.name());
        report.push(format!("{} {}: {worst:.1e}", case["model"], settings.describe()));
    }
    eprintln!("largest relative deviation per case:\n  {}", report.join("\n  "));
    for name in [
        "maxlogit",
        "entropy",
        "gen",
        "klm",
        "tempscale",
        "openmax",
        "mahalanobis",
        "rmds",
        "gmm",
        "knn",
        "nnguide",
        "vim",
        "residual",
        "fdbd",
        "nci",
        "she",
        "pnml",
        "react",
        "vra",
        "ash-p",
        "ash-b",
        "ash-s",
        "scale",
        "lts",
        "dice",
        "gradnorm",
        "rankfeat",
        "multi-mahalanobis",
        "gram",
    ] {
        assert!(methods.contains(name), "no reference case for {name}");
    }
}

fn matrix(v: &Value) -> Vec<Vec<Option<f64>>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| match row {
            Value::Array(values) => values.iter().map(Value::as_f64).collect(),
            Value::Number(n) => vec![n.as_f64()],
            _ => vec![None],
        })
        .collect()
}

fn tensor_rows(t: &Tensor) -> Vec<Vec<f64>> {
    let t = t.to_kind(tch::Kind::Double);
    let t = if t.dim() == 1 { t.unsqueeze(1) } else { t };
    let t = if t.dim() == 3 { t.flatten(0, 1) } else { t };
    let cols = t.size()[1] as usize;
    let flat = Vec::<f64>::try_from(t.contiguous().view([-1])).unwrap();
    flat.chunks(cols).map(<[f64]>::to_vec).collect()
}

/// Every entry of `ours` within `tol` (relative to the matrix's largest entry) of `theirs`; rows
/// that are null in the reference (empty classes) are skipped. Returns the largest deviation.
fn assert_matrix(what: &str, ours: &Tensor, theirs: &Value, tol: f64) -> f64 {
    let ours = tensor_rows(ours);
    let theirs = matrix(theirs);
    assert_eq!(ours.len(), theirs.len(), "{what}: rows");
    let scale = theirs
        .iter()
        .flatten()
        .flatten()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-12);
    let mut worst = 0.0f64;
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        if b.iter().all(Option::is_none) {
            continue;
        }
        assert_eq!(a.len(), b.len(), "{what}: row {i}");
        for (j, (x, y)) in a.iter().zip(b).enumerate() {
            let y = y.unwrap();
            worst = worst.max((x - y).abs() / scale);
            assert!((x - y).abs() <= tol * scale, "{what}[{i}][{j}]: {x} vs NumPy {y}");
        }
    }
    worst
}

#[test]
fn fit_statistics_equal_numpys() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(&fx().join("features/models/feat.toml"), DeviceChoice::Cpu).unwrap();
    for folder in ["features/fit", "features/fit_unlabelled"] {
        let name = folder.rsplit('/').next().unwrap();
        let reference = read_json(&format!("features/reference/fit_{name}.json"));
        let path = fit_file(&model, folder, dir.path());
        let file = Reader::open(&path).unwrap();
        let t = |n: &str| file.tensor(n).unwrap();
        let counts: Vec<u64> = reference["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let fit = Fit::load(&path, &model, 256 << 20).unwrap();
        assert_eq!(fit.info.counts, counts, "{name}: images per class");
        assert_eq!(fit.info.images, reference["n"].as_u64().unwrap());
        assert_eq!(
            fit.info.labels,
            if name == "fit" {
                oodscope_engine::stats::LabelSource::Folders
            } else {
                oodscope_engine::stats::LabelSource::Predicted
            }
        );
        // Relative to each statistic's largest entry. The features themselves differ in their
        // float32 last bits between libtorch and PyTorch; pseudo-inverses amplify that by the
        // covariance's condition number (about 1e4 and 6e4 here).
        let mut measured = Vec::new();
        for (ours, theirs, tol) in [
            ("class_means", "class_means", 1e-6),
            ("shared_cov", "shared_cov", 1e-6),
            ("global_mean", "global_mean", 1e-6),
            ("global_cov", "global_cov", 1e-6),
            ("vim_u", "vim_u", 1e-6),
            ("vim_eigenvalues", "vim_eigenvalues", 1e-6),
            ("shared_pinv", "shared_pinv", 1e-4),
            ("global_pinv", "global_pinv", 1e-4),
            ("vim_alpha", "vim_alpha", 1e-5),
            ("klm_templates", "klm_templates", 1e-6),
            ("knn_bank", "bank", 1e-6),
            ("nnguide_energies", "nnguide_energies", 1e-6),
            ("she_patterns", "she_patterns", 1e-6),
            ("pnml_gram_pinv", "pnml_gram_pinv", 1e-4),
            ("openmax_means", "openmax_means", 1e-6),
            // [C, D, D] as C·D rows of D.
            ("class_covariances", "class_covariances", 1e-6),
            ("vra_quantiles", "vra_quantiles", 1e-6),
        ] {
            let worst = assert_matrix(&format!("{name} {ours}"), &t(ours), &reference[theirs], tol);
            measured.push(format!("{ours} {worst:.1e}"));
        }
        // Temperature scaling's T, fitted on labelled images only.
        match (fit.temperature, reference["temperature"].as_f64()) {
            (Some(ours), Some(theirs)) => {
                let rel = (ours - theirs).abs() / theirs;
                assert!(rel <= 1e-5, "{name} temperature: {ours} vs {theirs}");
                measured.push(format!("temperature {rel:.1e}"));
            }
            (ours, theirs) => assert_eq!(ours, theirs, "{name} temperature"),
        }
        eprintln!(
            "{name}: largest deviations (of each statistic's largest entry): {}",
            measured.join(", ")
        );
        // Eigenvectors (unit length) up to sign; those of the smallest eigenvalues are the most
        // sensitive to the features' last bits.
        let ours = tensor_rows(&t("vim_eigenvectors"));
        let theirs = matrix(&reference["vim_eigenvectors"]);
        let d = ours.len();
        let mut worst = 0.0f64;
        for j in 0..d {
            let dot: f64 = (0..d).map(|i| ours[i][j] * theirs[i][j].unwrap()).sum();
            let sign = dot.signum();
            for i in 0..d {
                let (a, b) = (ours[i][j] * sign, theirs[i][j].unwrap());
                worst = worst.max((a - b).abs());
                assert!((a - b).abs() <= 1e-5, "{name} eigenvector {j}[{i}]: {a} vs {b}");
            }
        }
        eprintln!("{name}: eigenvectors up to sign within {worst:.1e}");
        // ReAct's percentiles of all N·D entries.
        let table = fit.react_percentiles.as_ref().unwrap();
        for (q, want) in reference["react_percentiles"].as_object().unwrap() {
            let q: f64 = q.parse().unwrap();
            let got = table[(q * 10.0).round() as usize];
            let want = want.as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{name} percentile {q}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn auroc_matches_pytorch_ood_where_it_has_the_method() {
    let dir = tempfile::tempdir().unwrap();
    let comparisons = read_json("features/reference/pytorch_ood.json");
    let manifest = read_json("features/reference/manifest.json");
    let mut compared = 0;
    let mut lines = Vec::new();
    for case in manifest.as_array().unwrap() {
        let model_file = case["model"].as_str().unwrap();
        let mut key = vec![case["method"].as_str().unwrap().to_string()];
        key.extend(
            case["params"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| format!("{k}={v}")),
        );
        if case["fit"].as_str().is_some_and(|f| f != "features/fit") {
            key.push(format!(
                "fit={}",
                case["fit"].as_str().unwrap().rsplit('/').next().unwrap()
            ));
        }
        let stem = Path::new(model_file).file_stem().unwrap().to_str().unwrap();
        if stem != "feat" {
            key.push(format!("model={stem}"));
        }
        let key = key.join(" ");
        let Some(entry) = comparisons.get(&key) else { continue };
        if entry["comparable"] != true {
            continue;
        }
        let (model, settings, fit) = setup(case, dir.path());
        let plan = Plan::single(&model, &settings, fit.as_ref()).unwrap();
        let sets = test_sets(&model);
        let run = run_scoring(&plan, &sets, 64, &AtomicBool::new(false), &mut |_| {}).unwrap();
        let auroc = detection_metrics(&run.set_scores(0), &run.set_scores(1)).unwrap().auroc;
        let theirs = entry["pytorch_ood_auroc"].as_f64().unwrap();
        lines.push(format!("{key}: oodscope {auroc:.6}, pytorch-ood {theirs:.6}"));
        assert!(
            (auroc - theirs).abs() <= 1e-3,
            "{key}: AUROC {auroc} vs pytorch-ood {theirs}"
        );
        compared += 1;
    }
    eprintln!("{}", lines.join("\n"));
    assert!(compared >= 25, "only {compared} comparisons with pytorch-ood");
}

#[test]
fn a_fit_without_labels_has_no_temperature_and_levels_off_the_fit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(&fx().join("features/models/feat.toml"), DeviceChoice::Cpu).unwrap();
    let refuse = |folder: &str, method: &str, params: Params| -> String {
        let fit = Fit::load(&fit_file(&model, folder, dir.path()), &model, 256 << 20).unwrap();
        let method: Method = method.parse().unwrap();
        let settings = ScoreSettings::new(method, &params, &dims_with_fit(&model, Some(&fit))).unwrap();
        match Plan::single(&model, &settings, Some(&fit)) {
            Ok(_) => panic!("{} was accepted", settings.describe()),
            Err(e) => e.to_string(),
        }
    };
    let message = refuse("features/fit_unlabelled", "tempscale", Params::new());
    assert!(
        message.contains("has no fitted temperature: it was made without class folders") && !message.contains('\n'),
        "{message}"
    );
    let message = refuse(
        "features/fit",
        "vra",
        Params::new().with("lower", 0.5).with("upper", 0.2),
    );
    assert!(message.contains("give lower ≤ upper"), "{message}");
    // OpenMax's tails are stored at the Euclidean weights 0, 0.25, …, 1 and up to 100 long.
    let openmax = |name: &str, value: f64| -> String {
        let method: Method = "openmax".parse().unwrap();
        ScoreSettings::new(method, &Params::new().with(name, value), &dims_with_fit(&model, None)).unwrap_err()
    };
    let message = openmax("euclid_weight", 0.3);
    assert!(
        message.contains("euclid_weight must be a multiple of 0.25, got 0.3"),
        "{message}"
    );
    let message = openmax("tailsize", 101.0);
    assert!(
        message.contains("tailsize must be between 1 and 100, got 101"),
        "{message}"
    );
}

/// A fit made without per-class covariances (as every fit before gmm) serves the other methods;
/// gmm on it is one line saying how to refit, never a panic.
#[test]
fn gmm_on_a_fit_without_class_covariances_says_how_to_refit() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(&fx().join("features/models/feat.toml"), DeviceChoice::Cpu).unwrap();
    let path = dir.path().join("plain.safetensors");
    let set = ImageSet::open(
        fx().join("features/fit").to_str().unwrap(),
        Role::Id,
        &model.card.classes,
    )
    .unwrap();
    let options = FitOptions {
        batch_size: 32,
        max_images: None,
        class_covariances: false,
    };
    fit_model(&model, &set, &options, &path, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert!(!Reader::open(&path).unwrap().has("class_covariances"));
    let fit = Fit::load(&path, &model, 256 << 20).unwrap();
    assert!(!fit.info.class_covariances && fit.class_covariances.is_none());
    let dims = dims_with_fit(&model, Some(&fit));
    let settings = ScoreSettings::new("gmm".parse().unwrap(), &Params::new(), &dims).unwrap();
    let message = match Plan::single(&model, &settings, Some(&fit)) {
        Ok(_) => panic!("gmm was accepted without class covariances"),
        Err(e) => e.to_string(),
    };
    assert!(
        message.contains("has no per-class covariances")
            && message.contains("oodscope fit --class-covariances")
            && message.contains(path.to_str().unwrap())
            && !message.contains('\n'),
        "{message}"
    );
    let knn = ScoreSettings::new("knn".parse().unwrap(), &Params::new(), &dims).unwrap();
    assert!(Plan::single(&model, &knn, Some(&fit)).is_ok());
    // The compare selection gives the reason that names the missing statistic.
    let method: Method = "gmm".parse().unwrap();
    assert_eq!(
        oodscope_engine::compare::selection::lacking(&fit, method),
        oodscope_engine::detect::Missing::ClassCovariances
    );
}
