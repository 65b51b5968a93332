//! The Compare view's ROC overlay: every method's pooled ROC curve, told apart by colour × dash
//! pattern (`plots::curve_style`), with its legend beside the plot (22 entries in any corner would
//! cover a third of it). The method hovered, in the plot or the legend, or else the one shown, is
//! drawn last and thicker, and named above the plot.

use egui::{RichText, Sense, Stroke};
use egui_plot::{ItemId, Line, LineStyle, Plot, PlotPoints};

use super::plots::curve_style;
use crate::app::comparison::Comparison;
use crate::app::{Command, OodscopeApp};

/// The legend column's width.
const LEGEND_WIDTH: f32 = 170.0;

/// The curve's id in the plot, from the run column of its method.
fn curve_id(column: usize) -> ItemId {
    ItemId::new(("compare-roc", column))
}

/// The run column hovered in the last frame (in the plot or the legend), kept in egui's memory.
fn hovered_id() -> egui::Id {
    egui::Id::unique("oodscope-compare-roc-hovered")
}

pub fn roc_overlay_ui(app: &OodscopeApp, comparison: &Comparison, out: &mut Vec<Command>, ui: &mut egui::Ui) {
    let rows = &comparison.board.rows;
    let shown = rows
        .iter()
        .find(|r| super::compare_view::is_shown(app, r))
        .map(|r| r.column);
    let hovered: Option<usize> = ui.data(|d| d.get_temp(hovered_id())).flatten();
    let focus = hovered.or(shown);
    let auroc = |column: usize| {
        rows.iter()
            .find(|r| r.column == column)
            .and_then(|r| r.mean.as_ref())
            .map_or(f64::NAN, |m| m.auroc)
    };
    ui.label("ROC of every method: ID against all OOD sets pooled");
    let named = focus.map_or(String::from("Hover a curve or a name to pick it out."), |c| {
        let how = if Some(c) == shown && hovered.is_none_or(|h| h == c) {
            "shown"
        } else {
            "hovered"
        };
        format!(
            "On top ({how}): {}, mean AUROC {:.2}%",
            comparison.title_of(c),
            100.0 * auroc(c)
        )
    });
    ui.label(RichText::new(named).strong());
    let mut now_hovered = None;
    let height = (ui.available_height() - 8.0).max(200.0);
    ui.horizontal_top(|ui| {
        let plot_width = (ui.available_width() - LEGEND_WIDTH - 8.0).max(200.0);
        let response = Plot::new("compare-roc")
            .width(plot_width)
            .height(height)
            .default_x_bounds(0.0, 1.0)
            .default_y_bounds(0.0, 1.0)
            .x_grid_spacer(super::plots::grid_x)
            .y_grid_spacer(super::plots::grid_y)
            .x_axis_formatter(super::plots::tick_label)
            .y_axis_formatter(super::plots::tick_label)
            .x_axis_label("false positive rate (OOD accepted)")
            .y_axis_label("true positive rate (ID kept)")
            .show(ui, |plot_ui| {
                // The focused curve last: drawn over the others.
                let order = rows
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| Some(r.column) != focus)
                    .chain(rows.iter().enumerate().filter(|(_, r)| Some(r.column) == focus));
                for (k, row) in order {
                    let Some(curves) = &comparison.curves[row.column] else {
                        continue;
                    };
                    let (colour, pattern) = curve_style(k);
                    let points: Vec<[f64; 2]> = curves.roc.iter().map(|&(x, y)| [x, y]).collect();
                    let on_top = Some(row.column) == focus;
                    plot_ui.line(
                        Line::new(row.title(), PlotPoints::from(points))
                            .id(curve_id(row.column))
                            .color(colour)
                            .style(if on_top { LineStyle::Solid } else { pattern })
                            .width(if on_top { 3.5 } else { 1.5 }),
                    );
                }
            });
        if let Some(item) = response.hovered_plot_item {
            now_hovered = rows.iter().map(|r| r.column).find(|&c| curve_id(c) == item);
        }
        egui::ScrollArea::vertical()
            .id_salt("compare-roc-legend")
            .max_height(height)
            .show(ui, |ui| {
                ui.set_width(LEGEND_WIDTH);
                ui.vertical(|ui| {
                    for (k, row) in rows.iter().enumerate() {
                        let response = legend_entry_ui(ui, k, &row.title(), Some(row.column) == focus);
                        if response.contains_pointer() {
                            now_hovered = Some(row.column);
                        }
                        if row.external.is_some() {
                            response.on_hover_text("The results file's own score column");
                        } else if response
                            .on_hover_text(format!("{}: click to show it", row.settings.describe()))
                            .clicked()
                        {
                            out.push(Command::SetMethod(row.settings.method));
                            out.push(Command::SetParams(row.settings.params.clone()));
                        }
                    }
                });
            });
    });
    if now_hovered != hovered {
        ui.data_mut(|d| d.insert_temp(hovered_id(), now_hovered));
        ui.ctx().request_repaint();
    }
}

/// One legend row: a sample of the curve's colour and pattern, and the method's name (strong when
/// it is on top). Clickable.
fn legend_entry_ui(ui: &mut egui::Ui, k: usize, name: &str, on_top: bool) -> egui::Response {
    let (colour, pattern) = curve_style(k);
    let text = if on_top {
        RichText::new(name).strong()
    } else {
        RichText::new(name)
    };
    let inner = ui.horizontal(|ui| {
        let (rect, _) = ui.allocate_exact_size(egui::vec2(34.0, 14.0), Sense::hover());
        let (a, b) = (rect.left_center(), rect.right_center());
        let stroke = Stroke::new(if on_top { 3.5 } else { 2.0 }, colour);
        let painter = ui.painter();
        match pattern {
            LineStyle::Solid => {
                painter.line_segment([a, b], stroke);
            }
            LineStyle::Dashed { length } => {
                painter.extend(egui::Shape::dashed_line(&[a, b], stroke, length * 0.6, length * 0.4));
            }
            LineStyle::Dotted { spacing } => {
                painter.extend(egui::Shape::dotted_line(
                    &[a, b],
                    colour,
                    spacing * 0.8,
                    stroke.width * 0.6,
                ));
            }
        }
        ui.label(text);
    });
    inner.response.interact(Sense::click())
}
