//! Score histograms, ID against each OOD set, rendered headless to PNG with plotters.

use std::sync::Once;

use plotters::prelude::*;

use oodscope_metrics::{histogram, shared_range};

/// DejaVu Sans, embedded: the charts' font, and a fallback of the window's (`crate::ui::fonts`).
pub static FONT: &[u8] = include_bytes!("../../../../assets/fonts/DejaVuSans.ttf");
static REGISTER_FONT: Once = Once::new();

/// Registers the embedded font with plotters (once).
pub fn ensure_font() {
    REGISTER_FONT.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Colours for the sets: ID first, then the OOD sets in order.
pub const SET_COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// The threshold δ's colour: the window's amber, which stands out from every set colour.
pub const THRESHOLD_COLOUR: RGBColor = RGBColor(255, 196, 0);

/// The threshold line's width in pixels (the set outlines are 2).
pub const THRESHOLD_WIDTH: u32 = 5;

/// One distribution to draw.
pub struct Series<'a> {
    pub name: String,
    pub scores: &'a [f32],
}

/// What to draw and how big.
pub struct HistogramPlot<'a> {
    pub title: String,
    pub x_label: String,
    pub series: Vec<Series<'a>>,
    pub threshold: Option<f32>,
    /// How δ was chosen, for the legend: `95% TPR`, `as set`, a detector's rule…
    pub threshold_note: String,
    pub bins: usize,
    pub width: u32,
    pub height: u32,
}

/// Renders the plot to PNG bytes. Each set is drawn as a density (area 1), so sets of different
/// sizes compare fairly.
pub fn histogram_png(plot: &HistogramPlot) -> Result<Vec<u8>, String> {
    ensure_font();
    let slices: Vec<&[f32]> = plot.series.iter().map(|s| s.scores).collect();
    let (lo, hi) = shared_range(&slices).ok_or("no finite scores to draw")?;
    let bins = plot.bins.max(1);
    let width = (hi - lo) as f64 / bins as f64;
    let densities: Vec<Vec<f64>> = plot
        .series
        .iter()
        .map(|s| {
            let n = s.scores.iter().filter(|v| v.is_finite()).count().max(1) as f64;
            histogram(s.scores, lo, hi, bins)
                .into_iter()
                .map(|c| c as f64 / (n * width))
                .collect()
        })
        .collect();
    let y_max = densities
        .iter()
        .flatten()
        .copied()
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.1;

    let mut pixels = vec![0u8; plot.width as usize * plot.height as usize * 3];
    draw(plot, &mut pixels, (lo as f64, hi as f64), y_max, width, &densities)
        .map_err(|e| format!("cannot draw the histogram: {e}"))?;
    super::png::encode_rgb(plot.width, plot.height, pixels)
}

fn draw(
    plot: &HistogramPlot,
    pixels: &mut [u8],
    (lo, hi): (f64, f64),
    y_max: f64,
    bin_width: f64,
    densities: &[Vec<f64>],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::with_buffer(pixels, (plot.width, plot.height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&plot.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(lo..hi, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc(&plot.x_label)
        .y_desc("density")
        .label_style(("sans-serif", 15))
        .light_line_style(RGBColor(238, 238, 238))
        .y_label_formatter(&|v| significant(*v))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    for (k, (series, density)) in plot.series.iter().zip(densities).enumerate() {
        let colour = SET_COLOURS[k % SET_COLOURS.len()];
        let mut steps = vec![(lo, 0.0)];
        for (i, d) in density.iter().enumerate() {
            steps.push((lo + i as f64 * bin_width, *d));
            steps.push((lo + (i + 1) as f64 * bin_width, *d));
        }
        steps.push((hi, 0.0));
        chart
            .draw_series(AreaSeries::new(steps, 0.0, colour.mix(0.22)).border_style(colour.stroke_width(2)))?
            .label(format!("{} ({})", series.name, series.scores.len()))
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], colour.filled()));
    }
    if let Some(t) = plot.threshold.filter(|t| t.is_finite()) {
        let t = (t as f64).clamp(lo, hi);
        chart
            .draw_series(LineSeries::new(
                [(t, 0.0), (t, y_max)],
                THRESHOLD_COLOUR.stroke_width(THRESHOLD_WIDTH),
            ))?
            .label(format!("threshold δ = {} ({})", significant(t), plot.threshold_note))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], THRESHOLD_COLOUR.stroke_width(THRESHOLD_WIDTH)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .draw()?;
    root.present()?;
    Ok(())
}

/// Six significant digits, without trailing zeros: scores near 1/C at T = 1000 need them.
fn significant(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let decimals = (5 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn significant_digits() {
        assert_eq!(super::significant(0.250025123), "0.250025");
        assert_eq!(super::significant(80000.0), "80000");
        assert_eq!(super::significant(-3.5), "-3.5");
    }
}
