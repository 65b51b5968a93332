//! gmm in the window: the window's fit of the demo keeps per-class covariances, so gmm is offered
//! and scores; a fit without them (a model whose covariances would pass 512 MB) makes the picker
//! say why, with the size and what to run instead, and disables it.

use egui_kittest::kittest::Queryable;
use oodscope_engine::score::Method;
use oodscope_gui::app::FitState;
use oodscope_gui::testing::{demo_settings, harness_with, root, scored, shows_text, step_until};
use oodscope_gui::ui::method_picker::lacks_covariances;

#[test]
fn gmm_runs_on_the_windows_fit_and_a_fit_without_covariances_says_why() {
    let out = tempfile::tempdir().unwrap();
    let mut settings = demo_settings(out.path());
    settings.train = Some(root().join("assets/demo/fmnist-train").display().to_string());
    settings.method = Method::named("gmm");
    let mut h = harness_with(settings);
    step_until(&mut h, "the fit and gmm's scores", |app| app.has_fit() && scored(app));
    let gmm = Method::named("gmm");
    let app = h.state();
    assert_eq!(app.result.as_ref().unwrap().shown.method, gmm);
    assert!(lacks_covariances(app, gmm).is_none());
    // The same fit without covariances: gmm is unavailable, and the picker says why.
    if let Some(FitState::Ready { info, .. }) = &mut h.state_mut().fit {
        info.class_covariances = false;
    }
    let why = lacks_covariances(h.state(), gmm).expect("a reason");
    assert!(why.starts_with("needs per-class covariances (0.0 GB here"), "{why}");
    assert!(lacks_covariances(h.state(), Method::named("knn")).is_none());
    h.step();
    h.get_by_label_contains("Unavailable here").click();
    h.step();
    assert!(shows_text(&h, &format!("Gaussian mixture: {why}")));
}
