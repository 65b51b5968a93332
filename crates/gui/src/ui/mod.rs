//! Widgets and panels only: they read the app's state and emit commands; no tensors, no jobs.
//! Functions that draw end in `_ui`.

pub mod compare_roc;
pub mod compare_view;
pub mod curves;
pub mod deploy_panel;
pub mod detector_view;
pub mod drops;
pub mod fonts;
pub mod gallery;
pub mod histogram;
pub mod method_picker;
pub mod metrics_table;
pub mod plots;
pub mod side_panel;
pub mod status_bar;
pub mod style;
pub mod tuning;
pub mod watch_view;

use egui::{Color32, RichText};

use crate::app::{Command, OodscopeApp, Tab};

/// Colours of the sets: ID first, then the OOD sets (the same as the PNG exports).
pub fn set_colour(k: usize) -> Color32 {
    let c = oodscope_engine::report::histogram::SET_COLOURS[k % oodscope_engine::report::histogram::SET_COLOURS.len()];
    Color32::from_rgb(c.0, c.1, c.2)
}

pub const ID_COLOUR: Color32 = Color32::from_rgb(44, 160, 44);
pub const OOD_COLOUR: Color32 = Color32::from_rgb(214, 39, 40);

/// The whole window.
pub fn app_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    focus_on_press(ui.ctx());
    shortcuts(app, out, ui.ctx());
    egui::Panel::top("title").show(ui, |ui| title_bar_ui(app, out, ui));
    // A fixed height: a progress bar or a message appearing there never moves a widget.
    egui::Panel::bottom("status")
        .exact_size(status_bar::HEIGHT)
        .resizable(false)
        .show(ui, |ui| status_bar::status_bar_ui(app, out, ui));
    egui::Panel::left("controls")
        .resizable(true)
        .default_size(320.0)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| side_panel::side_panel_ui(app, out, ui));
        });
    if app.selected.is_some() {
        egui::Panel::right("detail")
            .resizable(true)
            .default_size(300.0)
            .show(ui, |ui| gallery::detail_ui(app, out, ui));
    }
    egui::CentralPanel::default_margins().show(ui, |ui| central_ui(app, out, ui));
    drops::drop_ui(app, out, ui.ctx());
    deploy_panel::save_window_ui(app, out, ui.ctx());
}

/// How the window treats keyboard focus: a press anywhere outside the focused widget takes the
/// focus from it (egui's default waits for a click, so dragging δ on the plot left a text field
/// focused and the keys 1–5 typed into it). Set once, when the window opens.
pub fn focus_options(ctx: &egui::Context) {
    ctx.options_mut(|o| o.input_options.surrender_focus_on = egui::SurrenderFocusOn::Presses);
}

/// A press in the window while the system has given the keyboard to another window asks for it
/// back, so that the shortcuts work after a click anywhere in the window.
fn focus_on_press(ctx: &egui::Context) {
    let pressed = ctx.input(|i| i.pointer.any_pressed() && i.viewport().focused == Some(false));
    if pressed {
        ctx.send_viewport_cmd(egui::ViewportCommand::Focus);
    }
}

fn shortcuts(app: &OodscopeApp, out: &mut Vec<Command>, ctx: &egui::Context) {
    if ctx.text_edit_focused() {
        return; // typing in a text field (a focused button or slider leaves the keys to us)
    }
    let pressed = |key| ctx.input(|i| i.key_pressed(key));
    for (key, tab) in [
        (egui::Key::Num1, Tab::Histogram),
        (egui::Key::Num2, Tab::Curves),
        (egui::Key::Num3, Tab::Gallery),
        (egui::Key::Num4, Tab::Dropped),
        (egui::Key::Num5, Tab::Compare),
        (egui::Key::Num6, Tab::Detector),
        (egui::Key::Num7, Tab::Watch),
    ] {
        if pressed(key) {
            out.push(Command::SetTab(tab));
        }
    }
    if pressed(egui::Key::C) && !app.is_comparing() {
        out.push(Command::Compare);
    }
    if pressed(egui::Key::Escape) {
        if app.is_scoring() || app.is_comparing() {
            out.push(Command::Cancel);
        } else {
            out.push(Command::Select(None));
        }
    }
    if pressed(egui::Key::T) {
        out.push(Command::ThresholdAt95Tpr);
    }
    for (key, step) in [(egui::Key::OpenBracket, -1), (egui::Key::CloseBracket, 1)] {
        if pressed(key)
            && let Some(method) = next_method(app, step)
        {
            out.push(Command::SetMethod(method));
        }
    }
}

/// The method `step` places before or after the current one among those the model can run.
fn next_method(app: &OodscopeApp, step: isize) -> Option<oodscope_engine::score::Method> {
    let has_fit = app.has_fit() || app.is_fitting();
    let usable: Vec<oodscope_engine::score::Method> = match (&app.model, &app.opened) {
        (Some(model), _) => oodscope_engine::score::Method::all()
            .filter(|m| model.missing(*m, has_fit).is_none())
            .collect(),
        (None, Some(opened)) => oodscope_engine::score::Method::all()
            .filter(|m| opened.method_missing(*m, app.beside()).is_none())
            .collect(),
        (None, None) => return None,
    };
    let Some(at) = usable.iter().position(|m| *m == app.settings.method) else {
        return usable.first().copied();
    };
    let (at, n) = (at as isize, usable.len() as isize);
    usable.get(((at + step) % n + n) as usize % n as usize).copied()
}

/// The window's name and what it shows (the model, or the results file without one). Its height
/// never changes: jobs and messages are in the status bar at the foot.
fn title_bar_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        ui.heading("oodscope");
        if let Some(model) = &app.model {
            ui.label(format!("{} on {}", model.card.name, model.device));
        } else if let Some(opened) = &app.opened {
            ui.label(format!("results of {} (no model loaded)", opened.meta.model.name));
        } else if app.opening().is_some() {
            ui.label("opening results…");
        } else {
            ui.label("loading model…");
        }
        if app.is_comparing()
            && app.settings.tab != Tab::Compare
            && ui
                .link("comparing methods: show")
                .on_hover_text("Show the Compare view (5)")
                .clicked()
        {
            out.push(Command::SetTab(Tab::Compare));
        }
    });
}

fn central_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        for (tab, label) in [
            (Tab::Histogram, "Histogram (1)"),
            (Tab::Curves, "ROC / PR (2)"),
            (Tab::Gallery, "Gallery (3)"),
            (Tab::Dropped, "Dropped images (4)"),
            (Tab::Compare, "Compare (5)"),
            (Tab::Detector, "Detector (6)"),
            (Tab::Watch, "Watch (7)"),
        ] {
            if ui.selectable_label(app.settings.tab == tab, label).clicked() {
                out.push(Command::SetTab(tab));
            }
        }
        if app.result.as_ref().is_some_and(|r| r.estimate.is_some()) {
            ui.label(
                RichText::new("first-order estimate — exact scores on the way")
                    .italics()
                    .color(style::colours(ui).warn),
            )
            .on_hover_text("log S(x̃) ≈ log S(x) + ε·‖∇ₓ log S(x)‖₁ from cached logits and gradient norms");
        } else if let Some(error) = &app.estimate_error {
            ui.label(RichText::new(error).small().weak());
        }
        if app.result_is_stale() {
            ui.label(RichText::new("updating…").italics().weak())
                .on_hover_text("The view shows the previous settings until the new scores arrive.");
        }
    });
    ui.separator();
    if app.settings.tab == Tab::Tuning {
        tuning::tuning_ui(app, out, ui);
        return;
    }
    if app.settings.tab == Tab::Compare {
        compare_view::compare_ui(app, out, ui);
        return;
    }
    if app.settings.tab == Tab::Dropped {
        drops::drop_cards_ui(app, out, ui);
        return;
    }
    if app.settings.tab == Tab::Detector {
        detector_view::detector_ui(app, out, ui);
        return;
    }
    if app.settings.tab == Tab::Watch {
        watch_view::watch_ui(app, out, ui);
        return;
    }
    if app.derived.is_none() {
        waiting_ui(app, ui);
        return;
    }
    let stale = app.result_is_stale();
    if stale {
        ui.multiply_opacity(0.45);
    }
    match app.settings.tab {
        Tab::Histogram => {
            let height = (ui.available_height() * 0.6).max(200.0);
            histogram::histogram_ui(app, out, ui, height);
            ui.separator();
            egui::ScrollArea::vertical()
                .id_salt("metrics")
                .show(ui, |ui| metrics_table::metrics_table_ui(app, ui));
        }
        Tab::Curves => curves::curves_ui(app, ui),
        Tab::Gallery | Tab::Dropped | Tab::Tuning | Tab::Compare | Tab::Detector | Tab::Watch => {
            gallery::gallery_ui(app, out, ui);
        }
    }
}

/// The central view before a result: what it waits for, each long job with its progress bar (a
/// fit of a minute and more shows its own counts, not a bare "Scoring…").
fn waiting_ui(app: &OodscopeApp, ui: &mut egui::Ui) {
    let jobs = status_bar::long_jobs(app);
    ui.vertical_centered(|ui| {
        ui.add_space(ui.available_height() / 3.0);
        if jobs.is_empty() && !app.is_busy() {
            ui.label("Load a model and add an ID and an OOD set, or open a results file.");
            return;
        }
        ui.label(if jobs.is_empty() {
            "Opening the model and the sets…"
        } else {
            "Waiting for:"
        });
        for task in jobs {
            status_bar::job_ui(task, 420.0, ui);
        }
    });
}
