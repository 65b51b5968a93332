//! The score histogram: ID and each OOD set overlaid, the threshold δ drawn and draggable.

use egui_plot::{Legend, Line, Plot, PlotPoints, VLine};

use crate::app::{Command, OodscopeApp};

pub fn histogram_ui(app: &OodscopeApp, out: &mut Vec<Command>, ui: &mut egui::Ui, height: f32) {
    let Some(derived) = &app.derived else { return };
    let (lo, hi) = derived.range;
    let width = (hi - lo) as f64 / derived.bin_count as f64;
    let density = app.settings.density;
    let log_y = app.settings.log_y;
    let y_label = match (density, log_y) {
        (true, false) => "density",
        (true, true) => "log10(1 + density)",
        (false, false) => "images",
        (false, true) => "log10(1 + images)",
    };
    let method = app.result.as_ref().map_or("score".to_string(), |r| r.shown.describe());
    let threshold = app.threshold;
    let response = Plot::new("histogram")
        .height(height)
        .legend(Legend::default())
        .x_axis_label(format!(
            "{method} score  (drag to move δ; scroll to zoom; double-click to reset)"
        ))
        .y_axis_label(y_label)
        .allow_drag(false)
        .allow_boxed_zoom(false)
        .include_y(0.0)
        .show(ui, |plot_ui| {
            for (k, set) in derived.bins.iter().enumerate() {
                let n = set.count.max(1) as f64;
                let value = |c: u32| {
                    let v = if density { c as f64 / (n * width) } else { c as f64 };
                    if log_y { (1.0 + v).log10() } else { v }
                };
                let mut points = vec![[lo as f64, 0.0]];
                for (i, &c) in set.counts.iter().enumerate() {
                    let x0 = lo as f64 + i as f64 * width;
                    points.push([x0, value(c)]);
                    points.push([x0 + width, value(c)]);
                }
                points.push([hi as f64, 0.0]);
                let name = format!("{} {} ({})", set.role.name().to_uppercase(), set.name, set.count);
                plot_ui.line(
                    Line::new(name, PlotPoints::from(points))
                        .color(super::set_colour(k))
                        .width(2.0)
                        .fill(0.0)
                        .fill_alpha(0.15),
                );
            }
            if let Some(t) = threshold {
                plot_ui.vline(
                    VLine::new(format!("δ = {t:.6}"), t as f64)
                        .color(egui::Color32::BLACK)
                        .width(2.0),
                );
            }
        });
    let r = &response.response;
    if (r.dragged_by(egui::PointerButton::Primary) || r.clicked())
        && let Some(pos) = r.interact_pointer_pos()
    {
        let x = response.transform.value_from_position(pos).x as f32;
        out.push(Command::SetThreshold(x.clamp(lo, hi)));
    }
}
