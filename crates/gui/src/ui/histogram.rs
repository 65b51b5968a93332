//! The score histogram: ID and each OOD set overlaid, the threshold δ drawn and draggable, and the
//! legend in a band of headroom above the peaks, in the top corner that δ is not in.

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
    let method = app
        .result
        .as_ref()
        .map_or("score".to_string(), crate::app::shown::ShownResult::title);
    let threshold = app.threshold;
    let value = |count: u32, n: f64| {
        let v = if density {
            f64::from(count) / (n * width)
        } else {
            f64::from(count)
        };
        if log_y { (1.0 + v).log10() } else { v }
    };
    let curves: Vec<(String, Vec<[f64; 2]>)> = derived
        .bins
        .iter()
        .map(|set| {
            let n = set.count.max(1) as f64;
            let mut points = vec![[f64::from(lo), 0.0]];
            for (i, &c) in set.counts.iter().enumerate() {
                let x0 = f64::from(lo) + i as f64 * width;
                points.push([x0, value(c, n)]);
                points.push([x0 + width, value(c, n)]);
            }
            points.push([f64::from(hi), 0.0]);
            let name = format!("{} {} ({})", set.role.name().to_uppercase(), set.name, set.count);
            (name, points)
        })
        .collect();
    let delta_name = threshold.map(|t| format!("δ = {t:.6}"));
    // Headroom above the highest peak as tall as the legend, which then covers no curve; of the two
    // top corners, the one δ is not in.
    let longest = curves
        .iter()
        .map(|(name, _)| name.chars().count())
        .chain(delta_name.as_ref().map(|d| d.chars().count()))
        .max()
        .unwrap_or(0);
    let rows = curves.len() + usize::from(threshold.is_some());
    let [legend_w, legend_h] = super::plots::legend_fraction(rows, longest, egui::vec2(ui.available_width(), height));
    let peak = curves
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q[1]))
        .fold(0.0, f64::max)
        .max(1e-12);
    let top = peak / (1.0 - legend_h.min(0.6));
    let span = f64::from(hi - lo).max(1e-12);
    let in_plot = |[x, y]: [f64; 2]| [(x - f64::from(lo)) / span, y / top];
    let placed: Vec<Vec<[f64; 2]>> = curves
        .iter()
        .map(|(_, p)| p.iter().copied().map(in_plot).collect())
        .collect();
    let delta_at: Vec<f64> = threshold
        .map(|t| (f64::from(t) - f64::from(lo)) / span)
        .into_iter()
        .collect();
    let corner = super::plots::emptiest_corner(&placed, &delta_at, [legend_w, legend_h]);
    let response = Plot::new("histogram")
        .height(height)
        .legend(Legend::default().position(corner).follow_insertion_order(true))
        .x_axis_label(format!(
            "{method} score  (drag to move δ; scroll to zoom; double-click to reset)"
        ))
        .y_axis_label(y_label)
        .x_grid_spacer(super::plots::grid_x)
        .y_grid_spacer(super::plots::grid_y)
        .x_axis_formatter(super::plots::tick_label)
        .y_axis_formatter(super::plots::tick_label)
        .allow_drag(false)
        .allow_boxed_zoom(false)
        .include_y(0.0)
        .include_y(top)
        .show(ui, |plot_ui| {
            for (k, (name, points)) in curves.into_iter().enumerate() {
                plot_ui.line(
                    Line::new(name, PlotPoints::from(points))
                        .color(super::set_colour(k))
                        .width(2.0)
                        .fill(0.0)
                        .fill_alpha(0.15),
                );
            }
            if let (Some(t), Some(name)) = (threshold, delta_name) {
                plot_ui.vline(
                    VLine::new(name, f64::from(t))
                        .color({
                            let c = oodscope_engine::report::histogram::THRESHOLD_COLOUR;
                            egui::Color32::from_rgb(c.0, c.1, c.2)
                        })
                        .width(2.5),
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
