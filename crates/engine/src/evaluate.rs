//! Metrics of a scoring run: each OOD set against the pooled ID sets, for the method and the MSP baseline.

use crate::score::ScoreRun;
use crate::score::run::sets_with_role;
use oodscope_data::{ImageSet, Role};
use oodscope_metrics::{DetectionMetrics, detection_metrics};

/// The metrics of one OOD set, or why they could not be computed.
#[derive(Debug, Clone, PartialEq)]
pub struct OodEvaluation {
    pub set: usize,
    pub name: String,
    pub count: usize,
    pub method: Result<DetectionMetrics, String>,
    /// The MSP baseline on the same images (single models only).
    pub baseline: Option<Result<DetectionMetrics, String>>,
}

/// Everything the table and the report show about a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub id_count: usize,
    pub id_accuracy: Option<f64>,
    pub ood: Vec<OodEvaluation>,
}

/// Evaluates every OOD set of a run against all its ID sets together, for the run's first method.
pub fn evaluate(run: &ScoreRun, sets: &[ImageSet]) -> Evaluation {
    evaluate_column(run, sets, 0)
}

/// [`evaluate`] for the run's method `column` (its index in `run.methods`).
pub fn evaluate_column(run: &ScoreRun, sets: &[ImageSet], column: usize) -> Evaluation {
    let id_sets = sets_with_role(sets, Role::Id);
    let pooled = |f: &dyn Fn(usize) -> Option<Vec<f32>>| -> Option<Vec<f32>> {
        id_sets
            .iter()
            .map(|&s| f(s))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.concat())
    };
    let id_scores = pooled(&|s| Some(run.column_set_scores(column, s))).unwrap_or_default();
    let id_baseline = pooled(&|s| run.set_baseline(s));
    let ood = sets_with_role(sets, Role::Ood)
        .into_iter()
        .map(|s| {
            let scores = run.column_set_scores(column, s);
            OodEvaluation {
                set: s,
                name: sets[s].name.clone(),
                count: scores.len(),
                method: detection_metrics(&id_scores, &scores).map_err(|e| e.to_string()),
                baseline: match (&id_baseline, run.set_baseline(s)) {
                    (Some(id), Some(ood)) => Some(detection_metrics(id, &ood).map_err(|e| e.to_string())),
                    _ => None,
                },
            }
        })
        .collect();
    Evaluation {
        id_count: id_scores.len(),
        id_accuracy: run.accuracy(&id_sets),
        ood,
    }
}
