//! The side panel: model, sets, method, the T / ε / δ sliders (with "Save detector…" beside δ),
//! exports, and deploying (`deploy_panel`).

use egui::{RichText, Slider};

use crate::app::tasks::{ViewJob, kind};
use crate::app::{Command, ExportKind, FitState, OodscopeApp};
use std::path::PathBuf;

use oodscope_data::Role;
use oodscope_engine::score::Method;

pub fn side_panel_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    model_ui(app, out, ui);
    ui.separator();
    results_ui(app, out, ui);
    ui.separator();
    sets_ui(app, out, ui);
    ui.separator();
    fit_ui(app, out, ui);
    ui.separator();
    super::method_picker::method_ui(app, out, ui);
    ui.separator();
    sliders_ui(app, out, ui);
    ui.separator();
    export_ui(app, out, ui);
    ui.separator();
    super::deploy_panel::deploy_ui(app, out, ui);
}

fn model_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    ui.heading("Model");
    match &app.model {
        Some(m) => {
            let card = &m.card;
            let kind = if card.is_ensemble() {
                format!("leave-out ensemble of {} members", m.layout_members())
            } else if card.has_confidence_branch() {
                "with a confidence branch".into()
            } else {
                "plain classifier".into()
            };
            ui.label(RichText::new(&card.name).strong());
            ui.label(format!(
                "{kind}\ninput {}×{}×{} · {} classes · {}",
                card.channels,
                card.height,
                card.width,
                card.num_classes(),
                m.device.to_uppercase()
            ));
            ui.label(RichText::new(m.path.display().to_string()).small().weak());
        }
        None => {
            ui.label("no model loaded");
        }
    }
    if ui
        .button("Open model…")
        .on_hover_text("A TorchScript .pt (card beside it) or a .toml card; or drop one on the window")
        .clicked()
    {
        if let Some(path) = rfd::FileDialog::new().add_filter("model", &["pt", "toml"]).pick_file() {
            out.push(Command::LoadModel(path));
        } else {
            out.push(Command::Message(
                "no file dialog here: drop the model file on the window instead".into(),
            ));
        }
    }
}

/// The results file on display (or being read), and opening one: the file dialog, or a typed path
/// where there is none.
fn results_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    ui.heading("Results file");
    if let Some(path) = app.opening() {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(format!("opening {}…", path.display()));
        });
    }
    match &app.opened {
        Some(opened) => {
            let rows = opened.run.images.len();
            let methods: Vec<String> = opened
                .run
                .methods
                .iter()
                .map(oodscope_engine::detect::ScoreSettings::describe)
                .collect();
            let saved = match (opened.cache.logit_width > 0, opened.cache.feature_width > 0) {
                (true, true) => "logits and features saved",
                (true, false) => "logits saved",
                (false, true) => "features saved",
                (false, false) => "scores only",
            };
            ui.label(RichText::new(opened.path.display().to_string()).small())
                .on_hover_text(format!(
                    "{}\nmodel {} ({})",
                    methods.join("\n"),
                    opened.meta.model.name,
                    opened.meta.model.path
                ));
            ui.label(
                RichText::new(format!("{rows} images · {} methods · {saved}", methods.len()))
                    .small()
                    .weak(),
            );
        }
        None => {
            ui.label(
                RichText::new("none: open one written by oodscope score --results")
                    .small()
                    .weak(),
            );
        }
    }
    path_entry_ui(
        out,
        ui,
        PathEntry {
            button: "Open results…",
            hover: "A .parquet results file (oodscope score --results); or drop one on the window",
            hint: "results.parquet",
            id: "oodscope-results-path",
        },
        Command::OpenResults,
    );
}

/// A file to open: its dialog's button and hover text, the typed path's hint (its extension
/// filters the dialog) and the id the typed text is kept under.
struct PathEntry {
    button: &'static str,
    hover: &'static str,
    hint: &'static str,
    id: &'static str,
}

/// A file dialog's button, or a typed path (where no dialog is, as under Xvfb) with Open or Enter;
/// the file becomes `open(path)`.
fn path_entry_ui(out: &mut Vec<Command>, ui: &mut egui::Ui, entry: PathEntry, open: fn(PathBuf) -> Command) {
    let typed_id = egui::Id::unique(entry.id);
    let mut typed: String = ui.data_mut(|d| d.get_temp::<String>(typed_id).unwrap_or_default());
    let extension = entry.hint.rsplit('.').next().unwrap_or_default();
    ui.horizontal(|ui| {
        if ui.button(entry.button).on_hover_text(entry.hover).clicked() {
            match rfd::FileDialog::new().add_filter(extension, &[extension]).pick_file() {
                Some(path) => out.push(open(path)),
                None => out.push(Command::Message(format!(
                    "no file dialog here: type the .{extension} file's path beside {}, or drop it on the window",
                    entry.button
                ))),
            }
        }
        let label = ui.label("or path");
        let edit = ui
            .add(
                // As wide as the export folder's field, so the side panel keeps its width.
                egui::TextEdit::singleline(&mut typed)
                    .hint_text(entry.hint)
                    .desired_width(150.0),
            )
            .labelled_by(label.id);
        let entered = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if (ui.small_button("Open").clicked() || entered) && !typed.trim().is_empty() {
            out.push(open(typed.trim().into()));
        }
    });
    ui.data_mut(|d| d.insert_temp(typed_id, typed));
}

fn sets_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    ui.heading("Image sets");
    let skipped = |i: usize| {
        let result = app.result.as_ref()?;
        let name = &app.sets[i].set.as_ref()?.name;
        let set_index = result.sets.iter().position(|s| &s.name == name)?;
        Some(
            result
                .run
                .skipped
                .iter()
                .filter(|s| s.set == set_index)
                .collect::<Vec<_>>(),
        )
    };
    for i in 0..app.sets.len() {
        let entry = &app.sets[i];
        ui.horizontal(|ui| {
            let mut enabled = entry.enabled;
            let tag = if entry.role == Role::Id {
                RichText::new("ID").color(super::style::colours(ui).id)
            } else {
                RichText::new("OOD").color(super::style::colours(ui).ood)
            };
            if ui.checkbox(&mut enabled, tag).changed() {
                out.push(Command::ToggleSet(i));
            }
            match &entry.set {
                Some(set) => {
                    let mut text = format!("{} ({})", set.name, set.len());
                    if set.labelled {
                        text.push_str(" · labelled");
                    }
                    ui.label(text).on_hover_text(&entry.spec);
                }
                None => {
                    ui.spinner();
                    ui.label(&entry.spec);
                }
            }
            if ui.small_button("×").on_hover_text("Remove this set").clicked() {
                out.push(Command::RemoveSet(i));
            }
        });
        if let Some(skips) = skipped(i).filter(|s| !s.is_empty()) {
            ui.collapsing(format!("{} skipped", skips.len()), |ui| {
                for s in skips.iter().take(50) {
                    ui.label(RichText::new(format!("{}: {}", s.path, s.reason)).small());
                }
            });
        }
    }
    ui.horizontal(|ui| {
        for role in [Role::Id, Role::Ood] {
            if ui
                .button(format!("Add {} folder…", role.name().to_uppercase()))
                .clicked()
            {
                match rfd::FileDialog::new().pick_folder() {
                    Some(path) => out.push(Command::AddSet {
                        spec: path.display().to_string(),
                        role,
                    }),
                    None => out.push(Command::Message(
                        "no folder dialog here: drop the folder on the window instead".into(),
                    )),
                }
            }
        }
    });
    ui.horizontal(|ui| {
        if ui.button("Add uniform noise").clicked() {
            out.push(Command::AddSet {
                spec: "uniform:1000".into(),
                role: Role::Ood,
            });
        }
        if ui.button("Add Gaussian noise").clicked() {
            out.push(Command::AddSet {
                spec: "gaussian:1000".into(),
                role: Role::Ood,
            });
        }
    });
}

/// The ID training folder that the methods with a fit use, and where its fit stands; beside a
/// results file without the model, a fit file instead.
fn fit_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    if app.model.is_none() && app.opened.is_some() {
        ui.heading("Fit (a fit file)");
        fit_state_ui(app, out, ui);
        if !matches!(app.fit, Some(FitState::Ready { .. })) {
            ui.label(
                RichText::new(format!(
                    "{} (from oodscope fit, or oodscope.Fit from arrays; one that keeps the head also serves ASH, SCALE and GradNorm)",
                    no_fit_yet()
                ))
                    .small()
                    .weak(),
            );
        }
        path_entry_ui(
            out,
            ui,
            PathEntry {
                button: "Open fit file…",
                hover: "A fit file (oodscope fit, or oodscope.Fit.save in Python), made for outputs like the file's",
                hint: "fit.safetensors",
                id: "oodscope-fit-path",
            },
            Command::OpenFit,
        );
        return;
    }
    ui.heading("Fit (ID training images)");
    match &app.settings.train {
        Some(train) => {
            ui.label(RichText::new(train).small()).on_hover_text(
                "Labelled ID training images (class sub-folders); the methods with a fit use their statistics",
            );
        }
        None => {
            ui.label(RichText::new(no_fit_yet()).small().weak());
        }
    }
    fit_state_ui(app, out, ui);
    ui.horizontal(|ui| {
        if ui.button("Choose training folder…").clicked() {
            match rfd::FileDialog::new().pick_folder() {
                Some(path) => out.push(Command::SetTrain(Some(path.display().to_string()))),
                None => out.push(Command::Message(
                    "no folder dialog here: drop the training folder on the window instead".into(),
                )),
            }
        }
        if app.settings.train.is_some() && ui.small_button("Clear").clicked() {
            out.push(Command::SetTrain(None));
        }
    });
}

/// What a missing fit costs, from the registry: "none: 18 methods need one (KNN, Mahalanobis, …)".
fn no_fit_yet() -> String {
    let needing: Vec<Method> = Method::all().filter(|m| m.detector().needs().fit).collect();
    // The best known first.
    let named: Vec<&str> = ["knn", "mahalanobis", "vim"]
        .into_iter()
        .filter_map(Method::find)
        .filter(|m| needing.contains(m))
        .map(|m| m.detector().title())
        .collect();
    format!("none: {} methods need one ({}, …)", needing.len(), named.join(", "))
}

/// The fit's progress with Cancel, then what it holds or why it failed.
fn fit_state_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    if let Some(task) = app.progress_of(kind::fit) {
        ui.horizontal_wrapped(|ui| {
            super::status_bar::job_ui(task, (ui.available_width() - 70.0).max(120.0), ui);
            if ui.small_button("Cancel").on_hover_text("Stop the fit").clicked() {
                out.push(Command::CancelJobs(ViewJob::Fit));
            }
        });
    }
    match &app.fit {
        Some(FitState::Ready { info, .. }) => {
            let origin = if info.cached { "cached" } else { "fitted now" };
            ui.label(RichText::new(format!("{} images, {origin}", info.images)).small())
                .on_hover_text(format!("{}\n{}", info.describe(), info.path.display()));
        }
        Some(FitState::Failed(message)) => {
            ui.label(RichText::new(message).small().color(super::style::colours(ui).error));
        }
        None => {}
    }
}

/// One slider per parameter of the current method, then δ.
fn sliders_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    ui.heading("Parameters");
    let method = app.settings.method;
    let settings = app.current_settings();
    let external = app.result.as_ref().and_then(|r| r.external.as_ref());
    let specs = match external {
        Some(_) => Vec::new(),
        None => app.dims().map(|d| method.params(&d)).unwrap_or_default(),
    };
    let no_parameters = match external {
        Some(e) => Some(format!(
            "{} (external) has no parameters: the file's own scores",
            e.name
        )),
        None => specs
            .is_empty()
            .then(|| format!("{} has no parameters", method.title())),
    };
    if let Some(text) = no_parameters {
        ui.label(RichText::new(text).weak());
    }
    // Without the model, a parameter moves only where the results file's saved outputs re-score it.
    let needs_model = |name: &str| -> Option<String> {
        if app.model.is_some() {
            return None;
        }
        let opened = app.opened.as_ref()?;
        if name == "epsilon" {
            return Some(
                "Perturbation ε stays at the file's value: a new ε needs the model's gradients (open the model)".into(),
            );
        }
        let settings = settings.as_ref()?;
        // Whether another value re-scores, not whether this one is stored.
        opened.missing_beyond_columns(settings, app.beside())
    };
    let mut reasons: Vec<String> = Vec::new();
    for spec in &specs {
        let why = needs_model(spec.name);
        let mut value = settings
            .as_ref()
            .and_then(|s| s.params.value(spec.name))
            .unwrap_or(spec.default);
        let [lo, hi] = spec.slider;
        let mut slider = Slider::new(&mut value, lo..=hi.max(lo))
            .text(spec.label)
            .logarithmic(spec.log_scale);
        if spec.slider_step > 0.0 {
            slider = slider.step_by(spec.slider_step);
        }
        if spec.integer {
            slider = slider.integer();
        } else if spec.slider_step > 0.0 {
            slider = slider.max_decimals(decimals(spec.slider_step));
        }
        let response = ui.add_enabled(why.is_none(), slider);
        let response = match &why {
            Some(why) => {
                if !reasons.contains(why) {
                    reasons.push(why.clone());
                }
                response.on_disabled_hover_text(why)
            }
            None if spec.help.is_empty() => response,
            None => response.on_hover_text(spec.help),
        };
        if response.changed() {
            out.push(Command::SetParam(spec.name.to_string(), value));
        }
    }
    for why in &reasons {
        ui.label(RichText::new(why).small().weak());
    }
    if let (Some(derived), Some(mut threshold)) = (&app.derived, app.threshold) {
        let (lo, hi) = derived.range;
        // Shown as the f32 it is, and never rounded: `max_decimals` would round δ on every draw,
        // so a detector's δ (a calibration score) would not survive being shown.
        let slider = Slider::new(&mut threshold, lo..=hi)
            .text("Threshold δ")
            .custom_formatter(|v, _| (v as f32).to_string());
        if ui.add(slider).changed() {
            out.push(Command::SetThreshold(threshold));
        }
        ui.horizontal(|ui| {
            if ui
                .button("δ at 95% TPR")
                .on_hover_text("Keep 95% of ID images (T)")
                .clicked()
            {
                out.push(Command::ThresholdAt95Tpr);
            }
            super::deploy_panel::save_button_ui(app, ui);
        });
    }
    let tunable = !specs.is_empty() && !app.is_tuning() && app.derived.is_some() && app.model.is_some();
    if ui
        .add_enabled(tunable, egui::Button::new("Tune parameters"))
        .on_hover_text("Search the method's parameter grid on the first quarter of every set, report on the rest")
        .clicked()
    {
        out.push(Command::Tune);
    }
    let mut bins = app.settings.bins;
    if ui.add(Slider::new(&mut bins, 5..=200).text("Histogram bins")).changed() {
        out.push(Command::SetBins(bins));
    }
    let (mut log_y, mut density) = (app.settings.log_y, app.settings.density);
    if ui.checkbox(&mut log_y, "Log y axis").changed() {
        out.push(Command::SetLogY(log_y));
    }
    if ui.checkbox(&mut density, "Density (each set's area = 1)").changed() {
        out.push(Command::SetDensity(density));
    }
}

/// Decimal places a step needs (0.0001 → 4).
fn decimals(step: f64) -> usize {
    (0..10)
        .find(|&d| (step * 10f64.powi(d as i32)).fract().abs() < 1e-9)
        .unwrap_or(10)
}

fn export_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    ui.heading("Export");
    ui.horizontal(|ui| {
        let label = ui.label("Folder");
        let mut dir = app.settings.export_dir.clone();
        if ui.text_edit_singleline(&mut dir).labelled_by(label.id).changed() {
            out.push(Command::SetExportDir(dir));
        }
    });
    let enabled = app.result.is_some();
    ui.horizontal_wrapped(|ui| {
        for (kind, label) in [
            (ExportKind::HistogramPng, "Histogram PNG"),
            (ExportKind::RocPng, "ROC PNG"),
            (ExportKind::ScoresCsv, "Scores CSV"),
            (ExportKind::ReportJson, "Report JSON"),
        ] {
            let response = ui.add_enabled(enabled, egui::Button::new(label));
            if response.clicked() {
                out.push(Command::Export { kind, path: None });
            }
            if response.secondary_clicked()
                && let Some(path) = rfd::FileDialog::new().set_file_name(kind.default_name()).save_file()
            {
                out.push(Command::Export { kind, path: Some(path) });
            }
        }
    });
    ui.label(
        RichText::new("Click: write into the folder · right-click: choose a file")
            .small()
            .weak(),
    );
}
