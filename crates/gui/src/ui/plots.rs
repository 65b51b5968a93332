//! What every plot of the window shares: grid marks spaced so that each axis keeps several tick
//! labels at full strength at any plot size, the corner where a legend covers no data, and a
//! palette of colours × dash patterns that tells 30 curves apart.

use egui::Color32;
use egui_plot::{Corner, GridInput, GridMark, LineStyle};

/// egui_plot's `grid_spacing.min`: `GridInput::base_step_size` is the value spanned by this many
/// points.
const BASE_STEP_PX: f64 = 8.0;

/// Labelled x ticks at least this far apart: egui_plot draws an x tick label at full strength from
/// 80 points apart (fainter from 60, none below); its default powers of ten put 0.1 steps 44
/// points apart on a 440-point ROC plot, which left the single label "0".
const X_LABEL_PX: f64 = 80.0;

/// Labelled y ticks at least this far apart (egui_plot: full strength from 30 points).
const Y_LABEL_PX: f64 = 40.0;

/// Grid marks of the x axis (see [`grid_marks`]).
pub fn grid_x(input: GridInput) -> Vec<GridMark> {
    grid_marks(input, X_LABEL_PX)
}

/// Grid marks of the y axis (see [`grid_marks`]).
pub fn grid_y(input: GridInput) -> Vec<GridMark> {
    grid_marks(input, Y_LABEL_PX)
}

/// Major marks at the smallest 1-2-5 step at least `label_px` points apart (so 2.5 × `label_px`
/// at most: several labels on any plot, each at full strength), minor marks at a fifth of it
/// (closer than any label spacing, so unlabelled).
pub fn grid_marks(input: GridInput, label_px: f64) -> Vec<GridMark> {
    let (lo, hi) = input.bounds;
    let per_px = input.base_step_size / BASE_STEP_PX;
    if !(hi - lo).is_finite() || hi <= lo || !(per_px.is_finite() && per_px > 0.0) {
        return Vec::new();
    }
    let major = nice_step_up(label_px * per_px);
    let minor = major / 5.0;
    let first = (lo / minor).ceil() as i64;
    let last = (hi / minor).floor() as i64;
    if last - first > 10_000 {
        return Vec::new();
    }
    (first..=last)
        .map(|i| GridMark {
            value: i as f64 * minor,
            step_size: if i % 5 == 0 { major } else { minor },
        })
        .collect()
}

/// The smallest 1, 2 or 5 × 10ᵏ not below `raw`.
fn nice_step_up(raw: f64) -> f64 {
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * power)
}

/// A tick label with the decimals its step needs (0.1002, 0.1004… for a step of 0.0002).
pub fn label_for(value: f64, step: f64) -> String {
    let decimals = if step > 0.0 {
        (-step.log10().floor()).clamp(0.0, 12.0) as usize
    } else {
        3
    };
    // −0.0 reads as a different number from 0.
    let value = if value.abs() < step * 1e-6 { 0.0 } else { value };
    format!("{value:.decimals$}")
}

/// The formatter for [`grid_x`] / [`grid_y`] marks.
pub fn tick_label(mark: GridMark, _range: &std::ops::RangeInclusive<f64>) -> String {
    label_for(mark.value, mark.step_size)
}

/// The size of a legend of `rows` entries whose longest name has `longest_chars` characters, as
/// fractions of a plot of `plot_px` points (egui_plot's legend: a row of body text with a swatch,
/// in a framed box).
pub fn legend_fraction(rows: usize, longest_chars: usize, plot_px: egui::Vec2) -> [f64; 2] {
    let width = 40.0 + 7.5 * longest_chars as f64;
    let height = 14.0 + 19.0 * rows as f64;
    [
        (width / f64::from(plot_px.x.max(1.0))).min(1.0),
        (height / f64::from(plot_px.y.max(1.0))).min(1.0),
    ]
}

/// The corner where a legend of `size` (fractions of the plot) covers the least of `curves` and
/// none of the vertical lines `vlines` if it can, with everything in plot fractions ([0, 1]² is the
/// plot). Curves are followed between their points, so a steep stretch with no point inside the
/// corner still counts. Ties go to the top right, top left, bottom right, bottom left, in order.
pub fn emptiest_corner(curves: &[Vec<[f64; 2]>], vlines: &[f64], size: [f64; 2]) -> Corner {
    // Covered samples, a vertical line counting as more than any curve.
    const LINE: usize = 1_000_000;
    const STEP: f64 = 0.005;
    let corners = [
        Corner::RightTop,
        Corner::LeftTop,
        Corner::RightBottom,
        Corner::LeftBottom,
    ];
    let [w, h] = size;
    let covered = |corner: Corner| -> usize {
        let (x0, x1) = match corner {
            Corner::LeftTop | Corner::LeftBottom => (0.0, w),
            Corner::RightTop | Corner::RightBottom => (1.0 - w, 1.0),
        };
        let (y0, y1) = match corner {
            Corner::LeftBottom | Corner::RightBottom => (0.0, h),
            Corner::LeftTop | Corner::RightTop => (1.0 - h, 1.0),
        };
        let inside = |[x, y]: [f64; 2]| (x0..=x1).contains(&x) && (y0..=y1).contains(&y);
        let mut n = 0;
        for curve in curves {
            for pair in curve.windows(2) {
                let ([ax, ay], [bx, by]) = (pair[0], pair[1]);
                let steps = ((bx - ax).abs().max((by - ay).abs()) / STEP).ceil().clamp(1.0, 1e4) as usize;
                n += (0..steps)
                    .map(|i| i as f64 / steps as f64)
                    .filter(|&t| inside([ax + t * (bx - ax), ay + t * (by - ay)]))
                    .count();
            }
            if let [only] = curve.as_slice() {
                n += usize::from(inside(*only));
            }
        }
        n + LINE * vlines.iter().filter(|&&x| (x0..=x1).contains(&x)).count()
    };
    corners
        .into_iter()
        .min_by_key(|&c| covered(c))
        .unwrap_or(Corner::RightTop)
}

/// Colours of the curves' palette: Tableau 10, bright enough on the dark plot background.
const PALETTE: [Color32; 10] = [
    Color32::from_rgb(31, 119, 180),
    Color32::from_rgb(255, 127, 14),
    Color32::from_rgb(44, 160, 44),
    Color32::from_rgb(214, 39, 40),
    Color32::from_rgb(148, 103, 189),
    Color32::from_rgb(140, 86, 75),
    Color32::from_rgb(227, 119, 194),
    Color32::from_rgb(127, 127, 127),
    Color32::from_rgb(188, 189, 34),
    Color32::from_rgb(23, 190, 207),
];

/// Line patterns, one per pass through the colours.
const PATTERNS: [LineStyle; 3] = [
    LineStyle::Solid,
    LineStyle::Dashed { length: 10.0 },
    LineStyle::Dotted { spacing: 6.0 },
];

/// How many curves [`curve_style`] tells apart.
pub const DISTINCT_CURVES: usize = PALETTE.len() * PATTERNS.len();

/// The colour and pattern of curve `k`: the ten colours solid, then dashed, then dotted (curves 0
/// and 10 share a colour, never a pattern).
pub fn curve_style(k: usize) -> (Color32, LineStyle) {
    let k = k % DISTINCT_CURVES;
    (PALETTE[k % PALETTE.len()], PATTERNS[k / PALETTE.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The marks a plot `px` points wide over `bounds` gets (as egui_plot asks for them).
    fn marks(bounds: (f64, f64), px: f64, label_px: f64) -> Vec<GridMark> {
        let base_step_size = (bounds.1 - bounds.0) / px * BASE_STEP_PX;
        grid_marks(GridInput { bounds, base_step_size }, label_px)
    }

    fn labels(marks: &[GridMark]) -> Vec<String> {
        let major = marks.iter().map(|m| m.step_size).fold(0.0, f64::max);
        marks
            .iter()
            .filter(|m| m.step_size == major)
            .map(|m| label_for(m.value, m.step_size))
            .collect()
    }

    #[test]
    fn a_rate_axis_gets_several_labels_at_full_strength_at_any_plot_width() {
        // The ROC overlay of the Compare view at 1440×900 is about 440 points wide.
        for px in [300.0, 440.0, 700.0, 1100.0] {
            let marks = marks((0.0, 1.0), px, X_LABEL_PX);
            let labels = labels(&marks);
            assert!(labels.len() >= 3, "{px} points: {labels:?}");
            let major = marks.iter().map(|m| m.step_size).fold(0.0, f64::max);
            assert!(major * px >= X_LABEL_PX, "labels {} points apart", major * px);
            let minor = marks.iter().map(|m| m.step_size).fold(f64::INFINITY, f64::min);
            assert!(minor * px < 60.0, "minor marks must stay unlabelled");
        }
        assert_eq!(
            labels(&marks((0.0, 1.0), 440.0, X_LABEL_PX)),
            ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
        );
    }

    #[test]
    fn a_narrow_range_gets_several_readable_ticks() {
        // ODIN at T = 1000: 0.1000–0.1017 over a 1000-point histogram.
        let labels = labels(&marks((0.1000, 0.1017), 1000.0, X_LABEL_PX));
        assert!((5..=12).contains(&labels.len()), "{labels:?}");
        assert_eq!(labels[0], "0.1000");
        assert_eq!(labels[1], "0.1002");
        assert!(labels.windows(2).all(|w| w[0] != w[1]), "{labels:?}");
        assert_eq!(label_for(250.0, 50.0), "250");
        assert_eq!(label_for(-1e-17, 0.2), "0.0");
    }

    #[test]
    fn the_legend_goes_where_no_curve_or_line_is() {
        // ROC curves bow to the top left: the bottom right is empty.
        let roc = vec![vec![[0.0, 0.0], [0.02, 0.6], [0.1, 0.9], [0.4, 0.98], [1.0, 1.0]]];
        assert_eq!(emptiest_corner(&roc, &[], [0.4, 0.2]), Corner::RightBottom);
        // Precision–recall (ID positive) runs along the top and drops at the right: bottom left.
        let pr = vec![vec![[0.0, 1.0], [0.5, 0.97], [0.9, 0.85], [1.0, 0.15]]];
        assert_eq!(emptiest_corner(&pr, &[], [0.4, 0.2]), Corner::LeftBottom);
        // A histogram with headroom: both top corners are empty, δ decides.
        let peak = vec![vec![[0.0, 0.0], [0.3, 0.7], [0.6, 0.0]]];
        assert_eq!(emptiest_corner(&peak, &[0.8], [0.35, 0.25]), Corner::LeftTop);
        assert_eq!(emptiest_corner(&peak, &[0.2], [0.35, 0.25]), Corner::RightTop);
        // A steep stretch with no point inside the corner still counts.
        let steep = vec![vec![[0.7, -0.1], [0.7, 1.1]], vec![[0.1, 0.0], [0.1, 0.5]]];
        assert_eq!(emptiest_corner(&steep, &[], [0.4, 0.3]), Corner::LeftTop);
    }

    #[test]
    fn thirty_curves_get_thirty_different_looks() {
        let looks: Vec<String> = (0..DISTINCT_CURVES).map(|k| format!("{:?}", curve_style(k))).collect();
        let mut unique = looks.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), looks.len());
        const { assert!(DISTINCT_CURVES >= 20) };
    }
}
