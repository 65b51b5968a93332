//! ROC and precision–recall curves per OOD set, with the operating point at δ; each legend in the
//! corner its curves leave empty.

use egui_plot::{Legend, Line, MarkerShape, Plot, PlotPoints, Points};

use crate::app::OodscopeApp;

/// One OOD set's curve on a plot: its legend name, points, and the operating point at δ.
struct Curve {
    name: String,
    points: Vec<[f64; 2]>,
    at_delta: Option<[f64; 2]>,
    colour: egui::Color32,
}

pub fn curves_ui(app: &OodscopeApp, ui: &mut egui::Ui) {
    let Some(derived) = &app.derived else { return };
    let threshold = app.threshold;
    let half = (ui.available_width() / 2.0 - 8.0).max(200.0);
    let height = ui.available_height().max(200.0);
    let mut roc = Vec::new();
    let mut pr = Vec::new();
    for (k, ood) in derived.ood.iter().enumerate() {
        let Some(curves) = &ood.curves else { continue };
        let colour = super::set_colour(k + 1);
        let at_delta = threshold.and_then(|t| ood.operating_point(t));
        let metrics = ood.metrics;
        roc.push(Curve {
            name: format!(
                "{} (AUROC {:.1}%)",
                ood.name,
                100.0 * metrics.map_or(f64::NAN, |m| m.auroc)
            ),
            points: curves.roc.iter().map(|&(x, y)| [x, y]).collect(),
            at_delta: at_delta.map(|p| [p.fpr, p.tpr]),
            colour,
        });
        pr.push(Curve {
            name: format!(
                "{} (AUPR-In {:.1}%)",
                ood.name,
                100.0 * metrics.map_or(f64::NAN, |m| m.aupr_in)
            ),
            points: curves.pr.iter().map(|&(x, y)| [x, y]).collect(),
            at_delta: at_delta
                .filter(|p| p.id_as_id + p.ood_as_id > 0)
                .map(|p| [p.tpr, p.id_as_id as f64 / (p.id_as_id + p.ood_as_id) as f64]),
            colour,
        });
    }
    ui.horizontal(|ui| {
        ui.vertical(|ui| {
            ui.set_width(half);
            ui.label("ROC: true positive rate (ID kept) against false positive rate (OOD accepted); dots at δ");
            rate_plot_ui("roc", &roc, egui::vec2(half, height - 24.0), ui);
        });
        ui.vertical(|ui| {
            ui.set_width(half);
            ui.label("Precision–recall, ID positive (AUPR-In); dots at δ");
            rate_plot_ui("pr", &pr, egui::vec2(half, height - 24.0), ui);
        });
    });
}

/// A plot of rates on both axes, exactly [0, 1] (an equal aspect ratio stretched y to 1.6), with
/// its legend in the emptiest corner. The dot at δ shares its curve's name: one legend entry each.
fn rate_plot_ui(id: &str, curves: &[Curve], size: egui::Vec2, ui: &mut egui::Ui) {
    let longest = curves.iter().map(|c| c.name.chars().count()).max().unwrap_or(0);
    let legend = super::plots::legend_fraction(curves.len(), longest, size);
    let lines: Vec<Vec<[f64; 2]>> = curves.iter().map(|c| c.points.clone()).collect();
    let corner = super::plots::emptiest_corner(&lines, &[], legend);
    Plot::new(id)
        .height(size.y)
        .legend(Legend::default().position(corner).follow_insertion_order(true))
        .default_x_bounds(0.0, 1.0)
        .default_y_bounds(0.0, 1.0)
        .x_grid_spacer(super::plots::grid_x)
        .y_grid_spacer(super::plots::grid_y)
        .x_axis_formatter(super::plots::tick_label)
        .y_axis_formatter(super::plots::tick_label)
        .show(ui, |plot_ui| {
            for curve in curves {
                plot_ui.line(Line::new(curve.name.clone(), PlotPoints::from(curve.points.clone())).color(curve.colour));
                if let Some(p) = curve.at_delta {
                    plot_ui.points(
                        Points::new(curve.name.clone(), vec![p])
                            .color(curve.colour)
                            .radius(6.0)
                            .shape(MarkerShape::Circle),
                    );
                }
            }
        });
}
