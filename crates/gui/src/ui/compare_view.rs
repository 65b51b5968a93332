//! The Compare view: run every method in one pass, a sortable leaderboard (click a row to make it
//! the current method), all methods' ROC curves overlaid, and the images two methods call
//! differently at their 95%-TPR thresholds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use egui::{Color32, RichText, TextureHandle, Vec2};
use egui_plot::{Legend, Line, Plot, PlotPoints};

use crate::app::comparison::{Comparison, Disagreement};
use crate::app::tasks::kind;
use crate::app::{Command, OodscopeApp};
use oodscope_engine::compare::{MeanMetrics, MethodRow};

const THUMB: u32 = 56;
const SHOWN_PER_SIDE: usize = 60;

/// A leaderboard column to sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    Method,
    Mean(usize),
    SetAuroc(usize),
}

/// What the view remembers between frames (egui's memory; the app holds none of it).
#[derive(Default)]
struct CompareViewState {
    /// `None`: the leaderboard's own order (mean AUROC, best first).
    sort: Option<(SortKey, bool)>,
    /// The two methods of the disagreement gallery, as run columns.
    pair: Option<(usize, usize)>,
    thumbnails: HashMap<(usize, usize), TextureHandle>,
    /// The comparison the state belongs to.
    serial: u64,
}

type Shared = Arc<Mutex<CompareViewState>>;

/// A metric column of the leaderboard: header, value, whether higher is better.
type MetricColumn = (&'static str, fn(&MeanMetrics) -> f64, bool);

const METRICS: [MetricColumn; 5] = [
    ("AUROC", |m| m.auroc, true),
    ("FPR95", |m| m.fpr_at_95_tpr, false),
    ("FPR95 OOD+", |m| m.fpr_at_95_tpr_ood_positive, false),
    ("AUPR-In", |m| m.aupr_in, true),
    ("AUPR-Out", |m| m.aupr_out, true),
];

pub fn compare_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        match app.progress_of(kind::compare) {
            Some(job) => {
                let (done, total) = job.progress.as_ref().map_or((0, 1), |p| {
                    let (done, total) = p.fraction();
                    (done, total.max(1))
                });
                ui.spinner();
                ui.add(
                    egui::ProgressBar::new(done as f32 / total as f32)
                        .desired_width(260.0)
                        .text(format!("comparing: {done}/{total} images")),
                );
                if ui.button("Cancel").on_hover_text("Stop the comparison (Esc)").clicked() {
                    out.push(Command::Cancel);
                }
            }
            None => {
                let label = if app.comparison.is_some() {
                    "Compare again"
                } else {
                    "Compare all methods"
                };
                if ui
                    .button(label)
                    .on_hover_text("Score every method this model supports on the enabled sets, in one pass (C)")
                    .clicked()
                {
                    out.push(Command::Compare);
                }
            }
        }
        ui.label(
            RichText::new("one decode and one forward pass per image for all; ODIN-like methods add their own steps")
                .small()
                .weak(),
        );
    });
    let Some(comparison) = &app.comparison else {
        ui.centered_and_justified(|ui| {
            ui.label("Compare every method at once: press “Compare all methods” (or C).");
        });
        return;
    };
    let shared = state(ui.ctx(), comparison.generation);
    let mut state = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    ui.label(format!(
        "{} methods on {} ID images and {} OOD sets, each at its sliders' values. Click a row to show that method.",
        comparison.board.rows.len(),
        comparison.board.id_count,
        comparison.board.sets.len()
    ));
    if !comparison.unsupported.is_empty() {
        let text: Vec<String> = comparison
            .unsupported
            .iter()
            .map(|u| format!("{}: {}", u.method.name(), u.missing.short()))
            .collect();
        ui.label(RichText::new(format!("Not run: {}", text.join("; "))).small().weak());
    }
    let table_height = (ui.available_height() * 0.45).max(160.0);
    // Both ways: with many OOD sets the per-set AUROC columns run past a 1440-pixel window.
    egui::ScrollArea::both()
        .id_salt("leaderboard")
        .max_height(table_height)
        .show(ui, |ui| leaderboard_ui(app, comparison, &mut state, out, ui));
    ui.separator();
    // Two columns that share the width exactly (the plot and the gallery stay inside the window).
    ui.columns(2, |columns| {
        roc_overlay_ui(app, comparison, &mut columns[0]);
        disagreement_ui(app, comparison, &mut state, out, &mut columns[1]);
    });
}

fn state(ctx: &egui::Context, serial: u64) -> Shared {
    let shared = ctx.data_mut(|d| {
        d.get_temp_mut_or_default::<Shared>(egui::Id::unique("oodscope-compare-view"))
            .clone()
    });
    if let Ok(mut s) = shared.lock()
        && s.serial != serial
    {
        *s = CompareViewState {
            serial,
            ..CompareViewState::default()
        };
    }
    shared
}

/// The rows in the chosen order.
fn sorted_rows(comparison: &Comparison, sort: Option<(SortKey, bool)>) -> Vec<&MethodRow> {
    let mut rows: Vec<&MethodRow> = comparison.board.rows.iter().collect();
    let Some((key, descending)) = sort else { return rows };
    let value = |r: &MethodRow| -> f64 {
        match key {
            SortKey::Method => 0.0,
            SortKey::Mean(m) => r.mean.as_ref().map_or(f64::NAN, METRICS[m].1),
            SortKey::SetAuroc(s) => r.per_set[s].as_ref().map_or(f64::NAN, |m| m.auroc),
        }
    };
    rows.sort_by(|a, b| {
        let order = match key {
            SortKey::Method => a.settings.method.title().cmp(b.settings.method.title()),
            _ => value(a).total_cmp(&value(b)),
        };
        if descending { order.reverse() } else { order }
    });
    rows
}

fn leaderboard_ui(
    app: &OodscopeApp,
    comparison: &Comparison,
    state: &mut CompareViewState,
    out: &mut Vec<Command>,
    ui: &mut egui::Ui,
) {
    let header = |ui: &mut egui::Ui, state: &mut CompareViewState, title: &str, key: SortKey, higher_better: bool| {
        let arrow = match state.sort {
            Some((k, true)) if k == key => " ⏷",
            Some((k, false)) if k == key => " ⏶",
            _ => "",
        };
        let response = ui
            .selectable_label(false, RichText::new(format!("{title}{arrow}")).strong())
            .on_hover_text("Sort by this column (click again to reverse)");
        if response.clicked() {
            state.sort = match state.sort {
                Some((k, d)) if k == key => Some((key, !d)),
                _ => Some((key, higher_better)),
            };
        }
    };
    egui::Grid::new("leaderboard-grid")
        .striped(true)
        .min_col_width(48.0)
        .show(ui, |ui| {
            if ui
                .selectable_label(false, RichText::new("#").strong())
                .on_hover_text("The leaderboard's order (mean AUROC)")
                .clicked()
            {
                state.sort = None;
            }
            header(ui, state, "Method", SortKey::Method, false);
            ui.label(RichText::new("Parameters").strong());
            for (m, (title, _, higher)) in METRICS.iter().enumerate() {
                header(ui, state, title, SortKey::Mean(m), *higher);
            }
            for (s, set) in comparison.board.sets.iter().enumerate() {
                header(ui, state, &format!("{} AUROC", set.name), SortKey::SetAuroc(s), true);
            }
            ui.end_row();
            let current = app.result.as_ref().map(|r| &r.shown);
            for row in sorted_rows(comparison, state.sort) {
                let rank = comparison
                    .board
                    .rows
                    .iter()
                    .position(|r| r.column == row.column)
                    .unwrap_or(0)
                    + 1;
                ui.label(rank.to_string());
                let title = if row.is_baseline {
                    format!("{} (baseline)", row.settings.method.title())
                } else {
                    row.settings.method.title().to_string()
                };
                let is_current = current == Some(&row.settings);
                if ui
                    .selectable_label(is_current, title)
                    .on_hover_text(row.settings.describe())
                    .clicked()
                {
                    // The method first: parameters apply to the current method.
                    out.push(Command::SetMethod(row.settings.method));
                    out.push(Command::SetParams(row.settings.params.clone()));
                }
                ui.label(RichText::new(row.settings.describe_params()).small());
                for (_, value, _) in METRICS {
                    ui.label(
                        row.mean
                            .as_ref()
                            .map_or("–".into(), |m| format!("{:.2}", 100.0 * value(m))),
                    );
                }
                for m in &row.per_set {
                    ui.label(m.as_ref().map_or("–".into(), |m| format!("{:.2}", 100.0 * m.auroc)));
                }
                ui.end_row();
            }
        });
}

fn roc_overlay_ui(app: &OodscopeApp, comparison: &Comparison, ui: &mut egui::Ui) {
    ui.label("ROC of every method: ID against all OOD sets pooled");
    let current = app.result.as_ref().map(|r| &r.shown);
    Plot::new("compare-roc")
        .height((ui.available_height() - 24.0).max(200.0))
        .legend(Legend::default())
        .default_x_bounds(0.0, 1.0)
        .default_y_bounds(0.0, 1.0)
        .show(ui, |plot_ui| {
            for (k, row) in comparison.board.rows.iter().enumerate() {
                let Some(curves) = &comparison.curves[row.column] else {
                    continue;
                };
                let points: Vec<[f64; 2]> = curves.roc.iter().map(|&(x, y)| [x, y]).collect();
                let width = if current == Some(&row.settings) { 3.5 } else { 1.5 };
                plot_ui.line(
                    Line::new(row.settings.method.title(), PlotPoints::from(points))
                        .color(super::set_colour(k))
                        .width(width),
                );
            }
        });
}

fn disagreement_ui(
    app: &OodscopeApp,
    comparison: &Comparison,
    state: &mut CompareViewState,
    out: &mut Vec<Command>,
    ui: &mut egui::Ui,
) {
    let rows = &comparison.board.rows;
    if rows.len() < 2 {
        ui.label("Two methods are needed to see where they disagree.");
        return;
    }
    let baseline = rows.iter().find(|r| r.is_baseline).map_or(rows[1].column, |r| r.column);
    let default_b = if baseline == rows[0].column {
        rows[1].column
    } else {
        baseline
    };
    let (mut a, mut b) = state.pair.unwrap_or((rows[0].column, default_b));
    let title = |c: usize| comparison.run.methods[c].method.title();
    ui.horizontal_wrapped(|ui| {
        ui.label("Where");
        for (salt, chosen) in [("disagree-a", &mut a), ("disagree-b", &mut b)] {
            egui::ComboBox::from_id_salt(salt)
                .selected_text(title(*chosen))
                .show_ui(ui, |ui| {
                    for row in rows {
                        ui.selectable_value(chosen, row.column, row.settings.method.title());
                    }
                });
            if salt == "disagree-a" {
                ui.label("and");
            }
        }
        ui.label("disagree at their 95%-TPR thresholds");
    });
    state.pair = Some((a, b));
    if a == b {
        ui.label("Choose two different methods.");
        return;
    }
    let card = app.model.as_ref().map(|m| &m.card);
    egui::ScrollArea::vertical().id_salt("disagreements").show(ui, |ui| {
        for (way, images) in comparison.disagreements(a, b) {
            let text = match way {
                Disagreement::FirstSaysId => {
                    format!("{} says ID, {} says OOD: {} images", title(a), title(b), images.len())
                }
                Disagreement::FirstSaysOod => {
                    format!("{} says OOD, {} says ID: {} images", title(a), title(b), images.len())
                }
            };
            ui.label(RichText::new(text).strong());
            let per_row = ((ui.available_width() / (THUMB as f32 + 12.0)).floor() as usize).max(1);
            for chunk in images.chunks(per_row).take(SHOWN_PER_SIDE.div_ceil(per_row)) {
                ui.horizontal(|ui| {
                    for &i in chunk {
                        let entry = &comparison.run.images[i];
                        let set = &comparison.sets[entry.set];
                        let key = (entry.set, entry.index);
                        let texture = state
                            .thumbnails
                            .entry(key)
                            .or_insert_with(|| super::gallery::thumbnail(ui.ctx(), set, entry.index, THUMB, card));
                        let colour = if set.role == oodscope_data::Role::Id {
                            super::ID_COLOUR
                        } else {
                            super::OOD_COLOUR
                        };
                        let response = egui::Frame::new()
                            .stroke(egui::Stroke::new(2.0, colour))
                            .show(ui, |ui| {
                                ui.add(egui::Image::new(&*texture).fit_to_exact_size(Vec2::splat(THUMB as f32)))
                            })
                            .response
                            .interact(egui::Sense::click())
                            .on_hover_text(format!(
                                "{}\nset {} ({})\n{}: {}\n{}: {}",
                                comparison.run.path_of(i, &comparison.sets),
                                set.name,
                                set.role.name().to_uppercase(),
                                title(a),
                                comparison.run.columns[a][i],
                                title(b),
                                comparison.run.columns[b][i],
                            ));
                        if response.clicked()
                            && app
                                .result
                                .as_ref()
                                .is_some_and(|r| r.run.images.len() == comparison.run.images.len())
                        {
                            out.push(Command::Select(Some(i)));
                        }
                    }
                });
            }
            if images.len() > SHOWN_PER_SIDE {
                ui.label(
                    RichText::new(format!("… and {} more", images.len() - SHOWN_PER_SIDE))
                        .small()
                        .weak(),
                );
            }
            ui.add_space(6.0);
        }
        ui.label(
            RichText::new("Frame: green = from an ID set, red = from an OOD set. Hover for both scores.")
                .small()
                .color(Color32::GRAY),
        );
    });
}
