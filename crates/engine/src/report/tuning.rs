//! What `oodscope tune` prints and writes: the summary with each number's split, the grid CSV, the heatmap.

use std::fmt::Write;

use super::heatmap::{HeatmapPlot, heatmap_png};
use super::table::metrics_table;
use crate::detect::Params;
use crate::evaluate::{Evaluation, OodEvaluation};
use crate::tune::grid::label;
use crate::tune::{Objective, TuneResult};
use oodscope_data::ImageSet;
use oodscope_metrics::DetectionMetrics;

/// The columns after the parameters'.
pub const GRID_METRIC_COLUMNS: &str = "split,set,fpr_at_95_tpr,detection_error,auroc,aupr_in,aupr_out";

/// The grid CSV: the method's parameters (one column each, as ODIN's `temperature,epsilon`), then
/// one `validation` row per (setting, OOD set) in grid order, then one `test` row per OOD set at
/// the chosen setting. Metrics are fractions; a row whose metrics could not be computed has empty
/// metric fields.
pub fn grid_csv(result: &TuneResult, sets: &[ImageSet]) -> String {
    let mut out = String::new();
    let names: Vec<&str> = result.grid.axes.iter().map(|a| a.name.as_str()).collect();
    let _ = writeln!(out, "{},{GRID_METRIC_COLUMNS}", names.join(","));
    let mut row = |params: &Params, split: &str, set: &str, metrics: Option<&DetectionMetrics>| {
        let values = metrics.map_or_else(
            || ",,,,".to_string(),
            |m| {
                format!(
                    "{},{},{},{},{}",
                    m.fpr_at_95_tpr, m.detection_error, m.auroc, m.aupr_in, m.aupr_out
                )
            },
        );
        let values_of: Vec<String> = names
            .iter()
            .map(|n| params.value(n).map_or_else(String::new, |v| v.to_string()))
            .collect();
        let _ = writeln!(out, "{},{split},{},{values}", values_of.join(","), csv_field(set));
    };
    for r in &result.results {
        for m in &r.per_set {
            row(&r.params, "validation", &sets[m.set].name, m.metrics.as_ref().ok());
        }
    }
    for ood in &result.test_evaluation.ood {
        row(&result.chosen.params, "test", &ood.name, ood.method.as_ref().ok());
    }
    out
}

/// Quotes a field when it holds a comma, quote or line break (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The objective as shown: a percentage, like the metrics table.
fn percent(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

/// What the objective is computed on: `OOD set mnist` or `the mean over OOD sets a, b`.
fn tuned_on(result: &TuneResult, sets: &[ImageSet]) -> String {
    let names: Vec<&str> = result.tuned.iter().map(|&s| sets[s].name.as_str()).collect();
    match names.as_slice() {
        [one] => format!("OOD set {one}"),
        many => format!("the mean over OOD sets {}", many.join(", ")),
    }
}

/// `ankle: 1000, mnist: 1000` from per-set counts.
fn counts(sets: &[ImageSet], counts: impl Iterator<Item = usize>) -> String {
    sets.iter()
        .zip(counts)
        .map(|(s, n)| format!("{} {} {n}", s.role.name().to_uppercase(), s.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The printed summary: the protocol and split sizes, the choice with its validation objective,
/// the validation metrics at the choice, and the test-split table (MSP baseline beside the method).
/// Every block is headed by the split its numbers come from.
pub fn tune_summary(model_name: &str, result: &TuneResult, sets: &[ImageSet]) -> String {
    let method = result.chosen.method;
    let grid = &result.grid;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Tuning {} on {model_name}: {} = {} settings; objective {} on {}",
        method.title(),
        grid.describe(),
        grid.len(),
        result.objective.title(),
        tuned_on(result, sets)
    );
    let _ = writeln!(
        out,
        "[validation] split (chooses {}): {}",
        grid.axes
            .iter()
            .map(|a| a.symbol.as_str())
            .collect::<Vec<_>>()
            .join(" and "),
        counts(sets, result.validation_scored.iter().copied())
    );
    let _ = writeln!(
        out,
        "[test] split (reports the choice): {}",
        counts(sets, result.test_split_scored().into_iter())
    );
    let best = result.best_result();
    let _ = writeln!(
        out,
        "\n[validation] best setting: {} — {} {}",
        result.chosen.describe(),
        result.objective.short(),
        best.objective.map_or_else(|| "n/a".into(), percent)
    );

    let validation = Evaluation {
        id_count: result.validation_id_count(sets),
        id_accuracy: None,
        ood: best
            .per_set
            .iter()
            .map(|m| OodEvaluation {
                set: m.set,
                name: sets[m.set].name.clone(),
                count: result.validation_scored[m.set],
                method: m.metrics.clone(),
                baseline: None,
            })
            .collect(),
    };
    let _ = writeln!(out, "\n=== [validation] split, chosen setting ===");
    out.push_str(&metrics_table(model_name, &result.chosen, &validation));
    let _ = writeln!(
        out,
        "\n=== [test] split, chosen setting (never seen by the search) beside the MSP baseline ==="
    );
    out.push_str(&metrics_table(model_name, &result.chosen, &result.test_evaluation));
    out
}

/// The heatmap of the validation objective over the grid's first parameter (columns) × its second
/// (rows; one row when the method has one parameter), the best cell outlined. A grid of more than
/// two parameters has no heatmap.
pub fn tune_heatmap(model_name: &str, result: &TuneResult, sets: &[ImageSet]) -> Result<Vec<u8>, String> {
    let grid = &result.grid;
    let (x_axis, y_axis) = match grid.axes.as_slice() {
        [x] => (x, None),
        [x, y] => (x, Some(y)),
        _ => {
            return Err(format!(
                "a heatmap shows at most two parameters; {} has {}",
                grid.method,
                grid.axes.len()
            ));
        }
    };
    let ny = y_axis.map_or(1, |y| y.values.len());
    let best = (result.best / ny, result.best % ny);
    let objective = result.objective;
    let labels = |values: &[f64]| values.iter().map(|&v| label(v)).collect();
    let plot = HeatmapPlot {
        title: format!(
            "{model_name}: {}, {} on the validation split",
            result.chosen.method.title(),
            objective.short()
        ),
        subtitle: format!(
            "tuned on {}; best (outlined): {}, {} {}",
            tuned_on(result, sets),
            result.chosen.describe(),
            objective.short(),
            result.best_result().objective.map_or_else(|| "n/a".into(), percent)
        ),
        x_desc: x_axis.label.clone(),
        y_desc: y_axis.map_or_else(String::new, |y| y.label.clone()),
        x_labels: labels(&x_axis.values),
        y_labels: y_axis.map_or_else(|| vec![String::new()], |y| labels(&y.values)),
        values: result.results.iter().map(|r| r.objective.map(|v| 100.0 * v)).collect(),
        value_desc: format!(
            "{} (%), {} is better",
            objective.short(),
            if objective == Objective::Fpr95 {
                "lower"
            } else {
                "higher"
            }
        ),
        lower_is_better: objective == Objective::Fpr95,
        best: Some(best),
        width: 1200,
        height: (220 + 34 * ny as u32).clamp(520, 1100),
    };
    heatmap_png(&plot)
}
