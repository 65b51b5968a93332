//! A heatmap of one value over two categorical axes (the tuning objective over T × ε), headless to PNG.

use std::sync::Once;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

static FONT: &[u8] = include_bytes!("../../../../assets/fonts/DejaVuSans.ttf");
static REGISTER_FONT: Once = Once::new();

/// Viridis at nine evenly spaced points (matplotlib's values), interpolated linearly between them.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
];

/// Colour of cells without a value.
const MISSING: RGBColor = RGBColor(200, 200, 200);

/// What to draw: `values[x * y_labels.len() + y]` is the cell in column x, row y (row 0 at the bottom).
pub struct HeatmapPlot {
    pub title: String,
    /// A second line under the title.
    pub subtitle: String,
    pub x_desc: String,
    pub y_desc: String,
    pub x_labels: Vec<String>,
    pub y_labels: Vec<String>,
    pub values: Vec<Option<f64>>,
    /// The colour bar's title.
    pub value_desc: String,
    /// Better values get the bright end of the colour map.
    pub lower_is_better: bool,
    /// The cell outlined as the best.
    pub best: Option<(usize, usize)>,
    pub width: u32,
    pub height: u32,
}

/// Renders the heatmap to PNG bytes.
pub fn heatmap_png(plot: &HeatmapPlot) -> Result<Vec<u8>, String> {
    REGISTER_FONT.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let (nx, ny) = (plot.x_labels.len(), plot.y_labels.len());
    if nx == 0 || ny == 0 || plot.values.len() != nx * ny {
        return Err(format!("heatmap needs {nx}×{ny} values, got {}", plot.values.len()));
    }
    let range = value_range(&plot.values).ok_or("no values to draw")?;
    let mut pixels = vec![0u8; plot.width as usize * plot.height as usize * 3];
    draw(plot, &mut pixels, range).map_err(|e| format!("cannot draw the heatmap: {e}"))?;
    super::png::encode_rgb(plot.width, plot.height, pixels)
}

/// The smallest and largest finite value, widened when they are equal.
fn value_range(values: &[Option<f64>]) -> Option<(f64, f64)> {
    let finite = values.iter().flatten().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold(None, |acc: Option<(f64, f64)>, v| {
        Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
    })?;
    if lo < hi {
        Some((lo, hi))
    } else {
        let half = (lo.abs() * 1e-3).max(1e-3);
        Some((lo - half, hi + half))
    }
}

/// Viridis at `u` in [0, 1].
fn viridis(u: f64) -> RGBColor {
    let position = u.clamp(0.0, 1.0) * (VIRIDIS.len() - 1) as f64;
    let i = (position.floor() as usize).min(VIRIDIS.len() - 2);
    let f = position - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Where `v` falls on the colour map: 1 (bright) is the better end.
fn colour_position(v: f64, (lo, hi): (f64, f64), lower_is_better: bool) -> f64 {
    let u = (v - lo) / (hi - lo);
    if lower_is_better { 1.0 - u } else { u }
}

fn draw(plot: &HeatmapPlot, pixels: &mut [u8], range: (f64, f64)) -> Result<(), Box<dyn std::error::Error>> {
    let (nx, ny) = (plot.x_labels.len(), plot.y_labels.len());
    let full = BitMapBackend::with_buffer(pixels, (plot.width, plot.height)).into_drawing_area();
    full.fill(&WHITE)?;
    let root = full.titled(&plot.title, ("sans-serif", 22))?;
    root.draw(&Text::new(
        plot.subtitle.clone(),
        (plot.width as i32 / 2, 4),
        ("sans-serif", 16)
            .into_font()
            .color(&BLACK.mix(0.75))
            .pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    let (main, bar) = root.split_horizontally(plot.width.saturating_sub(150));

    let mut chart = ChartBuilder::on(&main)
        .margin_top(34)
        .margin_left(16)
        .margin_right(8)
        .margin_bottom(12)
        .x_label_area_size(56)
        .y_label_area_size(84)
        .build_cartesian_2d(0.0..nx as f64, 0.0..ny as f64)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(0)
        .x_desc(&plot.x_desc)
        .y_desc(&plot.y_desc)
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    let cell = |x: usize, y: usize| [(x as f64, y as f64), (x as f64 + 1.0, y as f64 + 1.0)];
    let colour_of = |v: Option<f64>| match v.filter(|v| v.is_finite()) {
        Some(v) => viridis(colour_position(v, range, plot.lower_is_better)),
        None => MISSING,
    };
    chart.draw_series(
        (0..nx).flat_map(|x| {
            (0..ny).map(move |y| Rectangle::new(cell(x, y), colour_of(plot.values[x * ny + y]).filled()))
        }),
    )?;

    // Values in the cells, when the cells are big enough to hold them.
    let (x0, y0) = chart.backend_coord(&(0.0, 0.0));
    let (x1, y1) = chart.backend_coord(&(1.0, 1.0));
    let (cell_w, cell_h) = ((x1 - x0).abs(), (y0 - y1).abs());
    if cell_h >= 16 && cell_w >= 44 {
        let size = (cell_h - 4).clamp(10, 15);
        for x in 0..nx {
            for y in 0..ny {
                let Some(v) = plot.values[x * ny + y].filter(|v| v.is_finite()) else {
                    continue;
                };
                let u = colour_position(v, range, plot.lower_is_better);
                let ink = if u > 0.6 { BLACK } else { WHITE };
                chart.draw_series(std::iter::once(Text::new(
                    format!("{v:.1}"),
                    (x as f64 + 0.5, y as f64 + 0.5),
                    ("sans-serif", size)
                        .into_font()
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                )))?;
            }
        }
    }
    if let Some((bx, by)) = plot.best.filter(|&(x, y)| x < nx && y < ny) {
        chart.draw_series([
            Rectangle::new(cell(bx, by), BLACK.stroke_width(4)),
            Rectangle::new(cell(bx, by), WHITE.stroke_width(1)),
        ])?;
    }

    // Category labels at the cell centres (`backend_coord` is in whole-image pixels, as `full`).
    let label_style = ("sans-serif", 14).into_font().color(&BLACK);
    let every_y = (ny / 24 + 1).max(1);
    for (x, label) in plot.x_labels.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(x as f64 + 0.5, 0.0));
        full.draw(&Text::new(
            label.clone(),
            (px, py + 6),
            label_style.clone().pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }
    for (y, label) in plot.y_labels.iter().enumerate().filter(|(y, _)| y % every_y == 0) {
        let (px, py) = chart.backend_coord(&(0.0, y as f64 + 0.5));
        full.draw(&Text::new(
            label.clone(),
            (px - 6, py),
            label_style.clone().pos(Pos::new(HPos::Right, VPos::Center)),
        ))?;
    }

    // The colour bar: the value axis with its colours.
    let (lo, hi) = range;
    let mut legend = ChartBuilder::on(&bar)
        .margin_top(34)
        .margin_bottom(68)
        .margin_right(70)
        .margin_left(8)
        .y_label_area_size(0)
        .right_y_label_area_size(54)
        .build_cartesian_2d(0.0..1.0, lo..hi)?
        .set_secondary_coord(0.0..1.0, lo..hi);
    legend
        .configure_secondary_axes()
        .set_all_tick_mark_size(6)
        .y_desc(&plot.value_desc)
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 15))
        .draw()?;
    let steps = 200;
    legend.draw_series((0..steps).map(|i| {
        let a = lo + (hi - lo) * i as f64 / steps as f64;
        let b = lo + (hi - lo) * (i + 1) as f64 / steps as f64;
        let colour = viridis(colour_position(0.5 * (a + b), range, plot.lower_is_better));
        Rectangle::new([(0.0, a), (1.0, b)], colour.filled())
    }))?;
    legend.draw_series(std::iter::once(Rectangle::new(
        [(0.0, lo), (1.0, hi)],
        BLACK.stroke_width(1),
    )))?;
    full.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_map_ends_and_direction() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(viridis(2.0), viridis(1.0));
        assert_eq!(colour_position(0.0, (0.0, 1.0), true), 1.0);
        assert_eq!(colour_position(0.0, (0.0, 1.0), false), 0.0);
        assert_eq!(value_range(&[Some(2.0), None, Some(2.0)]), Some((1.998, 2.002)));
        assert_eq!(value_range(&[None]), None);
    }

    #[test]
    fn draws_a_png_and_refuses_a_wrong_shape() {
        let mut plot = HeatmapPlot {
            title: "t".into(),
            subtitle: "s".into(),
            x_desc: "T".into(),
            y_desc: "ε".into(),
            x_labels: vec!["1".into(), "10".into()],
            y_labels: vec!["0".into(), "0.001".into(), "0.002".into()],
            values: vec![Some(10.0), Some(5.0), None, Some(1.0), Some(2.0), Some(3.0)],
            value_desc: "FPR95 (%)".into(),
            lower_is_better: true,
            best: Some((1, 0)),
            width: 640,
            height: 480,
        };
        let png = heatmap_png(&plot).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        plot.values.pop();
        assert!(heatmap_png(&plot).unwrap_err().contains("2×3"));
    }
}
