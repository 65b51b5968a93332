//! What `oodscope tune` prints and writes: the summary with each number's split, the grid CSV, the heatmap.

use std::fmt::Write;

use super::heatmap::{HeatmapPlot, heatmap_png};
use super::table::metrics_table;
use crate::data::ImageSet;
use crate::evaluate::{Evaluation, OodEvaluation};
use crate::metrics::DetectionMetrics;
use crate::tune::{Objective, TuneResult};

pub const GRID_HEADER: &str = "temperature,epsilon,split,set,fpr_at_95_tpr,detection_error,auroc,aupr_in,aupr_out";

/// The grid CSV: one `validation` row per (T, ε, OOD set) in grid order, then one `test` row per
/// OOD set at the chosen setting. Metrics are fractions; a row whose metrics could not be computed
/// has empty metric fields. A method that ignores T (the confidence branch) has T = 1 throughout.
pub fn grid_csv(result: &TuneResult, sets: &[ImageSet]) -> String {
    let mut out = String::new();
    out.push_str(GRID_HEADER);
    out.push('\n');
    let mut row = |t: f64, e: f64, split: &str, set: &str, metrics: Option<&DetectionMetrics>| {
        let values = metrics.map_or_else(
            || ",,,,".to_string(),
            |m| {
                format!(
                    "{},{},{},{},{}",
                    m.fpr_at_95_tpr, m.detection_error, m.auroc, m.aupr_in, m.aupr_out
                )
            },
        );
        let _ = writeln!(out, "{t},{e},{split},{},{values}", csv_field(set));
    };
    for r in &result.results {
        for m in &r.per_set {
            row(
                r.temperature,
                r.epsilon,
                "validation",
                &sets[m.set].name,
                m.metrics.as_ref().ok(),
            );
        }
    }
    for ood in &result.test_evaluation.ood {
        row(
            result.chosen.temperature,
            result.chosen.epsilon,
            "test",
            &ood.name,
            ood.method.as_ref().ok(),
        );
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
    let t_axis = if method.uses_temperature() {
        format!("{} T × ", grid.temperatures.len())
    } else {
        "T not used, ".to_string()
    };
    let _ = writeln!(
        out,
        "Tuning {} on {model_name}: {t_axis}{} ε = {} settings; objective {} on {}",
        method.title(),
        grid.epsilons.len(),
        grid.len(),
        result.objective.title(),
        tuned_on(result, sets)
    );
    let _ = writeln!(
        out,
        "[validation] split (chooses T and ε): {}",
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

/// The heatmap of the validation objective over T (columns) × ε (rows), the best cell outlined.
pub fn tune_heatmap(model_name: &str, result: &TuneResult, sets: &[ImageSet]) -> Result<Vec<u8>, String> {
    let grid = &result.grid;
    let ne = grid.epsilons.len();
    let best = (result.best / ne, result.best % ne);
    let objective = result.objective;
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
        x_desc: if result.chosen.method.uses_temperature() {
            "temperature T".into()
        } else {
            "temperature T (not used by this method)".into()
        },
        y_desc: "perturbation ε (pixel units)".into(),
        x_labels: grid.temperatures.iter().map(|t| format!("{t}")).collect(),
        y_labels: grid.epsilons.iter().map(|e| format!("{e}")).collect(),
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
        height: (220 + 34 * ne as u32).clamp(520, 1100),
    };
    heatmap_png(&plot)
}
