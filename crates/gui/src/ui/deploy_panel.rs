//! Deploying the decision, in the side panel: "Save detector…" beside δ (a small window: name,
//! where δ comes from, embedding the model, the file), "Open detector…" and "Watch server…" (each
//! with a typed fallback where there is no file dialog). The forms live in egui's memory; the app
//! gets commands.

use std::path::{Path, PathBuf};

use egui::RichText;

use crate::app::deploy::{DeltaSource, SaveDetectorForm};
use crate::app::tasks::kind;
use crate::app::{Command, OodscopeApp};

/// What the "Save detector" window remembers between frames.
#[derive(Debug, Clone)]
struct SaveForm {
    open: bool,
    name: String,
    /// The default name last filled in (replaced when the method changes, unless edited).
    default_name: String,
    false_alarm: bool,
    alpha: f64,
    share: f64,
    embed_model: bool,
    path: String,
    /// The default path last filled in.
    default_path: String,
}

impl Default for SaveForm {
    fn default() -> Self {
        SaveForm {
            open: false,
            name: String::new(),
            default_name: String::new(),
            false_alarm: false,
            alpha: 0.05,
            share: 0.2,
            embed_model: false,
            path: String::new(),
            default_path: String::new(),
        }
    }
}

fn form_id() -> egui::Id {
    egui::Id::unique("oodscope-save-detector")
}

/// The "Save detector…" button (beside δ): opens the form.
pub fn save_button_ui(app: &OodscopeApp, ui: &mut egui::Ui) {
    let enabled = app.model.is_some() && app.threshold.is_some();
    let response = ui
        .add_enabled(enabled, egui::Button::new("Save detector…"))
        .on_hover_text(
            "Save the method, its parameters and δ as a detector file for `oodscope serve` and `oodscope check`",
        )
        .on_disabled_hover_text("Needs a model and scores on display");
    if response.clicked() {
        ui.ctx()
            .data_mut(|d| d.get_temp_mut_or_default::<SaveForm>(form_id()).open = true);
    }
}

/// The "Save detector" window, while open.
pub fn save_window_ui(app: &OodscopeApp, out: &mut Vec<Command>, ctx: &egui::Context) {
    let mut form: SaveForm = ctx.data_mut(|d| d.get_temp_mut_or_default::<SaveForm>(form_id()).clone());
    if !form.open {
        return;
    }
    refresh_defaults(app, &mut form);
    let mut open = true;
    egui::Window::new("Save detector")
        .open(&mut open)
        .resizable(false)
        .collapsible(false)
        .default_width(380.0)
        .show(ctx, |ui| form_ui(app, out, ui, &mut form));
    form.open &= open;
    ctx.data_mut(|d| d.insert_temp(form_id(), form));
}

/// The name and path follow the method and the export folder until the user edits them.
fn refresh_defaults(app: &OodscopeApp, form: &mut SaveForm) {
    let Some(model) = &app.model else { return };
    let name = model.detector_name(app.settings.method);
    if form.name.is_empty() || form.name == form.default_name {
        form.name = name.clone();
    }
    form.default_name = name;
    let path = Path::new(&app.settings.export_dir)
        .join(format!("{}.oodsd", form.name))
        .display()
        .to_string();
    if form.path.is_empty() || form.path == form.default_path {
        form.path = path.clone();
    }
    form.default_path = path;
}

fn form_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui, form: &mut SaveForm) {
    let method = app.result.as_ref().map_or_else(
        || app.settings.method.name().to_string(),
        crate::app::shown::ShownResult::title,
    );
    ui.label(format!("Method: {method}"));
    ui.horizontal(|ui| {
        let label = ui.label("Detector name");
        ui.add(egui::TextEdit::singleline(&mut form.name).desired_width(220.0))
            .labelled_by(label.id);
    });
    ui.label(RichText::new("δ (score ≥ δ → ID, below → OOD)").strong());
    let current = match app.threshold {
        Some(t) => format!("the current δ = {t}"),
        None => "the current δ (none yet)".into(),
    };
    ui.radio_value(&mut form.false_alarm, false, current);
    ui.radio_value(
        &mut form.false_alarm,
        true,
        "δ for a false-alarm rate α on a held-out share of the ID images",
    );
    if form.false_alarm {
        ui.horizontal(|ui| {
            let label = ui.label("false-alarm rate α");
            ui.add(egui::DragValue::new(&mut form.alpha).range(0.001..=0.5).speed(0.001))
                .labelled_by(label.id);
            let label = ui.label("calibration share");
            ui.add(egui::DragValue::new(&mut form.share).range(0.01..=1.0).speed(0.01))
                .labelled_by(label.id);
        });
        let n = app.derived.as_ref().map_or(0, |d| d.id_scores.len());
        let held = (form.share.clamp(0.0, 1.0) * n as f64).ceil() as usize;
        ui.label(
            RichText::new(format!(
                "The last {held} of the {n} ID images (the last share of the ID sets in their sorted file order) \
                 calibrate δ by the conformal rule: at most α of new ID images are flagged. For that guarantee \
                 they must not have been used to tune the method or its parameters."
            ))
            .small()
            .weak(),
        );
    } else {
        ui.label(
            RichText::new("Every ID image on display gives the p-values; δ is not chosen from them.")
                .small()
                .weak(),
        );
    }
    ui.checkbox(&mut form.embed_model, "Embed the model in the file");
    ui.horizontal(|ui| {
        let label = ui.label("Detector file");
        ui.add(egui::TextEdit::singleline(&mut form.path).desired_width(220.0))
            .labelled_by(label.id);
        if ui.small_button("Choose…").clicked()
            && let Some(path) = rfd::FileDialog::new()
                .add_filter("detector", &["oodsd"])
                .set_file_name(format!("{}.oodsd", form.name))
                .save_file()
        {
            form.path = path.display().to_string();
        }
    });
    let saving = app.tasks.any(kind::save_detector);
    ui.horizontal(|ui| {
        if ui.add_enabled(!saving, egui::Button::new("Save")).clicked() {
            let source = match form.false_alarm {
                true => DeltaSource::FalseAlarm {
                    alpha: form.alpha,
                    share: form.share,
                },
                false => DeltaSource::Current,
            };
            out.push(Command::SaveDetector(SaveDetectorForm {
                path: PathBuf::from(form.path.trim()),
                name: form.name.clone(),
                source,
                embed_model: form.embed_model,
            }));
        }
        if saving {
            ui.spinner();
            ui.label("saving…");
        }
    });
}

/// "Open detector…" and "Watch server…" in the side panel.
pub fn deploy_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    ui.heading("Deploy");
    if let Some(view) = &app.detector {
        let name = view.manifest.as_ref().map_or("reading…", |m| m.name.as_str());
        ui.label(RichText::new(format!("detector: {name}")).small())
            .on_hover_text(view.path.display().to_string());
    }
    let typed_id = egui::Id::unique("oodscope-detector-path");
    let mut typed: String = ui.data_mut(|d| d.get_temp::<String>(typed_id).unwrap_or_default());
    ui.horizontal(|ui| {
        if ui
            .button("Open detector…")
            .on_hover_text(
                "A detector file (.oodsd): its manifest, calibration and δ, and the open sets scored with it",
            )
            .clicked()
        {
            match rfd::FileDialog::new().add_filter("detector", &["oodsd"]).pick_file() {
                Some(path) => out.push(Command::OpenDetector(path)),
                None => out.push(Command::Message(
                    "no file dialog here: type the detector file's path beside Open detector…".into(),
                )),
            }
        }
        let label = ui.label("or file");
        let edit = ui
            .add(
                egui::TextEdit::singleline(&mut typed)
                    .hint_text("detector.oodsd")
                    .desired_width(130.0),
            )
            .labelled_by(label.id);
        let entered = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if (ui.small_button("Open detector").clicked() || entered) && !typed.trim().is_empty() {
            out.push(Command::OpenDetector(typed.trim().into()));
        }
    });
    ui.data_mut(|d| d.insert_temp(typed_id, typed));
    watch_form_ui(app, out, ui);
}

/// The server address and "Watch server…" (or "Stop watching").
fn watch_form_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    let url_id = egui::Id::unique("oodscope-watch-url");
    let mut url: String = ui.data_mut(|d| d.get_temp::<String>(url_id).unwrap_or_default());
    ui.horizontal(|ui| {
        let label = ui.label("Server");
        ui.add(
            egui::TextEdit::singleline(&mut url)
                .hint_text("http://127.0.0.1:8000")
                .desired_width(170.0),
        )
        .labelled_by(label.id);
        if ui
            .button("Watch server…")
            .on_hover_text("Live scores, OOD rate and flagged inputs of a running `oodscope serve`")
            .clicked()
        {
            out.push(Command::Watch(url.clone()));
        }
    });
    if let Some(watch) = &app.watch {
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("watching {}", watch.url)).small());
            if ui.small_button("Stop watching").clicked() {
                out.push(Command::StopWatch);
            }
        });
    }
    ui.data_mut(|d| d.insert_temp(url_id, url));
}
