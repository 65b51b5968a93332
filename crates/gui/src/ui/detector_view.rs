//! The Detector view: the open detector file's manifest (name, method and parameters, δ with its
//! rule and how it was chosen, the model and its hash, the fit, the provenance) and its calibration
//! histogram with δ; while it loads, its progress with Cancel.

use egui::{Color32, RichText};
use egui_plot::{Legend, Line, Plot, PlotPoints, VLine};
use oodscope_engine::deploy::{Calibration, Manifest};
use oodscope_metrics::{histogram, shared_range};

use crate::app::tasks::{ViewJob, kind};
use crate::app::{Command, OodscopeApp};

pub fn detector_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    let Some(view) = &app.detector else {
        ui.centered_and_justified(|ui| {
            ui.label("No detector open: Open detector… in the side panel (Deploy), or save one with Save detector… beside δ.");
        });
        return;
    };
    ui.label(RichText::new(view.path.display().to_string()).small().weak());
    if let Some(task) = app.progress_of(kind::open_detector) {
        ui.horizontal_wrapped(|ui| {
            super::status_bar::job_ui(task, 420.0, ui);
            if ui
                .small_button("Cancel")
                .on_hover_text("Stop opening the detector")
                .clicked()
            {
                out.push(Command::CancelJobs(ViewJob::OpenDetector));
            }
        });
    }
    if let Some(why) = &view.failure {
        ui.label(RichText::new(why).color(super::style::colours(ui).error));
    }
    let Some(manifest) = &view.manifest else { return };
    egui::ScrollArea::vertical().id_salt("detector").show(ui, |ui| {
        manifest_ui(manifest, ui);
        if let Some(calibration) = &view.calibration {
            ui.separator();
            calibration_plot_ui(manifest, calibration, ui);
        }
    });
}

/// The manifest as a person reads it (as `oodscope detector show` prints it).
fn manifest_ui(m: &Manifest, ui: &mut egui::Ui) {
    let d = &m.decision;
    ui.heading(&m.name);
    let params: Vec<String> = m
        .method
        .params
        .iter()
        .map(|(k, v)| format!("{k} = {}", oodscope_engine::detect::params::fmt_value(v)))
        .collect();
    let chosen = match d.false_alarm {
        Some(alpha) => format!(
            "chosen for a false-alarm rate ≤ {alpha} by the conformal rule on {} held-out ID images",
            d.calibration_images
        ),
        None => format!("given; p-values against {} calibration images", d.calibration_images),
    };
    egui::Grid::new("manifest").num_columns(2).striped(true).show(ui, |ui| {
        let mut row = |key: &str, value: String| {
            ui.label(RichText::new(key).strong());
            ui.label(value);
            ui.end_row();
        };
        row(
            "method",
            format!(
                "{} ({})",
                m.method.method.title(),
                if params.is_empty() {
                    "no parameters".to_string()
                } else {
                    params.join(", ")
                }
            ),
        );
        row("threshold", format!("δ = {}", d.threshold));
        row("rule", "score ≥ δ → ID, below → OOD".into());
        row("δ", chosen);
        row(
            "calibration",
            format!("{} ({} skipped)", d.calibration_set, d.calibration_skipped),
        );
        let short = &m.model.sha256[..m.model.sha256.len().min(12)];
        let place = match m.model.embedded {
            true => format!("embedded ({})", m.model.file_name),
            false => format!("at {} (relative to the detector)", m.model.path),
        };
        row("model", format!("{} {place}, sha256 {short}", m.model.name));
        row(
            "input",
            format!(
                "{}×{}×{} · {} classes",
                m.model.input[0],
                m.model.input[1],
                m.model.input[2],
                m.model.classes.len()
            ),
        );
        if let Some(fit) = &m.fit {
            row(
                "fit",
                format!(
                    "{} images of {}; kept: {}",
                    fit.images,
                    fit.train_root,
                    fit.tensors.join(", ")
                ),
            );
        }
        let p = &m.provenance;
        row(
            "made",
            format!("by oodscope {} ({}) on {}", p.oodscope_version, p.made_by, p.created),
        );
        for s in &p.sets {
            row("set", format!("{} ({}, {} images)", s.name, s.role, s.images));
        }
    });
}

/// The calibration scores' histogram with δ drawn, and the share of them δ flags.
fn calibration_plot_ui(m: &Manifest, calibration: &Calibration, ui: &mut egui::Ui) {
    const BINS: usize = 40;
    let scores = &calibration.scores;
    ui.label(format!(
        "Calibration histogram ({} scores); δ flags {:.1}% of them",
        scores.len(),
        100.0 * calibration.calibration_false_alarm()
    ));
    let Some((lo, hi)) = shared_range(&[scores.as_slice(), &[calibration.threshold]]) else {
        return;
    };
    let counts = histogram(scores, lo, hi, BINS);
    let width = f64::from(hi - lo) / BINS as f64;
    let mut points = vec![[f64::from(lo), 0.0]];
    for (i, &c) in counts.iter().enumerate() {
        let x0 = f64::from(lo) + i as f64 * width;
        points.push([x0, f64::from(c)]);
        points.push([x0 + width, f64::from(c)]);
    }
    points.push([f64::from(hi), 0.0]);
    let amber = {
        let c = oodscope_engine::report::histogram::THRESHOLD_COLOUR;
        Color32::from_rgb(c.0, c.1, c.2)
    };
    Plot::new("calibration histogram")
        .height(260.0)
        .legend(Legend::default())
        .x_axis_label(format!("{} score", m.method.describe()))
        .y_axis_label("images")
        .x_grid_spacer(super::plots::grid_x)
        .y_grid_spacer(super::plots::grid_y)
        .x_axis_formatter(super::plots::tick_label)
        .y_axis_formatter(super::plots::tick_label)
        .include_y(0.0)
        .show(ui, |plot_ui| {
            plot_ui.line(
                Line::new("calibration (ID)", PlotPoints::from(points))
                    .color(super::ID_COLOUR)
                    .width(2.0)
                    .fill(0.0)
                    .fill_alpha(0.15),
            );
            plot_ui.vline(
                VLine::new(
                    format!("δ = {}", calibration.threshold),
                    f64::from(calibration.threshold),
                )
                .color(amber)
                .width(2.5),
            );
        });
}
