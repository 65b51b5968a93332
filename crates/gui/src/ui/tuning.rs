//! The tuning view: the objective over the method's parameter grid (T × ε for ODIN; one row for a
//! method with one parameter) as a heatmap of the validation split; hovering a cell shows its
//! metrics, clicking it sets the sliders; the choice and its test-split metrics beside.

use egui::{Color32, Pos2, Rect, RichText, Sense, Stroke, Vec2};

use crate::app::tasks::{ViewJob, kind};
use crate::app::{Command, OodscopeApp};
use oodscope_engine::tune::grid::{Axis, label};
use oodscope_engine::tune::{Objective, TuneResult};

/// A perceptual-ish ramp from dark blue (worst) to yellow (best).
fn ramp(strength: f32) -> Color32 {
    let s = strength.clamp(0.0, 1.0);
    let lerp = |a: f32, b: f32| (a + (b - a) * s) as u8;
    Color32::from_rgb(lerp(40.0, 250.0), lerp(30.0, 230.0), lerp(110.0, 40.0))
}

pub fn tuning_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    if let Some(job) = app.progress_of(kind::tune) {
        ui.horizontal_wrapped(|ui| {
            ui.label(format!(
                "Tuning {} on the validation split:",
                app.settings.method.title()
            ));
            super::status_bar::job_ui(job, 420.0, ui);
            if ui.button("Cancel").on_hover_text("Stop tuning").clicked() {
                out.push(Command::CancelJobs(ViewJob::Tune));
            }
        });
    }
    let Some(result) = &app.tune_result else {
        if !app.is_tuning() {
            ui.label("Press “Tune parameters” in the side panel: the method's grid is searched on the first quarter of every set (validation) and the choice is reported on the rest (test).");
        }
        return;
    };
    ui.label(RichText::new(summary(app, result)).strong());
    ui.label(format!(
        "Heatmap: {} on the validation split (mean over OOD sets); brighter is better. Hover a cell for its metrics, click it to set the sliders.",
        result.objective.title()
    ));
    let current = app.current_settings().map(|s| s.params);
    heatmap_ui(result, current.as_ref(), out, ui);
}

fn summary(app: &OodscopeApp, result: &TuneResult) -> String {
    let objective = result
        .best_result()
        .objective
        .map_or("—".into(), |v| format!("{:.1}%", 100.0 * v));
    let test: Vec<String> = result
        .test_evaluation
        .ood
        .iter()
        .filter_map(|o| {
            o.method.as_ref().ok().map(|m| {
                format!(
                    "{} FPR95 {:.1}% AUROC {:.1}%",
                    o.name,
                    100.0 * m.fpr_at_95_tpr,
                    100.0 * m.auroc
                )
            })
        })
        .collect();
    let method = app.model.as_ref().map_or(String::new(), |m| m.card.name.clone());
    format!(
        "{method}: best {} ({} {objective} on validation). Test split: {}",
        result.chosen.describe(),
        result.objective.short(),
        test.join(" · ")
    )
}

/// The grid's axes as drawn: the first parameter down the rows (the largest at the top), the second
/// across the columns; a method with one parameter has one row.
fn axes(result: &TuneResult) -> Option<(Option<&Axis>, &Axis)> {
    match result.grid.axes.as_slice() {
        [one] => Some((None, one)),
        [rows, cols] => Some((Some(rows), cols)),
        _ => None,
    }
}

fn heatmap_ui(
    result: &TuneResult,
    current: Option<&oodscope_engine::detect::Params>,
    out: &mut Vec<Command>,
    ui: &mut egui::Ui,
) {
    let Some((row_axis, col_axis)) = axes(result) else {
        ui.label("(no heatmap for a grid of more than two parameters)");
        return;
    };
    let rows = row_axis.map_or(1, |a| a.values.len());
    let cols = col_axis.values.len();
    let index = |r: usize, c: usize| r * cols + c;
    let label_w = 72.0;
    let cell = Vec2::new(
        ((ui.available_width() - label_w - 8.0) / cols as f32).clamp(18.0, 64.0),
        26.0,
    );
    let size = Vec2::new(label_w + cell.x * cols as f32, cell.y * (rows as f32 + 1.5));
    let (rect, response) = ui.allocate_exact_size(size, Sense::click());
    let painter = ui.painter_at(rect);
    let values: Vec<Option<f64>> = result.results.iter().map(|r| r.objective).collect();
    let finite: Vec<f64> = values.iter().flatten().copied().collect();
    let (lo, hi) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let strength = |v: f64| {
        let t = if hi > lo { ((v - lo) / (hi - lo)) as f32 } else { 1.0 };
        if result.objective == Objective::Fpr95 {
            1.0 - t
        } else {
            t
        }
    };
    let cell_rect = |r: usize, c: usize| {
        // The largest value of the row parameter at the top.
        let top = rect.top() + (rows - 1 - r) as f32 * cell.y;
        Rect::from_min_size(Pos2::new(rect.left() + label_w + c as f32 * cell.x, top), cell)
    };
    let text_colour = ui.visuals().text_color();
    for r in 0..rows {
        let y = cell_rect(r, 0).center().y;
        let row_label = row_axis.map_or_else(
            || col_axis.symbol.clone(),
            |a| format!("{}={}", a.symbol, label(a.values[r])),
        );
        painter.text(
            Pos2::new(rect.left() + 4.0, y),
            egui::Align2::LEFT_CENTER,
            row_label,
            egui::FontId::monospace(11.0),
            text_colour,
        );
        for c in 0..cols {
            let i = index(r, c);
            let colour = values[i].map_or(Color32::DARK_GRAY, |v| ramp(strength(v)));
            let cr = cell_rect(r, c);
            painter.rect_filled(cr.shrink(0.5), 0.0, colour);
            if i == result.best {
                painter.rect_stroke(
                    cr.shrink(1.0),
                    0.0,
                    Stroke::new(2.5, Color32::WHITE),
                    egui::StrokeKind::Inside,
                );
            }
            if current.is_some_and(|p| *p == result.results[i].params) {
                painter.rect_stroke(
                    cr.shrink(4.0),
                    0.0,
                    Stroke::new(1.5, Color32::BLACK),
                    egui::StrokeKind::Inside,
                );
            }
        }
    }
    let every = cols.div_ceil(12).max(1);
    for (c, v) in col_axis.values.iter().enumerate() {
        if c % every == 0 {
            let x = cell_rect(0, c).center().x;
            painter.text(
                Pos2::new(x, rect.top() + rows as f32 * cell.y + 4.0),
                egui::Align2::CENTER_TOP,
                label(*v),
                egui::FontId::monospace(10.0),
                text_colour,
            );
        }
    }
    let hovered = response
        .hover_pos()
        .and_then(|p| cell_at(p, rect, label_w, cell, rows, cols));
    if let Some((r, c)) = hovered {
        let setting = &result.results[index(r, c)];
        let lines: Vec<String> = setting
            .per_set
            .iter()
            .map(|s| match &s.metrics {
                Ok(m) => format!(
                    "{}: FPR95 {:.1}% · det. error {:.1}% · AUROC {:.1}%",
                    result.test_sets[s.set].name,
                    100.0 * m.fpr_at_95_tpr,
                    100.0 * m.detection_error,
                    100.0 * m.auroc
                ),
                Err(e) => format!("{}: {e}", result.test_sets[s.set].name),
            })
            .collect();
        response.clone().on_hover_text(format!(
            "{} (validation)\n{}",
            result.grid.settings(index(r, c)).describe(),
            lines.join("\n")
        ));
    }
    if response.clicked()
        && let Some((r, c)) = hovered
    {
        out.push(Command::SetParams(result.results[index(r, c)].params.clone()));
    }
}

fn cell_at(p: Pos2, rect: Rect, label_w: f32, cell: Vec2, rows: usize, cols: usize) -> Option<(usize, usize)> {
    let c = ((p.x - rect.left() - label_w) / cell.x).floor();
    let row_from_top = ((p.y - rect.top()) / cell.y).floor();
    if c < 0.0 || row_from_top < 0.0 || c as usize >= cols || row_from_top as usize >= rows {
        return None;
    }
    Some((rows - 1 - row_from_top as usize, c as usize))
}
