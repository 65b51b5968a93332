//! The real app driven by egui_kittest (no display, no GPU): it loads the demo, sliders found by
//! their labels change what the metrics table shows, δ changes the verdict counts in the same
//! frame, a simulated file drop adds a result card at once (scored between a long job's batches),
//! a press anywhere gives the keys back to the app, file names in any script have glyphs, and an
//! export writes a valid PNG with δ drawn in amber.

use std::sync::Arc;

use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use oodscope_engine::detect::Params;
use oodscope_engine::score::Method;
use oodscope_gui::app::{OodscopeApp, SavedSet, Tab};
use oodscope_gui::testing::{
    DroppedPath, auroc_of_first_ood, demo_settings as settings, harness, harness_with, root, scored, shows_text,
    step_until,
};

#[test]
fn demo_loads_and_the_temperature_slider_changes_the_metrics_shown() {
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(out.path());
    step_until(&mut h, "the demo to be scored", scored);
    let app = h.state();
    assert_eq!(app.result.as_ref().unwrap().run.images.len(), 2000 + 2000 + 300);
    let before = auroc_of_first_ood(app);
    assert!(
        shows_text(&h, &format!("{:.1}%", 100.0 * before)),
        "AUROC {before} not shown"
    );

    // T from 1000 down to 1: with ε = 0 the worker re-scores the cached logits (no model pass).
    h.get_by_role_and_label(Role::Slider, "Temperature T")
        .set_value_accesskit(1.0);
    h.step();
    assert!(!h.state().is_scoring(), "a T change with ε = 0 must not need the model");
    step_until(&mut h, "the re-scored result", |app| {
        !app.is_rescoring() && !app.result_is_stale()
    });
    let app = h.state();
    assert_eq!(app.settings.current_params().get("temperature"), Ok(1.0));
    assert!(!app.is_scoring(), "a T change with ε = 0 must not need the model");
    let after = auroc_of_first_ood(app);
    assert!(
        (after - before).abs() > 1e-3,
        "AUROC did not change: {before} → {after}"
    );
    assert!(
        shows_text(&h, &format!("{:.1}%", 100.0 * after)),
        "new AUROC {after} not shown"
    );
}

#[test]
fn epsilon_needs_the_model_and_never_shows_stale_numbers() {
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(out.path());
    step_until(&mut h, "the demo to be scored", scored);
    let before = auroc_of_first_ood(h.state());
    h.get_by_role_and_label(Role::Slider, "Perturbation ε")
        .set_value_accesskit(0.002);
    h.step();
    assert!(h.state().is_scoring(), "ε > 0 starts a background job");
    assert!(
        h.state().result_is_stale(),
        "the previous result is marked as such while updating"
    );
    assert!(shows_text(&h, "updating…"));
    step_until(&mut h, "the ε = 0.002 result", scored);
    let app = h.state();
    assert_eq!(app.result.as_ref().unwrap().shown.get("epsilon"), Ok(0.002));
    assert_ne!(auroc_of_first_ood(app), before);
}

#[test]
fn moving_the_threshold_changes_the_verdict_counts_in_the_same_frame() {
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(out.path());
    step_until(&mut h, "the demo to be scored", scored);
    let (lo, hi) = h.state().derived.as_ref().unwrap().range;
    let counts = |app: &OodscopeApp| {
        let p = app.derived.as_ref().unwrap().ood[0]
            .operating_point(app.threshold.unwrap())
            .unwrap();
        (p.id_as_id, p.id_as_ood)
    };
    let first = counts(h.state());
    let middle = lo + 0.5 * (hi - lo);
    h.get_by_role_and_label(Role::Slider, "Threshold δ")
        .set_value_accesskit(middle as f64);
    h.step();
    let second = counts(h.state());
    assert_ne!(first, second, "verdict counts did not move with δ");
    assert!(
        shows_text(&h, &format!("{} / {}", second.0, second.1)),
        "counts {second:?} not shown"
    );
    h.get_by_label("δ at 95% TPR").click();
    h.step();
    h.step();
    let p = h.state().derived.as_ref().unwrap().ood[0]
        .operating_point(h.state().threshold.unwrap())
        .unwrap();
    assert!(p.tpr >= 0.95 && p.tpr < 0.951, "δ at 95% TPR gives TPR {}", p.tpr);
}

#[test]
fn dropping_images_adds_result_cards_and_bad_files_say_why() {
    let out = tempfile::tempdir().unwrap();
    let text = out.path().join("not-an-image.png");
    std::fs::write(&text, "hello").unwrap();
    let mut h = harness(out.path());
    step_until(&mut h, "the model to load", |app| app.model.is_some());
    let cat = root().join("assets/internet/cat-chelsea.png");
    h.input_mut().dropped_files.push(Arc::new(DroppedPath(cat.clone())));
    h.input_mut().dropped_files.push(Arc::new(DroppedPath(text.clone())));
    h.step();
    assert_eq!(h.state().drops.len(), 2, "a card per dropped file, at once");
    step_until(&mut h, "the dropped images to be scored", |app| !app.drops_pending());
    let app = h.state();
    assert_eq!(app.settings.tab, Tab::Dropped);
    let card = app.drops.iter().find(|c| c.path == cat).unwrap();
    let score = card.outcome.scored().unwrap().score;
    assert!(score > 0.0 && score <= 1.0);
    let bad = app.drops.iter().find(|c| c.path == text).unwrap();
    assert!(bad.outcome.failure().unwrap().contains("not an image"));
    assert!(shows_text(&h, "cat-chelsea.png"));
    assert!(h.query_by_label_contains("could not score: not an image").is_some());
    assert!(h.query_by_label("Add images…").is_some(), "and a file dialog");
}

#[test]
fn exporting_the_histogram_writes_a_valid_png() {
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(out.path());
    step_until(&mut h, "the demo to be scored", scored);
    h.get_by_label("Histogram PNG").click();
    h.step();
    h.step();
    let path = out.path().join("histogram.png");
    let png =
        image::open(&path).unwrap_or_else(|e| panic!("{}: {e}; messages {:?}", path.display(), h.state().messages));
    assert_eq!((png.width(), png.height()), (1600, 960));
    let (_, width) = amber_column(&std::fs::read(&path).unwrap());
    assert!(width >= 4, "δ drawn in amber, {width} px wide");
    h.get_by_label("Scores CSV").click();
    h.step();
    let csv = std::fs::read_to_string(out.path().join("scores.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4300);
}

#[test]
fn selecting_an_image_with_epsilon_shows_its_perturbation() {
    let out = tempfile::tempdir().unwrap();
    let mut settings = settings(out.path());
    settings.set_param("epsilon", 0.002);
    let mut h = harness_with(settings);
    step_until(&mut h, "the demo to be scored", scored);
    h.state_mut().push(oodscope_gui::app::Command::Select(Some(0)));
    h.step();
    step_until(&mut h, "the perturbation", |app| app.perturbation.is_some());
    let p = h.state().perturbation.as_ref().unwrap();
    assert_eq!(p.shape, [1, 28, 28]);
    assert!(
        p.values
            .iter()
            .all(|v| [-0.002f32, 0.0, 0.002].iter().any(|e| (v - e).abs() < 1e-6)),
        "x̃ − x is ±ε or 0"
    );
    assert!(p.values.iter().any(|&v| v != 0.0));
    assert!(shows_text(&h, "Perturbation x̃ − x (±ε = 0.002)"));
}

#[test]
fn tune_runs_in_the_background_and_its_choice_can_be_applied() {
    let out = tempfile::tempdir().unwrap();
    let mut settings = settings(out.path());
    settings.sets.truncate(1);
    settings.sets.push(SavedSet {
        spec: "uniform:200".into(),
        ood: true,
        enabled: true,
    });
    let mut h = harness_with(settings);
    step_until(&mut h, "the demo to be scored", scored);
    h.get_by_label("Tune parameters").click();
    h.step();
    assert!(h.state().is_tuning(), "tuning runs in the background");
    assert_eq!(h.state().settings.tab, Tab::Tuning);
    step_until(&mut h, "the tuning result", |app| app.tune_result.is_some());
    let result = h.state().tune_result.as_ref().unwrap();
    assert_eq!(result.results.len(), 10 * 11);
    assert_eq!(
        result.splits[0].validation, 500,
        "a quarter of the ID set is the validation split"
    );
    let best = result.best_result().clone();
    let chosen = result.chosen.describe();
    assert!(
        h.query_all_by_label_contains(&format!("best {chosen}"))
            .next()
            .is_some(),
        "the choice `{chosen}` is shown"
    );
    h.state_mut()
        .push(oodscope_gui::app::Command::SetParams(best.params.clone()));
    h.step();
    assert_eq!(h.state().settings.current_params(), best.params);
}

#[test]
fn moving_epsilon_shows_a_first_order_estimate_until_the_exact_scores_arrive() {
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(out.path());
    step_until(&mut h, "the demo to be scored", scored);
    h.get_by_role_and_label(Role::Slider, "Perturbation ε")
        .set_value_accesskit(0.001);
    step_until(&mut h, "the first exact ε = 0.001 result", |app| {
        scored(app) && app.result.as_ref().unwrap().computed.get("epsilon") == Ok(0.001)
    });
    // Same T, new ε: the estimate (the gradient norms at this T are known now) shows while the
    // exact job runs, marked as such.
    h.get_by_role_and_label(Role::Slider, "Perturbation ε")
        .set_value_accesskit(0.002);
    h.step();
    step_until(&mut h, "the first-order estimate", |app| {
        app.result.as_ref().unwrap().estimate.is_some()
    });
    let app = h.state();
    assert!(app.is_scoring(), "the exact job still runs");
    assert_eq!(
        app.result
            .as_ref()
            .unwrap()
            .estimate
            .as_ref()
            .and_then(|s| s.params.value("epsilon")),
        Some(0.002)
    );
    assert!(
        !app.result_is_stale(),
        "an estimate for the displayed settings is not stale"
    );
    assert!(shows_text(&h, "first-order estimate — exact scores on the way"));
    step_until(&mut h, "the exact ε = 0.002 scores", |app| {
        scored(app) && app.result.as_ref().unwrap().estimate.is_none()
    });
    let error = h.state().estimate_error.clone().unwrap();
    assert!(
        error.contains("ε = 0.002") && error.contains("mean |Δscore|"),
        "{error}"
    );
    eprintln!("{error}");
}

#[test]
fn feature_methods_fit_in_the_background_and_k_rescores_cached_features() {
    let out = tempfile::tempdir().unwrap();
    let mut settings = settings(out.path());
    settings.train = Some(root().join("assets/demo/fmnist-train").display().to_string());
    settings.method = Method::named("knn");
    let mut h = harness_with(settings);
    // The method list says why the methods this model cannot run are disabled.
    step_until(&mut h, "the model to load", |app| app.model.is_some());
    h.get_by_label_contains("Unavailable here").click();
    h.step();
    assert!(shows_text(&h, "Confidence branch: needs a confidence branch"));
    step_until(&mut h, "the fit and the KNN scores", |app| app.has_fit() && scored(app));
    let app = h.state();
    assert_eq!(app.result.as_ref().unwrap().shown.method, Method::named("knn"));
    match &app.fit {
        Some(oodscope_gui::app::FitState::Ready { info, bank, .. }) => {
            assert_eq!((info.images, *bank), (6000, Some(6000)));
        }
        _ => panic!("no fit"),
    }
    let before = auroc_of_first_ood(app);
    // A new k re-scores the cached features: no model pass.
    h.get_by_role_and_label(Role::Slider, "Neighbour k")
        .set_value_accesskit(5.0);
    h.step();
    assert!(!h.state().is_scoring(), "a new k must not need the model");
    step_until(&mut h, "the re-scored k = 5", |app| {
        !app.is_rescoring() && !app.result_is_stale()
    });
    let app = h.state();
    assert!(!app.is_scoring());
    assert_eq!(app.result.as_ref().unwrap().shown.get("k"), Ok(5.0));
    assert_ne!(auroc_of_first_ood(app), before);
    // Switching to another feature method re-scores the same cached features too.
    h.state_mut()
        .push(oodscope_gui::app::Command::SetMethod(Method::named("vim")));
    h.step();
    assert!(
        !h.state().is_scoring(),
        "ViM from cached features must not need the model"
    );
    step_until(&mut h, "ViM", |app| !app.is_rescoring() && !app.result_is_stale());
    assert_eq!(h.state().result.as_ref().unwrap().shown.method, Method::named("vim"));
}

#[test]
fn compare_scores_every_method_once_and_switching_method_is_then_instant() {
    let out = tempfile::tempdir().unwrap();
    let mut settings = settings(out.path());
    settings.train = Some(root().join("assets/demo/fmnist-train").display().to_string());
    // ODIN with a step: without the comparison, showing it would take the model's passes.
    settings.params.insert(
        "odin".into(),
        Params::new().with("temperature", 1000.0).with("epsilon", 0.0014),
    );
    let mut h = harness_with(settings);
    step_until(&mut h, "the fit and the ODIN scores", |app| {
        app.has_fit() && scored(app)
    });
    let odin_auroc = auroc_of_first_ood(h.state());
    h.get_by_label("Compare (5)").click();
    h.step();
    h.get_by_label("Compare all methods").click();
    h.step();
    assert!(h.state().is_comparing(), "the comparison runs in the background");
    step_until(&mut h, "the comparison", |app| {
        app.comparison.is_some() && !app.is_comparing()
    });
    let app = h.state();
    let comparison = app.comparison.as_ref().unwrap();
    // All this model and fit support (gmm too); not ensemble, confidence, the three on inner blocks.
    assert_eq!(comparison.board.rows.len(), Method::all().count() - 5);
    assert_eq!(comparison.not_run.len(), 5);
    // The comparison's ODIN is what the ODIN scoring job showed.
    let odin = comparison.board.row("odin").unwrap();
    assert_eq!(odin.per_set[0].as_ref().unwrap().auroc, odin_auroc);
    assert!(shows_text(&h, "KNN") && shows_text(&h, "Baseline (MSP) (baseline)"));
    assert!(
        h.query_all_by_label_contains("says ID, ").next().is_some(),
        "the disagreement gallery"
    );

    // Clicking a row shows that method at once, from the kept scores: no job, no re-score.
    for (title, name) in [("Energy", "energy"), ("Mahalanobis", "mahalanobis"), ("ODIN", "odin")] {
        h.get_by_role_and_label(Role::Button, title).click();
        h.step();
        let app = h.state();
        assert!(!app.is_scoring() && !app.is_rescoring(), "{name} needs no pass");
        assert_eq!(app.result.as_ref().unwrap().shown.method, Method::named(name));
        let row = app.comparison.as_ref().unwrap().board.row(name).unwrap();
        assert_eq!(
            auroc_of_first_ood(app),
            row.per_set[0].as_ref().unwrap().auroc,
            "{name}"
        );
    }
}

#[test]
fn a_folder_that_is_already_a_set_is_refused_with_a_message() {
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(out.path());
    step_until(&mut h, "the model to load", |app| app.model.is_some());
    let before = h.state().sets.len();
    // The MNIST folder again, written another way, as OOD and as ID; and the noise set again.
    let again = format!("{}/", root().join("assets/demo/../demo/mnist").display());
    for (spec, role) in [
        (again.clone(), oodscope_data::Role::Ood),
        (again, oodscope_data::Role::Id),
        ("uniform:300".to_string(), oodscope_data::Role::Ood),
    ] {
        h.state_mut().push(oodscope_gui::app::Command::AddSet { spec, role });
        h.step();
    }
    let app = h.state();
    assert_eq!(app.sets.len(), before, "no set was added twice");
    assert!(
        app.messages
            .iter()
            .filter(|m| m.contains("is already an OOD set: not added again"))
            .count()
            == 3,
        "{:?}",
        app.messages
    );
    // A new folder is still added.
    h.state_mut().push(oodscope_gui::app::Command::AddSet {
        spec: root().join("assets/demo/photo-crops").display().to_string(),
        role: oodscope_data::Role::Ood,
    });
    h.step();
    assert_eq!(h.state().sets.len(), before + 1);
}

#[test]
fn a_drop_during_a_long_job_shows_its_cards_at_once_and_is_scored_before_the_job_ends() {
    let out = tempfile::tempdir().unwrap();
    let bad = out.path().join("bad.png");
    std::fs::write(&bad, "not a picture").unwrap();
    // A long job: ODIN with a step (a backward pass per batch) over 2 000 + 20 000 images.
    let mut settings = settings(out.path());
    settings.sets.truncate(1);
    settings.sets.push(SavedSet {
        spec: "uniform:20000".into(),
        ood: true,
        enabled: true,
    });
    settings.set_param("epsilon", 0.0014);
    let mut h = harness_with(settings);
    step_until(&mut h, "the long job's first batches", |app| {
        app.scoring_progress()
            .and_then(|(_, p)| p)
            .is_some_and(|p| p.done >= 256)
    });
    let generation = h.state().scoring_progress().unwrap().0;
    let cat = root().join("assets/internet/cat-chelsea.png");
    let cup = root().join("assets/internet/coffee-cup.jpg");
    for path in [&cat, &cup, &bad] {
        h.input_mut().dropped_files.push(Arc::new(DroppedPath(path.clone())));
    }
    h.step();
    // At once, in the same frame: a "scoring…" card per file, the Dropped view shown.
    let app = h.state();
    assert_eq!(app.drops.len(), 3);
    assert!(app.drops_pending());
    assert_eq!(app.settings.tab, Tab::Dropped);
    h.step();
    assert_eq!(h.query_all_by_label("scoring…").count(), 3);

    step_until(&mut h, "the dropped images to be scored", |app| !app.drops_pending());
    let app = h.state();
    let (job, progress) = app
        .scoring_progress()
        .expect("the long job still runs when the drop is scored");
    assert_eq!(job, generation, "the same job, not restarted");
    let progress = progress.unwrap();
    assert!(progress.done < progress.total, "{progress:?}");
    for path in [&cat, &cup] {
        let card = app.drops.iter().find(|c| &c.path == path).unwrap();
        let score = card
            .outcome
            .scored()
            .unwrap_or_else(|| panic!("{:?}", card.outcome))
            .score;
        assert!(score > 0.0 && score <= 1.0, "{score}");
    }
    let card = app.drops.iter().find(|c| c.path == bad).unwrap();
    assert!(
        card.outcome.failure().is_some_and(|r| r.contains("not an image")),
        "{:?}",
        card.outcome
    );
    assert!(h.query_by_label_contains("could not score: not an image").is_some());
    h.state_mut().push(oodscope_gui::app::Command::Cancel);
    h.step();
}

#[test]
fn a_press_anywhere_takes_the_focus_from_a_text_field_and_the_number_keys_switch_tabs() {
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(out.path());
    step_until(&mut h, "the demo to be scored", scored);
    let export_dir = h.state().settings.export_dir.clone();
    let field = h
        .get_all_by_role(Role::TextInput)
        .find(|n| n.value().as_deref() == Some(export_dir.as_str()))
        .expect("the export folder's text field");
    field.focus();
    h.step();
    assert!(h.ctx.text_edit_focused(), "the text field has the focus");
    h.key_press(egui::Key::Num2);
    h.step();
    assert_eq!(h.state().settings.tab, Tab::Histogram, "keys go to the text field");

    // Drag on the histogram (a press, not a click): it moves δ and takes the focus.
    let threshold = h.state().threshold;
    let at = h.get_by_label("Histogram (1)").rect().center() + egui::vec2(250.0, 250.0);
    h.event(egui::Event::PointerMoved(at));
    h.event(egui::Event::PointerButton {
        pos: at,
        button: egui::PointerButton::Primary,
        pressed: true,
        modifiers: Default::default(),
    });
    h.step();
    for dx in [20.0, 40.0, 60.0] {
        h.event(egui::Event::PointerMoved(at + egui::vec2(dx, 0.0)));
        h.step();
    }
    h.event(egui::Event::PointerButton {
        pos: at + egui::vec2(60.0, 0.0),
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: Default::default(),
    });
    h.step();
    assert_ne!(h.state().threshold, threshold, "the drag reached the histogram");
    assert!(
        !h.ctx.text_edit_focused(),
        "the press took the focus from the text field"
    );
    h.key_press(egui::Key::Num2);
    h.step();
    assert_eq!(h.state().settings.tab, Tab::Curves);
    h.key_press(egui::Key::Num3);
    h.step();
    assert_eq!(h.state().settings.tab, Tab::Gallery);
}

/// Which fonts of `fonts` have a glyph for `c` (read from each face's character map by egui).
fn faces_with(fonts: Option<egui::FontDefinitions>, c: char) -> Vec<String> {
    let ctx = egui::Context::default();
    if let Some(fonts) = fonts {
        ctx.set_fonts(fonts);
    }
    let _ = ctx.run_ui(Default::default(), |_| {});
    ctx.fonts_mut(|f| {
        f.characters(&egui::FontFamily::Proportional)
            .get(&c)
            .cloned()
            .unwrap_or_default()
    })
}

#[test]
fn file_names_with_cjk_and_symbols_have_glyphs_in_the_window_fonts() {
    for c in ['猫', '☕'] {
        assert!(faces_with(None, c).is_empty(), "egui's own fonts lack {c}");
    }
    let fonts = || Some(oodscope_gui::ui::fonts::definitions());
    assert!(faces_with(fonts(), '☕').contains(&"DejaVuSans".to_string()));
    // Chinese, Japanese (kana and kanji) and Korean names, from the bundled subset.
    for c in "猫咖啡ねこ写真고양이貓".chars() {
        let faces = faces_with(fonts(), c);
        assert!(
            faces.contains(&"WenQuanYiMicroHei-subset".to_string()),
            "{c}: {faces:?}"
        );
    }
    // Latin still comes from egui's own font first.
    assert_eq!(
        faces_with(fonts(), 'a').first().map(String::as_str),
        Some("Ubuntu-Light")
    );
}

/// The x of the middle of the amber δ line in a PNG (the columns where amber runs most of the
/// plot's height), and the line's width.
fn amber_column(png: &[u8]) -> (f64, usize) {
    let image = image::load_from_memory(png).unwrap().to_rgb8();
    let amber = oodscope_engine::report::histogram::THRESHOLD_COLOUR;
    let columns: Vec<u32> = (0..image.width())
        .filter(|&x| {
            let n = (0..image.height())
                .filter(|&y| image.get_pixel(x, y).0 == [amber.0, amber.1, amber.2])
                .count();
            n as u32 > image.height() / 2
        })
        .collect();
    assert!(!columns.is_empty(), "no amber δ line");
    let width = columns.len();
    assert_eq!(
        (columns[width - 1] - columns[0]) as usize,
        width - 1,
        "one line: {columns:?}"
    );
    (columns.iter().map(|&x| x as f64).sum::<f64>() / width as f64, width)
}

#[test]
fn the_exported_histogram_draws_delta_as_a_thick_amber_line_where_it_is() {
    use oodscope_engine::report::histogram::{HistogramPlot, Series, histogram_png};
    let id: Vec<f32> = (0..500).map(|i| 0.5 + 0.5 * (i as f32 / 500.0)).collect();
    let ood: Vec<f32> = (0..500).map(|i| 0.5 * (i as f32 / 500.0)).collect();
    let png_at = |t: f32| {
        histogram_png(&HistogramPlot {
            title: "δ".into(),
            x_label: "score".into(),
            series: vec![
                Series {
                    name: "ID".into(),
                    scores: &id,
                },
                Series {
                    name: "OOD".into(),
                    scores: &ood,
                },
            ],
            threshold: Some(t),
            threshold_note: "as set".into(),
            bins: 40,
            width: 1600,
            height: 960,
        })
        .unwrap()
    };
    let (x1, width) = amber_column(&png_at(0.25));
    let (x2, _) = amber_column(&png_at(0.5));
    let (x3, _) = amber_column(&png_at(0.75));
    assert!(width >= 4, "the δ line is {width} px wide");
    assert!(x1 < x2 && x2 < x3, "{x1} {x2} {x3}");
    // The line sits at δ on the axis: equal steps of δ, equal steps on the image.
    assert!((x2 - x1 - (x3 - x2)).abs() <= 1.0, "{x1} {x2} {x3}");
}
