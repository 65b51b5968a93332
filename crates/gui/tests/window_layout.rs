//! The window's layout holds still and says what runs: an export's message appears in the status
//! bar at the foot and moves no widget; a background job shows a progress bar with its counts and
//! the time left, and Cancel stops it (one bar and one Cancel per job, in its view or in the status
//! bar); the Compare leaderboard keeps the method, AUROC and FPR95 in view while its other columns
//! scroll, and the ROC overlay names the curve it draws on top; a results file's reading shows its
//! rows.

use egui::accesskit::Role;
use egui_kittest::kittest::{NodeT, Queryable};
use oodscope_gui::app::message::MessageKind;
use oodscope_gui::app::tasks::kind;
use oodscope_gui::app::{Command, Tab};
use oodscope_gui::testing::{harness, scored, shows_text, step_until};

#[test]
fn an_export_message_appears_in_the_status_bar_and_moves_no_widget() {
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(out.path());
    step_until(&mut h, "the demo to be scored", scored);
    let places = |h: &egui_kittest::Harness<'static, oodscope_gui::app::OodscopeApp>| {
        [
            h.get_by_label("Open model…").rect(),
            h.get_by_label("Histogram (1)").rect(),
            h.get_by_label("Histogram PNG").rect(),
            h.get_by_role_and_label(Role::Slider, "Temperature T").rect(),
        ]
    };
    let before = places(&h);
    h.get_by_label("Histogram PNG").click();
    h.step();
    h.step();
    let written = format!("wrote {}", out.path().join("histogram.png").display());
    let last = h.state().messages.last().cloned().unwrap();
    assert_eq!((last.kind, last.text.as_str()), (MessageKind::Done, written.as_str()));
    assert!(shows_text(&h, &written), "the message is on screen");
    assert_eq!(places(&h), before, "a message must not move the widgets");

    // An error, then dismissing it: still nothing moves.
    h.state_mut().push(Command::Message(
        "no file dialog here: drop the file on the window instead".into(),
    ));
    h.step();
    h.step();
    assert_eq!(h.state().messages.last().unwrap().kind, MessageKind::Error);
    assert_eq!(places(&h), before);
    h.get_by_role_and_label(Role::Button, "Dismiss").click();
    h.step();
    h.step();
    assert!(h.state().messages.is_empty());
    assert_eq!(places(&h), before);
}

#[test]
fn a_comparison_shows_its_counts_and_the_time_left_and_cancel_stops_it() {
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(out.path());
    step_until(&mut h, "the demo to be scored", scored);
    h.state_mut().push(Command::Compare);
    h.step();
    assert!(h.state().is_comparing());
    step_until(&mut h, "an estimate of the comparison's time left", |app| {
        app.progress_of(kind::compare).is_some_and(|t| t.eta().is_some())
    });
    let bar = h
        .query_all_by_role(Role::ProgressIndicator)
        .filter_map(|n| n.accesskit_node().label())
        .find(|label| label.starts_with("Comparing methods: "))
        .unwrap_or_else(|| panic!("no progress bar of the comparison"));
    assert!(
        bar.contains(" / ") && bar.contains("images") && bar.contains(" left"),
        "{bar}"
    );
    // In the Compare view the job has one bar and one Cancel: the view's, not the status bar's too.
    assert_eq!(h.query_all_by_role_and_label(Role::Button, "Cancel").count(), 1);
    h.state_mut().push(Command::SetTab(Tab::Compare));
    h.step();
    h.step();
    assert_eq!(h.query_all_by_role_and_label(Role::Button, "Cancel").count(), 1);
    let bars = h
        .query_all_by_role(Role::ProgressIndicator)
        .filter(|n| {
            n.accesskit_node()
                .label()
                .is_some_and(|l| l.starts_with("Comparing methods: "))
        })
        .count();
    assert_eq!(bars, 1, "one progress bar of the comparison");
    h.get_by_role_and_label(Role::Button, "Cancel").click();
    h.step();
    assert!(!h.state().is_comparing(), "Cancel stops the comparison");
    h.step();
    assert!(h.query_all_by_role(Role::ProgressIndicator).next().is_none());
}

#[test]
fn the_leaderboard_keeps_method_auroc_and_fpr95_in_view_and_the_roc_names_the_curve_on_top() {
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(out.path());
    step_until(&mut h, "the demo to be scored", scored);
    h.state_mut().push(Command::Compare);
    h.state_mut().push(Command::SetTab(Tab::Compare));
    h.step();
    step_until(&mut h, "the comparison", |app| {
        app.comparison.is_some() && !app.is_comparing()
    });
    for _ in 0..3 {
        h.step();
    }
    let window = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1440.0, 900.0));
    let frozen = ["Method", "AUROC", "FPR95"].map(|title| h.get_by_role_and_label(Role::Button, title).rect());
    assert!(frozen.iter().all(|r| window.contains_rect(*r)), "{frozen:?}");

    // The last per-set column scrolled into view: the frozen columns stay where they were.
    let last_set = h
        .state()
        .comparison
        .as_ref()
        .unwrap()
        .board
        .sets
        .last()
        .unwrap()
        .name
        .clone();
    h.get_by_role_and_label(Role::Button, &format!("{last_set} AUROC"))
        .scroll_to_me();
    for _ in 0..3 {
        h.step();
    }
    let header = h
        .get_by_role_and_label(Role::Button, &format!("{last_set} AUROC"))
        .rect();
    assert!(window.contains_rect(header), "{header:?}");
    assert_eq!(
        ["Method", "AUROC", "FPR95"].map(|title| h.get_by_role_and_label(Role::Button, title).rect()),
        frozen
    );

    // The shown method's curve is on top and named; hovering another's legend entry lifts it.
    let shown = h.state().result.as_ref().unwrap().shown.method.title();
    assert!(
        h.query_by_label_contains(&format!("On top (shown): {shown}, mean AUROC"))
            .is_some()
    );
    h.get_by_role_and_label(Role::Label, "Energy").hover();
    for _ in 0..3 {
        h.step();
    }
    assert!(
        h.query_by_label_contains("On top (hovered): Energy, mean AUROC")
            .is_some()
    );
}
