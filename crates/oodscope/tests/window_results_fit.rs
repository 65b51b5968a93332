//! A results file in the window without its model, with a fit file opened beside it: the methods
//! with a fit re-score the saved features and equal the model run's report; Tune searches KNN's
//! grid exactly as with the model; Compare ranks every method the file and the fit can serve (the
//! rest listed with why), each equal to the model run; a broken fit file is refused in one line.

use std::path::Path;

use oodscope_engine::score::Method;
use oodscope_gui::app::{Command, FitState};
use oodscope_gui::testing::{opened, results_harness, root, step_until};

use crate::support::read_json;
use crate::window_results::{assert_metrics_equal, demo_set_args, oodscope_cli};

/// `oodscope fit` on the demo's training folder, written to `out`.
fn demo_fit(dir: &Path, out: &Path) {
    let (model, train) = (
        root().join("models/fmnist-resnet.pt"),
        root().join("assets/demo/fmnist-train"),
    );
    oodscope_cli(
        dir,
        &[
            "fit",
            "--model",
            model.to_str().unwrap(),
            "--train",
            train.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--device",
            "cpu",
            "--quiet",
        ],
    );
}

#[test]
fn a_fit_opened_beside_a_results_file_serves_knn_tune_and_compare_equal_to_the_model_run() {
    let dir = tempfile::tempdir().unwrap();
    let (fit, parquet, report, grid) = (
        dir.path().join("fit.safetensors"),
        dir.path().join("r.parquet"),
        dir.path().join("model.json"),
        dir.path().join("grid.csv"),
    );
    demo_fit(dir.path(), &fit);
    // The file: MSP and energy, with the logits and features.
    let mut args: Vec<String> = vec!["compare".into()];
    args.extend(demo_set_args(&root().join("assets/demo/mnist")));
    args.extend(
        [
            "--methods",
            "msp,energy",
            "--results",
            parquet.to_str().unwrap(),
            "--save-logits",
            "--save-features",
        ]
        .map(String::from),
    );
    oodscope_cli(dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    // The reference: the model run with the fit.
    let mut args: Vec<String> = vec!["compare".into()];
    args.extend(demo_set_args(&root().join("assets/demo/mnist")));
    args.extend(
        [
            "--methods",
            "knn,mahalanobis,vim",
            "--fit",
            fit.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ]
        .map(String::from),
    );
    oodscope_cli(dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let report = read_json(&report);
    // KNN's k tuned with the model, as the window tunes (a quarter of every set validates).
    let mut args: Vec<String> = vec!["tune".into()];
    args.extend(demo_set_args(&root().join("assets/demo/mnist")));
    args.extend(
        [
            "--method",
            "knn",
            "--validation",
            "0.25",
            "--fit",
            fit.to_str().unwrap(),
            "--grid",
            grid.to_str().unwrap(),
        ]
        .map(String::from),
    );
    oodscope_cli(dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());

    let mut h = results_harness(Some(&parquet), dir.path());
    step_until(&mut h, "the results file to open", opened);
    let knn = Method::named("knn");
    let why = h
        .state()
        .opened
        .as_ref()
        .unwrap()
        .method_missing(knn, h.state().beside());
    assert!(
        why.as_deref()
            .is_some_and(|w| w.contains("needs a fit — open the fit file beside the results")),
        "{why:?}"
    );

    // A fit for other outputs (here: a truncated copy) is refused in one line, and nothing breaks.
    let broken = dir.path().join("broken.safetensors");
    std::fs::write(&broken, &std::fs::read(&fit).unwrap()[..1000]).unwrap();
    h.state_mut().push(Command::OpenFit(broken.clone()));
    h.step();
    step_until(&mut h, "the broken fit to be refused", |app| {
        matches!(app.fit, Some(FitState::Failed(_)))
    });
    let Some(FitState::Failed(message)) = &h.state().fit else {
        unreachable!()
    };
    assert!(
        message.contains(broken.to_str().unwrap()) && !message.contains('\n'),
        "{message}"
    );

    h.state_mut().push(Command::OpenFit(fit.clone()));
    h.step();
    step_until(&mut h, "the fit to open", oodscope_gui::app::OodscopeApp::has_fit);
    assert!(
        h.state()
            .opened
            .as_ref()
            .unwrap()
            .method_missing(knn, h.state().beside())
            .is_none()
    );
    for name in ["knn", "mahalanobis"] {
        h.state_mut().push(Command::SetMethod(Method::named(name)));
        h.step();
        step_until(&mut h, "the saved features re-scored", |app| {
            opened(app) && app.result.as_ref().unwrap().shown.method == Method::named(name)
        });
        assert!(h.state().model.is_none());
        assert_metrics_equal(h.state(), &report["methods"][name]["metrics"], name);
    }

    // Tuning without the model: KNN's grid on the saved features, every validation metric, the
    // choice and its test metrics equal to the model's run.
    h.state_mut().push(Command::SetMethod(knn));
    h.state_mut().push(Command::Tune);
    h.step();
    step_until(&mut h, "the tuning result", |app| {
        app.tune_result.is_some() && !app.is_tuning()
    });
    let app = h.state();
    let sets = &app.opened.as_ref().unwrap().sets;
    let window_grid = oodscope_engine::report::tuning::grid_csv(app.tune_result.as_ref().unwrap(), sets);
    assert_eq!(window_grid, std::fs::read_to_string(&grid).unwrap());

    // Compare without the model: the fit's methods ranked beside the stored columns.
    h.state_mut().push(Command::Compare);
    h.step();
    step_until(&mut h, "the comparison", |app| {
        app.comparison.is_some() && !app.is_comparing()
    });
    let comparison = h.state().comparison.as_ref().unwrap();
    for name in ["knn", "mahalanobis", "msp", "energy"] {
        let row = comparison
            .board
            .rows
            .iter()
            .find(|r| r.settings.method == Method::named(name))
            .unwrap_or_else(|| panic!("{name} not ranked; not run: {:?}", comparison.not_run));
        if let Some(reference) = report["methods"].get(name) {
            for (set, metrics) in comparison.board.sets.iter().zip(&row.per_set) {
                let want = reference["metrics"][&set.name]["auroc"].as_f64().unwrap();
                let got = metrics.as_ref().unwrap().auroc;
                assert!((got - want).abs() < 1e-6, "{name} on {}: {got} vs {want}", set.name);
            }
        }
    }
    // What cannot run from the file says why: ODIN at its slider's ε, the methods with the head (the
    // fit of a model keeps none).
    let why = |name: &str| {
        comparison
            .not_run
            .iter()
            .find(|n| n.method == Method::named(name))
            .map(|n| n.why.clone())
    };
    for name in ["gradnorm", "vim"] {
        assert!(
            why(name).is_some_and(|w| w.contains("needs the head")),
            "{name}: {:?}",
            why(name)
        );
    }
    assert!(why("odin").is_some_and(|w| w.contains("ε")), "{:?}", why("odin"));
}
