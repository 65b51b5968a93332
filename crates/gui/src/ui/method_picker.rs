//! The method picker: every method grouped by what it needs (one the model or the results file
//! cannot serve is disabled, with why), then an open results file's own score columns.

use egui::RichText;

use crate::app::{Command, FitState, OodscopeApp};
use oodscope_engine::detect::Group;
use oodscope_engine::score::Method;

/// The method: a list grouped by what each needs, where a method the model cannot run is disabled;
/// below it, each unavailable method with the reason.
pub fn method_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    ui.heading("Method");
    let has_fit = app.has_fit() || app.is_fitting();
    // Why a method cannot be chosen: the model's reason, or without one the results file's.
    let missing = |m: Method| -> Option<String> {
        match (&app.model, &app.opened) {
            (Some(model), _) => model
                .missing(m, has_fit)
                .map(|why| why.short().to_string())
                .or_else(|| lacks_covariances(app, m)),
            (None, Some(opened)) => opened.method_missing(m, app.beside()),
            (None, None) => None,
        }
    };
    let usable = app.model.is_some() || app.opened.is_some();
    let current = app.settings.method;
    let external = app
        .result
        .as_ref()
        .and_then(|r| r.external.as_ref())
        .map(|e| e.name.as_str());
    let selected = match external {
        Some(name) => format!("{name} (external)"),
        None => current.title().to_string(),
    };
    egui::ComboBox::from_id_salt("method")
        .selected_text(selected)
        .width(ui.available_width() - 8.0)
        .height(600.0)
        .show_ui(ui, |ui| {
            for group in Group::ALL {
                let methods: Vec<Method> = Method::all().filter(|m| m.detector().group() == group).collect();
                if methods.is_empty() {
                    continue;
                }
                ui.label(RichText::new(group.title()).small().weak());
                for method in methods {
                    let why = missing(method);
                    let text = match &why {
                        Some(why) => format!("{} — {why}", method.title()),
                        None => method.title().to_string(),
                    };
                    let response = ui.add_enabled(
                        usable && why.is_none(),
                        egui::Button::selectable(external.is_none() && method == current, text),
                    );
                    if response.clicked() && (method != current || external.is_some()) {
                        out.push(Command::SetMethod(method));
                    }
                }
            }
            external_columns_ui(app, external, out, ui);
        })
        .response
        .on_hover_text("[ and ] step through the methods this model can run");
    let line = match external {
        Some(_) => "the results file's own score column (made outside oodscope)".to_string(),
        None => format!(
            "{} · {}",
            current.detector().group().title(),
            if app.is_fitting() && current.detector().needs().fit {
                "waiting for the fit"
            } else {
                current.name()
            }
        ),
    };
    ui.label(RichText::new(line).small().weak());
    let unavailable: Vec<String> = Method::all()
        .filter_map(|m| missing(m).map(|why| format!("{}: {why}", m.title())))
        .collect();
    if !unavailable.is_empty() {
        ui.collapsing(format!("Unavailable here ({})", unavailable.len()), |ui| {
            for line in &unavailable {
                ui.label(RichText::new(line).small().weak());
            }
        });
    }
}

/// The open results file's own score columns, each shown in place of a method when chosen.
fn external_columns_ui(app: &OodscopeApp, shown: Option<&str>, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    let Some(opened) = &app.opened else { return };
    if opened.run.external.is_empty() {
        return;
    }
    ui.label(RichText::new("The file's own scores").small().weak());
    for name in &opened.run.external {
        let on = shown == Some(name.as_str());
        let response = ui
            .add(egui::Button::selectable(on, format!("{name} (external)")))
            .on_hover_text("A score column of the results file, made outside oodscope: its histogram, curves, metrics and δ; no parameters");
        if response.clicked() && !on {
            out.push(Command::ShowExternal(name.clone()));
        }
    }
}

/// Why `method`, which reads per-class covariances (gmm), cannot run on the fit ready in the window,
/// when that fit keeps none: the window's own fits keep them up to 512 MB.
pub fn lacks_covariances(app: &OodscopeApp, method: Method) -> Option<String> {
    use oodscope_engine::stats::gaussians::{CLASS_COVARIANCES, covariance_bytes};
    if !method.detector().fit_tensors().contains(&CLASS_COVARIANCES) {
        return None;
    }
    let Some(FitState::Ready { info, .. }) = &app.fit else {
        return None;
    };
    if info.class_covariances {
        return None;
    }
    let bytes = covariance_bytes(info.classes.len(), info.feature_width.unwrap_or(0));
    Some(format!(
        "needs per-class covariances ({:.1} GB here; the window keeps them up to 0.5 GB): run it with `oodscope compare --methods gmm --train …`",
        bytes / 1e9
    ))
}
