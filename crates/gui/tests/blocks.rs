//! The methods on inner blocks in the window: a model whose card lists `blocks` offers rankfeat and,
//! with a fit, multi-mahalanobis (and gram); both score as the engine does, and switching between
//! them re-scores from the kept reductions. The demo's model (no blocks) lists all three as
//! unavailable with the reason.

use std::path::PathBuf;

use oodscope_data::{ImageSet, Role};
use oodscope_engine::detect::Missing;
use oodscope_engine::model::{DeviceChoice, Model};
use oodscope_engine::score::{Method, ScoreSettings, score_sets};
use oodscope_engine::stats::Fit;
use oodscope_gui::app::{SavedSet, Settings};
use oodscope_gui::testing::{auroc_of_first_ood, harness_with, root, scored, step_until};
use oodscope_metrics::detection_metrics;

fn fixtures() -> PathBuf {
    std::env::var_os("OODSCOPE_FIXTURES").map_or_else(|| root().join("target/fixtures"), PathBuf::from)
}

fn settings(export_dir: &std::path::Path, method: &str) -> Settings {
    let fx = fixtures().join("features");
    let set = |folder: &str, ood: bool| SavedSet {
        spec: fx.join(folder).display().to_string(),
        ood,
        enabled: true,
    };
    Settings {
        model: Some(fx.join("models/feat_blocks.pt").display().to_string()),
        sets: vec![set("images/id", false), set("images/ood", true)],
        train: Some(fx.join("fit").display().to_string()),
        method: Method::named(method),
        export_dir: export_dir.display().to_string(),
        ..Settings::default()
    }
}

/// The engine's AUROC of `method` on the same sets (the fit from the window's fit file).
fn engine_auroc(method: &str, fit: Option<&std::path::Path>) -> f64 {
    let fx = fixtures().join("features");
    let model = Model::load(&fx.join("models/feat_blocks.pt"), DeviceChoice::Cpu).unwrap();
    let fit = fit.map(|p| Fit::load(p, &model, usize::MAX).unwrap());
    let sets: Vec<ImageSet> = [("images/id", Role::Id), ("images/ood", Role::Ood)]
        .iter()
        .map(|(f, role)| ImageSet::open(fx.join(f).to_str().unwrap(), *role, &model.card.classes).unwrap())
        .collect();
    let settings = ScoreSettings::default_for(Method::named(method), &Default::default());
    let run = score_sets(&model, fit.as_ref(), &sets, &settings, 64).unwrap();
    detection_metrics(&run.set_scores(0), &run.set_scores(1)).unwrap().auroc
}

#[test]
fn rankfeat_and_multi_mahalanobis_score_in_the_window_as_in_the_engine() {
    let out = tempfile::tempdir().unwrap();
    let mut h = harness_with(settings(out.path(), "rankfeat"));
    step_until(&mut h, "rankfeat's scores", |app| app.has_fit() && scored(app));
    assert_eq!(
        h.state().result.as_ref().unwrap().shown.method,
        Method::named("rankfeat")
    );
    let rankfeat = auroc_of_first_ood(h.state());
    assert!((rankfeat - engine_auroc("rankfeat", None)).abs() < 1e-9, "{rankfeat}");

    h.state_mut().push(oodscope_gui::app::Command::SetMethod(Method::named(
        "multi-mahalanobis",
    )));
    let multi = Method::named("multi-mahalanobis");
    step_until(&mut h, "multi-mahalanobis's scores", |app| {
        scored(app) && app.result.as_ref().is_some_and(|r| r.shown.method == multi)
    });
    let app = h.state();
    assert_eq!(
        app.result.as_ref().unwrap().shown.method,
        Method::named("multi-mahalanobis")
    );
    let Some(oodscope_gui::app::FitState::Ready { info, .. }) = &app.fit else {
        panic!("the window has no fit");
    };
    let fit_path = info.path.clone();
    let multi = auroc_of_first_ood(app);
    assert!(
        (multi - engine_auroc("multi-mahalanobis", Some(&fit_path))).abs() < 1e-9,
        "{multi}"
    );
}

#[test]
fn the_demo_lists_the_block_methods_as_unavailable_with_the_reason() {
    let model = Model::load(&root().join("models/fmnist-resnet.pt"), DeviceChoice::Cpu).unwrap();
    let caps = model.capabilities();
    for name in ["rankfeat", "multi-mahalanobis", "gram"] {
        let missing = Method::named(name).missing(&caps, true);
        assert_eq!(missing, Some(Missing::Blocks), "{name}");
        assert!(Missing::Blocks.short().contains("--blocks"));
    }
}
