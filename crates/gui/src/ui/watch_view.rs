//! The Watch view: a running `oodscope serve` live — the recent scores' histogram against the
//! calibration histogram (densities) with δ, the OOD share per second against α, the drift (KS
//! statistic) and totals, and thumbnails of the latest flagged inputs; a server that does not
//! answer is one line, retried every second.

use egui::{Color32, RichText, Vec2};
use egui_plot::{HLine, Legend, Line, Plot, PlotPoints, Points, VLine};

use crate::app::watching::Watch;
use crate::app::{Command, OodscopeApp};

pub fn watch_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    let Some(watch) = &app.watch else {
        ui.centered_and_justified(|ui| {
            ui.label("Not watching a server: give its address beside Watch server… in the side panel (Deploy), or start with oodscope --watch http://HOST:PORT.");
        });
        return;
    };
    ui.horizontal(|ui| {
        ui.label(RichText::new(format!("watching {}", watch.url)).strong());
        if ui.small_button("Stop watching").clicked() {
            out.push(Command::StopWatch);
        }
    });
    if let Some(why) = &watch.status {
        ui.label(RichText::new(format!("{why} (trying again every second)")).color(super::style::colours(ui).error));
    }
    let Some(answer) = &watch.latest else {
        if watch.status.is_none() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("waiting for the server's first answer…");
            });
        }
        return;
    };
    let alpha = match answer.false_alarm {
        Some(a) => format!("α = {a}"),
        None => "δ given (no α)".into(),
    };
    ui.label(format!(
        "{} · {} · δ = {} (score ≥ δ → ID) · {alpha}",
        answer.name, answer.method, answer.threshold
    ));
    ui.horizontal(|ui| {
        ui.label(format!("totals: {} ID · {} OOD", answer.totals.id, answer.totals.ood));
        ui.separator();
        ui.label(match answer.ks_statistic {
            Some(ks) => format!("KS statistic vs calibration: {ks:.3}"),
            None => "KS statistic vs calibration: — (no traffic yet)".into(),
        });
        ui.separator();
        ui.label(match answer.window_ood_rate {
            Some(r) => format!("OOD share of the recent images: {:.1}%", 100.0 * r),
            None => "OOD share of the recent images: —".into(),
        });
    });
    let height = (ui.available_height() * 0.45).max(180.0);
    ui.columns(2, |columns| {
        scores_plot_ui(watch, answer.threshold, &mut columns[0], height);
        rate_plot_ui(watch, answer.false_alarm, &mut columns[1], height);
    });
    ui.separator();
    flagged_ui(watch, ui);
}

fn amber() -> Color32 {
    let c = oodscope_engine::report::histogram::THRESHOLD_COLOUR;
    Color32::from_rgb(c.0, c.1, c.2)
}

/// Recent scores against the calibration scores, both as densities, with δ.
fn scores_plot_ui(watch: &Watch, threshold: f32, ui: &mut egui::Ui, height: f32) {
    let Some(derived) = &watch.derived else { return };
    let (lo, hi) = derived.range;
    let width = f64::from(hi - lo) / derived.calibration.len().max(1) as f64;
    let steps = |density: &[f64]| {
        let mut points = vec![[f64::from(lo), 0.0]];
        for (i, &v) in density.iter().enumerate() {
            let x0 = f64::from(lo) + i as f64 * width;
            points.push([x0, v]);
            points.push([x0 + width, v]);
        }
        points.push([f64::from(hi), 0.0]);
        PlotPoints::from(points)
    };
    let recent = watch.latest.as_ref().map_or(0, |a| a.recent_scores.len());
    Plot::new("watch scores")
        .height(height)
        .legend(Legend::default())
        .x_axis_label("score")
        .y_axis_label("density")
        .x_grid_spacer(super::plots::grid_x)
        .y_grid_spacer(super::plots::grid_y)
        .x_axis_formatter(super::plots::tick_label)
        .y_axis_formatter(super::plots::tick_label)
        .include_y(0.0)
        .show(ui, |plot_ui| {
            plot_ui.line(
                Line::new("calibration (ID)", steps(&derived.calibration))
                    .color(super::ID_COLOUR)
                    .width(2.0)
                    .fill(0.0)
                    .fill_alpha(0.12),
            );
            plot_ui.line(
                Line::new(format!("served, last {recent}"), steps(&derived.recent))
                    .color(Color32::from_rgb(31, 119, 180))
                    .width(2.0),
            );
            plot_ui.vline(
                VLine::new(format!("δ = {threshold}"), f64::from(threshold))
                    .color(amber())
                    .width(2.5),
            );
        });
}

/// The OOD share of each second with traffic (seconds before the newest), against α.
fn rate_plot_ui(watch: &Watch, alpha: Option<f64>, ui: &mut egui::Ui, height: f32) {
    let Some(derived) = &watch.derived else { return };
    Plot::new("watch rate")
        .height(height)
        .legend(Legend::default())
        .x_axis_label("seconds (0 = the latest second with traffic)")
        .y_axis_label("OOD share")
        .x_grid_spacer(super::plots::grid_x)
        .y_grid_spacer(super::plots::grid_y)
        .x_axis_formatter(super::plots::tick_label)
        .y_axis_formatter(super::plots::tick_label)
        .include_y(0.0)
        .include_y(1.0)
        .show(ui, |plot_ui| {
            plot_ui.line(
                Line::new("OOD share per second", PlotPoints::from(derived.rate.clone()))
                    .color(super::OOD_COLOUR)
                    .width(1.5),
            );
            plot_ui.points(
                Points::new("", PlotPoints::from(derived.rate.clone()))
                    .color(super::OOD_COLOUR)
                    .radius(2.0),
            );
            if let Some(a) = alpha {
                plot_ui.hline(HLine::new(format!("α = {a}"), a).color(amber()).width(2.0));
            }
        });
}

/// The latest flagged inputs, newest first, with score, p-value and predicted class.
fn flagged_ui(watch: &Watch, ui: &mut egui::Ui) {
    ui.label(RichText::new(format!("Latest flagged inputs ({})", watch.flagged.len())).strong());
    if watch.flagged.is_empty() {
        ui.label(
            RichText::new(
                "none kept: the server keeps the last N flagged inputs only when started with --keep-flagged N",
            )
            .small()
            .weak(),
        );
        return;
    }
    egui::ScrollArea::horizontal().id_salt("flagged").show(ui, |ui| {
        ui.horizontal(|ui| {
            for f in &watch.flagged {
                ui.vertical(|ui| {
                    ui.set_width(140.0);
                    match &f.texture {
                        Ok(texture) => {
                            ui.add(egui::Image::new(texture).fit_to_exact_size(Vec2::splat(128.0)));
                        }
                        Err(why) => {
                            ui.label(RichText::new(why).small().color(super::style::colours(ui).error));
                        }
                    }
                    let a = &f.answer;
                    ui.label(RichText::new(format!("#{} score {:.4} · p {:.4}", a.seq, a.score, a.p_value)).small());
                    ui.label(
                        RichText::new(format!("class {} ({:.0}%)", a.class_text(), 100.0 * a.probability))
                            .small()
                            .weak(),
                    );
                });
            }
        });
    });
}
