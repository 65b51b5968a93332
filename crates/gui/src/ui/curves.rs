//! ROC and precision–recall curves per OOD set, with the operating point at δ.

use egui_plot::{Legend, Line, MarkerShape, Plot, PlotPoints, Points};

use crate::app::OodscopeApp;

pub fn curves_ui(app: &OodscopeApp, ui: &mut egui::Ui) {
    let Some(derived) = &app.derived else { return };
    let threshold = app.threshold;
    let half = (ui.available_width() / 2.0 - 8.0).max(200.0);
    let height = ui.available_height().max(200.0);
    ui.horizontal(|ui| {
        ui.vertical(|ui| {
            ui.set_width(half);
            ui.label("ROC: true positive rate (ID kept) against false positive rate (OOD accepted)");
            // Both axes are rates: exactly [0, 1] (an equal aspect ratio stretched y to 1.6).
            Plot::new("roc")
                .height(height - 24.0)
                .legend(Legend::default())
                .default_x_bounds(0.0, 1.0)
                .default_y_bounds(0.0, 1.0)
                .show(ui, |plot_ui| {
                    for (k, ood) in derived.ood.iter().enumerate() {
                        let Some(curves) = &ood.curves else { continue };
                        let colour = super::set_colour(k + 1);
                        let points: Vec<[f64; 2]> = curves.roc.iter().map(|&(x, y)| [x, y]).collect();
                        let auroc = ood.metrics.map_or(f64::NAN, |m| m.auroc);
                        plot_ui.line(
                            Line::new(
                                format!("{} (AUROC {:.1}%)", ood.name, 100.0 * auroc),
                                PlotPoints::from(points),
                            )
                            .color(colour),
                        );
                        if let Some(p) = threshold.and_then(|t| ood.operating_point(t)) {
                            plot_ui.points(
                                Points::new(format!("{} at δ", ood.name), vec![[p.fpr, p.tpr]])
                                    .color(colour)
                                    .radius(6.0)
                                    .shape(MarkerShape::Circle),
                            );
                        }
                    }
                });
        });
        ui.vertical(|ui| {
            ui.set_width(half);
            ui.label("Precision–recall, ID positive (AUPR-In)");
            Plot::new("pr")
                .height(height - 24.0)
                .legend(Legend::default())
                .default_x_bounds(0.0, 1.0)
                .default_y_bounds(0.0, 1.0)
                .show(ui, |plot_ui| {
                    for (k, ood) in derived.ood.iter().enumerate() {
                        let Some(curves) = &ood.curves else { continue };
                        let points: Vec<[f64; 2]> = curves.pr.iter().map(|&(x, y)| [x, y]).collect();
                        let aupr = ood.metrics.map_or(f64::NAN, |m| m.aupr_in);
                        plot_ui.line(
                            Line::new(
                                format!("{} (AUPR-In {:.1}%)", ood.name, 100.0 * aupr),
                                PlotPoints::from(points),
                            )
                            .color(super::set_colour(k + 1)),
                        );
                        let at_threshold = threshold.and_then(|t| ood.operating_point(t));
                        if let Some(p) = at_threshold.filter(|p| p.id_as_id + p.ood_as_id > 0) {
                            let precision = p.id_as_id as f64 / (p.id_as_id + p.ood_as_id) as f64;
                            let marker = Points::new(format!("{} at δ", ood.name), vec![[p.tpr, precision]]);
                            plot_ui.points(
                                marker
                                    .color(super::set_colour(k + 1))
                                    .radius(6.0)
                                    .shape(MarkerShape::Circle),
                            );
                        }
                    }
                });
        });
    });
}
