//! The side panel: model, sets, method, the T / ε / δ sliders, and exports.

use egui::{RichText, Slider};

use crate::app::{Command, ExportKind, OodscopeApp};
use crate::data::Role;
use crate::score::Method;

pub fn side_panel_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    model_ui(app, out, ui);
    ui.separator();
    sets_ui(app, out, ui);
    ui.separator();
    method_ui(app, out, ui);
    ui.separator();
    sliders_ui(app, out, ui);
    ui.separator();
    export_ui(app, out, ui);
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
                RichText::new("ID").color(super::ID_COLOUR)
            } else {
                RichText::new("OOD").color(super::OOD_COLOUR)
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

fn method_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    ui.heading("Method");
    let supported = app.model.as_ref().map(|m| m.methods.clone()).unwrap_or_default();
    for method in Method::ALL {
        let enabled = supported.contains(&method);
        let response = ui.add_enabled(
            enabled,
            egui::RadioButton::new(app.settings.method == method, method.title()),
        );
        if response.clicked() && app.settings.method != method {
            out.push(Command::SetMethod(method));
        }
    }
}

fn sliders_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    ui.heading("Parameters");
    let method = app.settings.method;
    let mut t = app.settings.temperature;
    let t_slider = Slider::new(&mut t, 1.0..=1000.0)
        .logarithmic(true)
        .text("Temperature T");
    if ui.add_enabled(method.uses_temperature(), t_slider).changed() {
        out.push(Command::SetTemperature(t));
    }
    let mut eps = app.settings.epsilon;
    let eps_slider = Slider::new(&mut eps, 0.0..=0.02)
        .step_by(0.0001)
        .max_decimals(4)
        .text("Perturbation ε");
    if ui.add_enabled(method.uses_epsilon(), eps_slider).changed() {
        out.push(Command::SetEpsilon(eps));
    }
    if let (Some(derived), Some(mut threshold)) = (&app.derived, app.threshold) {
        let (lo, hi) = derived.range;
        let slider = Slider::new(&mut threshold, lo..=hi).text("Threshold δ").max_decimals(6);
        if ui.add(slider).changed() {
            out.push(Command::SetThreshold(threshold));
        }
        if ui
            .button("δ at 95% TPR")
            .on_hover_text("Keep 95% of ID images (T)")
            .clicked()
        {
            out.push(Command::ThresholdAt95Tpr);
        }
    }
    let tunable = method.uses_epsilon() && app.tuning.is_none() && app.derived.is_some();
    if ui
        .add_enabled(tunable, egui::Button::new("Tune T and ε"))
        .on_hover_text("Search the (T, ε) grid on the first quarter of every set, report on the rest")
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

fn export_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    ui.heading("Export");
    ui.horizontal(|ui| {
        ui.label("Folder");
        let mut dir = app.settings.export_dir.clone();
        if ui.text_edit_singleline(&mut dir).changed() {
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
