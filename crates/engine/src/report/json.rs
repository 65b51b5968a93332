//! The report JSON: settings, counts per set, skipped files, ID accuracy and metrics per OOD set.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::evaluate::Evaluation;
use crate::score::{ScoreRun, ScoreSettings};
use oodscope_data::{ImageSet, SetSource, path_to_text};
use oodscope_metrics::DetectionMetrics;

#[derive(Debug, Serialize)]
pub struct Report {
    pub oodscope_version: &'static str,
    /// Which side of a threshold is in-distribution, in words (every score here is oriented so).
    pub rule: &'static str,
    pub settings: ReportSettings,
    pub sets: Vec<SetCounts>,
    pub skipped: Vec<SkippedEntry>,
    pub id_accuracy: Option<f64>,
    /// Keyed by OOD set name: the method's metrics, or `{ "error": … }`.
    pub metrics: BTreeMap<String, MetricsEntry>,
    /// The MSP baseline on the same images, for comparison (absent for ensembles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_metrics: Option<BTreeMap<String, MetricsEntry>>,
    pub elapsed_s: f64,
    pub images_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct ReportSettings {
    pub model: String,
    pub model_name: String,
    pub method: String,
    /// The method's parameters by name (`k`, `percentile`, `temperature`…).
    pub params: crate::detect::Params,
    /// T and ε again at the top level for the methods that have them (as reports always had).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    /// Where the fit statistics came from, for methods that use one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fit: Option<serde_json::Value>,
    pub device: String,
    pub batch_size: usize,
}

#[derive(Debug, Serialize)]
pub struct SetCounts {
    pub name: String,
    pub role: &'static str,
    pub source: String,
    pub files: usize,
    pub scored: usize,
    pub skipped: usize,
    pub labelled: bool,
}

#[derive(Debug, Serialize)]
pub struct SkippedEntry {
    pub set: String,
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum MetricsEntry {
    Metrics {
        fpr_at_95_tpr: f64,
        fpr_at_95_tpr_ood_positive: f64,
        detection_error: f64,
        auroc: f64,
        aupr_in: f64,
        aupr_out: f64,
        threshold_at_95_tpr: f32,
    },
    Error {
        error: String,
    },
}

impl From<&Result<DetectionMetrics, String>> for MetricsEntry {
    fn from(m: &Result<DetectionMetrics, String>) -> Self {
        match m {
            Ok(m) => MetricsEntry::Metrics {
                fpr_at_95_tpr: m.fpr_at_95_tpr,
                fpr_at_95_tpr_ood_positive: m.fpr_at_95_tpr_ood_positive,
                detection_error: m.detection_error,
                auroc: m.auroc,
                aupr_in: m.aupr_in,
                aupr_out: m.aupr_out,
                threshold_at_95_tpr: m.threshold_at_95_tpr,
            },
            Err(e) => MetricsEntry::Error { error: e.clone() },
        }
    }
}

/// The orientation of every score and the rule of `threshold_at_95_tpr`, as reports state it.
pub const REPORT_RULE: &str = "higher scores are more in-distribution; threshold_at_95_tpr: score > threshold is called in-distribution (id), which keeps at least 95% of the ID images";

/// What a report says about the model and run (not derivable from the scores).
pub struct RunContext<'a> {
    pub model_path: String,
    pub model_name: &'a str,
    pub settings: &'a ScoreSettings,
    pub device: String,
    pub batch_size: usize,
    /// The fit's provenance (file, cache use, counts), when the method used one.
    pub fit: Option<serde_json::Value>,
}

/// Builds the report of a run.
pub fn build_report(ctx: &RunContext, sets: &[ImageSet], run: &ScoreRun, evaluation: &Evaluation) -> Report {
    let skipped = skipped_entries(run, sets);
    let set_counts = set_counts(run, sets);
    let metrics = evaluation
        .ood
        .iter()
        .map(|o| (o.name.clone(), MetricsEntry::from(&o.method)))
        .collect();
    let baseline_metrics = evaluation
        .ood
        .iter()
        .map(|o| o.baseline.as_ref().map(|b| (o.name.clone(), MetricsEntry::from(b))))
        .collect::<Option<BTreeMap<_, _>>>()
        .filter(|_| ctx.settings.method.name() != super::table::MSP);
    let elapsed = run.elapsed.as_secs_f64();
    Report {
        oodscope_version: env!("CARGO_PKG_VERSION"),
        rule: REPORT_RULE,
        settings: ReportSettings {
            model: ctx.model_path.clone(),
            model_name: ctx.model_name.to_string(),
            method: ctx.settings.method.name().to_string(),
            params: ctx.settings.params.clone(),
            temperature: ctx.settings.params.value("temperature"),
            epsilon: ctx.settings.params.value("epsilon"),
            fit: ctx.fit.clone(),
            device: ctx.device.clone(),
            batch_size: ctx.batch_size,
        },
        sets: set_counts,
        skipped,
        id_accuracy: evaluation.id_accuracy,
        metrics,
        baseline_metrics,
        elapsed_s: elapsed,
        images_per_s: if elapsed > 0.0 {
            (run.images.len() + run.skipped.len()) as f64 / elapsed
        } else {
            0.0
        },
    }
}

/// Every file left out of a run: skipped while scoring, or unreadable while scanning.
pub fn skipped_entries(run: &ScoreRun, sets: &[ImageSet]) -> Vec<SkippedEntry> {
    let mut skipped: Vec<SkippedEntry> = run
        .skipped
        .iter()
        .map(|s| SkippedEntry {
            set: sets[s.set].name.clone(),
            path: s.path.clone(),
            reason: s.reason.clone(),
        })
        .collect();
    for set in sets {
        skipped.extend(set.unreadable.iter().map(|(p, r)| SkippedEntry {
            set: set.name.clone(),
            path: path_to_text(p),
            reason: r.clone(),
        }));
    }
    skipped
}

/// Each set's source and counts in a run.
pub fn set_counts(run: &ScoreRun, sets: &[ImageSet]) -> Vec<SetCounts> {
    sets.iter()
        .enumerate()
        .map(|(i, set)| SetCounts {
            name: set.name.clone(),
            role: set.role.name(),
            source: match &set.source {
                SetSource::Folder { root, .. } => path_to_text(root),
                SetSource::Noise { kind, count, .. } => format!("{kind}:{count}"),
            },
            files: set.len(),
            scored: run.images.iter().filter(|s| s.set == i).count(),
            skipped: run.skipped.iter().filter(|s| s.set == i).count(),
            labelled: set.labelled,
        })
        .collect()
}
