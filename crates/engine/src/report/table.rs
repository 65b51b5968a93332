//! The metrics table printed by the CLI, in the seeds' form: baseline beside the method, per OOD set.

use std::fmt::Write;

use crate::evaluate::{Evaluation, OodEvaluation};
use crate::score::ScoreSettings;
use oodscope_metrics::DetectionMetrics;

/// The baseline every table shows beside the method.
pub const MSP: &str = "msp";

/// A table row: its label and the metric it shows.
type Row = (&'static str, fn(&DetectionMetrics) -> f64);

const ROWS: [Row; 6] = [
    ("FPR at 95% TPR (lower is better)", |m| m.fpr_at_95_tpr),
    ("  OOD-positive variant (OpenOOD)", |m| m.fpr_at_95_tpr_ood_positive),
    ("Detection error (lower is better)", |m| m.detection_error),
    ("AUROC (higher is better)", |m| m.auroc),
    ("AUPR-In (higher is better)", |m| m.aupr_in),
    ("AUPR-Out (higher is better)", |m| m.aupr_out),
];

/// The whole table: a header line, then one block per OOD set. Values are percentages.
pub fn metrics_table(model_name: &str, settings: &ScoreSettings, evaluation: &Evaluation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Model: {model_name}    ID images: {}", evaluation.id_count);
    if let Some(acc) = evaluation.id_accuracy {
        let _ = writeln!(out, "ID classification accuracy: {:.2}%", 100.0 * acc);
    }
    for ood in &evaluation.ood {
        out.push('\n');
        out.push_str(&ood_block(settings, ood));
    }
    out
}

fn ood_block(settings: &ScoreSettings, ood: &OodEvaluation) -> String {
    let method_title = settings.describe();
    let show_baseline = settings.method.name() != MSP && ood.baseline.is_some();
    let mut columns: Vec<(String, &Result<DetectionMetrics, String>)> = Vec::new();
    if let (true, Some(b)) = (show_baseline, &ood.baseline) {
        columns.push((crate::score::Method::named(MSP).title().to_string(), b));
    }
    columns.push((method_title, &ood.method));
    let width = columns
        .iter()
        .map(|(t, _)| t.chars().count())
        .max()
        .unwrap_or(0)
        .max(10)
        + 2;
    let mut out = String::new();
    let _ = write!(out, "OOD set: {} ({} images)\n{:<36}", ood.name, ood.count, "");
    for (title, _) in &columns {
        let _ = write!(out, "{title:>width$}");
    }
    out.push('\n');
    if let Some((_, Err(e))) = columns.iter().find(|(_, m)| m.is_err()) {
        let _ = writeln!(out, "  metrics unavailable: {e}");
        return out;
    }
    for (label, value) in ROWS {
        let _ = write!(out, "{label:<36}");
        for (_, m) in &columns {
            if let Ok(m) = m {
                let _ = write!(out, "{:>width$}", format!("{:.1}%", 100.0 * value(m)));
            }
        }
        out.push('\n');
    }
    out
}
