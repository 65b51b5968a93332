//! The score histogram: ID and each OOD set overlaid, the threshold δ drawn and draggable.

use egui_plot::{GridInput, GridMark, Legend, Line, Plot, PlotPoints, VLine};

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
        .x_grid_spacer(nice_grid)
        .x_axis_formatter(|mark, _| label_for(mark.value, mark.step_size))
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

/// Grid marks at a 1-2-5 step giving 5 to 12 labelled ticks over the visible range (the default
/// powers of ten leave one label on a narrow range, such as ODIN's 0.1000–0.1017 at T = 1000), and
/// minor marks at a fifth of it.
pub fn nice_grid(input: GridInput) -> Vec<GridMark> {
    let (lo, hi) = input.bounds;
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return Vec::new();
    }
    let major = nice_step(span / 5.0);
    let minor = major / 5.0;
    let first = (lo / minor).ceil() as i64;
    let last = (hi / minor).floor() as i64;
    if last - first > 10_000 {
        return Vec::new();
    }
    (first..=last)
        .map(|i| {
            let value = i as f64 * minor;
            let step_size = if i % 5 == 0 { major } else { minor };
            GridMark { value, step_size }
        })
        .collect()
}

/// The largest 1, 2 or 5 × 10ᵏ not above `raw`.
fn nice_step(raw: f64) -> f64 {
    let power = 10f64.powf(raw.log10().floor());
    [5.0, 2.0, 1.0]
        .iter()
        .map(|m| m * power)
        .find(|&s| s <= raw * (1.0 + 1e-9))
        .unwrap_or(power)
}

/// A tick label with the decimals its step needs (0.1002, 0.1004… for a step of 0.0002).
pub fn label_for(value: f64, step: f64) -> String {
    let decimals = if step > 0.0 {
        (-step.log10().floor()).clamp(0.0, 12.0) as usize
    } else {
        3
    };
    format!("{value:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_narrow_range_gets_several_readable_ticks() {
        let marks = nice_grid(GridInput {
            bounds: (0.1000, 0.1017),
            base_step_size: 1e-6,
        });
        let major: Vec<&GridMark> = marks.iter().filter(|m| m.step_size > 1e-4 * 1.5).collect();
        assert!((5..=12).contains(&major.len()), "{} labelled ticks", major.len());
        let labels: Vec<String> = major.iter().map(|m| label_for(m.value, m.step_size)).collect();
        assert_eq!(labels[0], "0.1000");
        assert_eq!(labels[1], "0.1002");
        assert!(labels.windows(2).all(|w| w[0] != w[1]), "{labels:?}");
        assert_eq!(label_for(250.0, 50.0), "250");
    }
}
