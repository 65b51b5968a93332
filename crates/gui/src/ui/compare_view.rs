//! The Compare view: run every method in one pass, a sortable leaderboard (click a row to make it
//! the current method), all methods' ROC curves overlaid, and the images two methods call
//! differently at their 95%-TPR thresholds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use egui::{RichText, TextureHandle, Vec2};

use crate::app::comparison::{Comparison, Disagreement};
use crate::app::tasks::{ViewJob, kind};
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
    /// The leaderboard's vertical scroll, shared by its frozen and its scrolled columns.
    scroll_y: f32,
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
    ui.horizontal_wrapped(|ui| {
        match app.progress_of(kind::compare) {
            Some(job) => {
                super::status_bar::job_ui(job, 360.0, ui);
                if ui.button("Cancel").on_hover_text("Stop the comparison").clicked() {
                    out.push(Command::CancelJobs(ViewJob::Compare));
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
            RichText::new("One decode and one forward pass per image for all; ODIN-like methods add their own steps.")
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
    if !comparison.not_run.is_empty() {
        let text: Vec<String> = comparison
            .not_run
            .iter()
            .map(|u| format!("{}: {}", u.method.name(), u.why))
            .collect();
        ui.label(RichText::new(format!("Not run: {}", text.join("; "))).small().weak());
    }
    let table_height = (ui.available_height() * 0.45).max(160.0);
    leaderboard_ui(app, comparison, &mut state, out, ui, table_height);
    ui.separator();
    // Two columns that share the width exactly (the plot and the gallery stay inside the window).
    ui.columns(2, |columns| {
        super::compare_roc::roc_overlay_ui(app, comparison, out, &mut columns[0]);
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

/// Height of a leaderboard row, the same in its two grids so that their rows line up.
const ROW_HEIGHT: f32 = 22.0;

/// The metric columns frozen on the left, beside the method: AUROC and FPR95.
const FROZEN_METRICS: usize = 2;

/// The leaderboard: rank, method, AUROC and FPR95 frozen on the left; the parameters, the other
/// metrics and the per-set AUROCs scroll sideways on the right, under a scroll bar always shown.
/// Both parts scroll up and down together.
fn leaderboard_ui(
    app: &OodscopeApp,
    comparison: &Comparison,
    state: &mut CompareViewState,
    out: &mut Vec<Command>,
    ui: &mut egui::Ui,
    height: f32,
) {
    let rows = sorted_rows(comparison, state.sort);
    let y = state.scroll_y;
    let (mut frozen_y, mut scrolled_y) = (y, y);
    ui.horizontal_top(|ui| {
        ui.spacing_mut().scroll = egui::style::ScrollStyle::solid();
        let frozen = egui::ScrollArea::vertical()
            .id_salt("leaderboard-frozen")
            .max_height(height)
            .vertical_scroll_offset(y)
            .scroll_bar_visibility(egui::scroll_area::ScrollBarVisibility::AlwaysHidden)
            .show(ui, |ui| frozen_grid_ui(app, comparison, &rows, state, out, ui));
        frozen_y = frozen.state.clamped_offset().y;
        let scrolled = egui::ScrollArea::both()
            .id_salt("leaderboard")
            .max_height(height)
            .vertical_scroll_offset(y)
            .scroll_bar_visibility(egui::scroll_area::ScrollBarVisibility::AlwaysVisible)
            .show(ui, |ui| scrolled_grid_ui(comparison, &rows, state, ui));
        scrolled_y = scrolled.state.clamped_offset().y;
    });
    // Whichever part the wheel moved, the other follows in the next frame.
    let moved = if frozen_y != y { frozen_y } else { scrolled_y };
    if moved != y {
        state.scroll_y = moved;
        ui.ctx().request_repaint();
    }
}

/// A column header that sorts the leaderboard (a second click reverses).
fn sort_header_ui(ui: &mut egui::Ui, state: &mut CompareViewState, title: &str, key: SortKey, higher_better: bool) {
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
}

fn percent(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{:.2}", 100.0 * v))
}

/// Rank, method (click to show it), AUROC and FPR95.
fn frozen_grid_ui(
    app: &OodscopeApp,
    comparison: &Comparison,
    rows: &[&MethodRow],
    state: &mut CompareViewState,
    out: &mut Vec<Command>,
    ui: &mut egui::Ui,
) {
    egui::Grid::new("leaderboard-frozen-grid")
        .striped(true)
        .min_col_width(48.0)
        .min_row_height(ROW_HEIGHT)
        .show(ui, |ui| {
            if ui
                .selectable_label(false, RichText::new("#").strong())
                .on_hover_text("The leaderboard's order (mean AUROC)")
                .clicked()
            {
                state.sort = None;
            }
            sort_header_ui(ui, state, "Method", SortKey::Method, false);
            for (m, (title, _, higher)) in METRICS.iter().enumerate().take(FROZEN_METRICS) {
                sort_header_ui(ui, state, title, SortKey::Mean(m), *higher);
            }
            ui.end_row();
            for row in rows {
                let rank = comparison
                    .board
                    .rows
                    .iter()
                    .position(|r| r.column == row.column)
                    .unwrap_or(0)
                    + 1;
                ui.label(rank.to_string());
                let title = if row.is_baseline {
                    format!("{} (baseline)", row.title())
                } else {
                    row.title()
                };
                let external = row.external.is_some();
                let hover = if external {
                    "The results file's own score column (click to show its histogram, curves and metrics)".to_string()
                } else {
                    row.settings.describe()
                };
                if ui
                    .selectable_label(is_shown(app, row), title)
                    .on_hover_text(hover)
                    .clicked()
                {
                    match &row.external {
                        Some(name) => out.push(Command::ShowExternal(name.clone())),
                        None => {
                            // The method first: parameters apply to the current method.
                            out.push(Command::SetMethod(row.settings.method));
                            out.push(Command::SetParams(row.settings.params.clone()));
                        }
                    }
                }
                for (_, value, _) in METRICS.iter().take(FROZEN_METRICS) {
                    ui.label(percent(row.mean.as_ref().map(value)));
                }
                ui.end_row();
            }
        });
}

/// Whether `row` is what the window shows: its method at its parameters, or its external column.
pub(super) fn is_shown(app: &OodscopeApp, row: &MethodRow) -> bool {
    let Some(result) = &app.result else {
        return false;
    };
    match (&row.external, &result.external) {
        (Some(name), Some(shown)) => *name == shown.name,
        (None, None) => result.method_shown() == Some(&row.settings),
        _ => false,
    }
}

/// The parameters, the other mean metrics and each OOD set's AUROC.
fn scrolled_grid_ui(comparison: &Comparison, rows: &[&MethodRow], state: &mut CompareViewState, ui: &mut egui::Ui) {
    egui::Grid::new("leaderboard-grid")
        .striped(true)
        .min_col_width(48.0)
        .min_row_height(ROW_HEIGHT)
        .show(ui, |ui| {
            ui.label(RichText::new("Parameters").strong());
            for (m, (title, _, higher)) in METRICS.iter().enumerate().skip(FROZEN_METRICS) {
                sort_header_ui(ui, state, title, SortKey::Mean(m), *higher);
            }
            for (s, set) in comparison.board.sets.iter().enumerate() {
                sort_header_ui(ui, state, &format!("{} AUROC", set.name), SortKey::SetAuroc(s), true);
            }
            ui.end_row();
            for row in rows {
                let params = if row.external.is_some() {
                    String::new()
                } else {
                    row.settings.describe_params()
                };
                ui.label(RichText::new(params).small());
                for (_, value, _) in METRICS.iter().skip(FROZEN_METRICS) {
                    ui.label(percent(row.mean.as_ref().map(value)));
                }
                for m in &row.per_set {
                    ui.label(percent(m.as_ref().ok().map(|m| m.auroc)));
                }
                ui.end_row();
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
    let title = |c: usize| comparison.title_of(c);
    ui.horizontal_wrapped(|ui| {
        ui.label("Where");
        let pair = [
            ("disagree-a", "First method of the pair", &mut a),
            ("disagree-b", "Second method of the pair", &mut b),
        ];
        for (salt, name, chosen) in pair {
            egui::ComboBox::from_id_salt(salt)
                .selected_text(title(*chosen))
                .show_ui(ui, |ui| {
                    for row in rows {
                        ui.selectable_value(chosen, row.column, row.title());
                    }
                })
                .response
                .on_hover_text(name);
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
                .color(ui.visuals().weak_text_color()),
        );
    });
}
