//! ROC curves of each OOD set against ID, with the operating point at δ, rendered to PNG.

use plotters::prelude::*;

use super::histogram::{SET_COLOURS, ensure_font};

pub struct RocCurve<'a> {
    pub name: String,
    pub auroc: f64,
    /// (FPR, TPR) points from (0, 0) to (1, 1).
    pub points: &'a [(f64, f64)],
    pub operating_point: Option<(f64, f64)>,
}

pub fn roc_png(title: &str, curves: &[RocCurve], width: u32, height: u32) -> Result<Vec<u8>, String> {
    ensure_font();
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    draw(title, curves, &mut pixels, (width, height)).map_err(|e| format!("cannot draw the ROC curve: {e}"))?;
    super::png::encode_rgb(width, height, pixels)
}

fn draw(
    title: &str,
    curves: &[RocCurve],
    pixels: &mut [u8],
    size: (u32, u32),
) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::with_buffer(pixels, size).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("false positive rate (OOD called ID)")
        .y_desc("true positive rate (ID called ID)")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()?;
    chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))?;
    for (k, curve) in curves.iter().enumerate() {
        let colour = SET_COLOURS[(k + 1) % SET_COLOURS.len()];
        chart
            .draw_series(LineSeries::new(curve.points.iter().copied(), colour.stroke_width(2)))?
            .label(format!("{} (AUROC {:.1}%)", curve.name, 100.0 * curve.auroc))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
        if let Some(p) = curve.operating_point {
            chart.draw_series([Circle::new(p, 6, colour.filled())])?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .draw()?;
    root.present()?;
    Ok(())
}
