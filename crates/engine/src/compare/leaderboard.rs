//! The leaderboard of a comparison: every method's metrics per OOD set, per group (the mean over
//! its sets, as OpenOOD averages near-OOD and far-OOD) and over all OOD sets, ranked by mean AUROC.

use crate::detect::{Method, Params, ScoreSettings};
use crate::evaluate::evaluate_column;
use crate::score::ScoreRun;
use crate::score::run::sets_with_role;
use oodscope_data::{ImageSet, Role};
use oodscope_metrics::DetectionMetrics;

use super::selection::BASELINE;

/// The metrics that average over sets (the 95%-TPR threshold is per set, so it has no mean).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MeanMetrics {
    pub fpr_at_95_tpr: f64,
    pub fpr_at_95_tpr_ood_positive: f64,
    pub detection_error: f64,
    pub auroc: f64,
    pub aupr_in: f64,
    pub aupr_out: f64,
}

impl MeanMetrics {
    /// The plain mean of each metric over `all` (in order); `None` for none.
    pub fn of<'a>(all: impl IntoIterator<Item = &'a DetectionMetrics>) -> Option<MeanMetrics> {
        let all: Vec<&DetectionMetrics> = all.into_iter().collect();
        if all.is_empty() {
            return None;
        }
        let mean = |f: fn(&DetectionMetrics) -> f64| all.iter().map(|m| f(m)).sum::<f64>() / all.len() as f64;
        Some(MeanMetrics {
            fpr_at_95_tpr: mean(|m| m.fpr_at_95_tpr),
            fpr_at_95_tpr_ood_positive: mean(|m| m.fpr_at_95_tpr_ood_positive),
            detection_error: mean(|m| m.detection_error),
            auroc: mean(|m| m.auroc),
            aupr_in: mean(|m| m.aupr_in),
            aupr_out: mean(|m| m.aupr_out),
        })
    }

    /// The metrics of one set, as a "mean" of one.
    pub fn one(m: &DetectionMetrics) -> MeanMetrics {
        MeanMetrics {
            fpr_at_95_tpr: m.fpr_at_95_tpr,
            fpr_at_95_tpr_ood_positive: m.fpr_at_95_tpr_ood_positive,
            detection_error: m.detection_error,
            auroc: m.auroc,
            aupr_in: m.aupr_in,
            aupr_out: m.aupr_out,
        }
    }
}

/// One OOD set of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct SetColumn {
    /// Index of the set in the run's set list.
    pub set: usize,
    pub name: String,
    pub group: Option<String>,
    /// Images scored.
    pub count: usize,
}

/// A group of OOD sets (`--ood near:DIR`), in order of first appearance.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupColumn {
    pub name: String,
    /// Indices into the leaderboard's `sets`.
    pub members: Vec<usize>,
}

/// One method's line.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodRow {
    /// The method and its parameters (for an external column, the baseline's: a stand-in that
    /// nothing reads, [`MethodRow::external`] names it).
    pub settings: ScoreSettings,
    /// The name of a score column no oodscope method made (a results file's own), if this is one.
    pub external: Option<String>,
    /// The method's column in the run.
    pub column: usize,
    /// Per entry of the leaderboard's `sets`.
    pub per_set: Vec<Result<DetectionMetrics, String>>,
    /// Per entry of the leaderboard's `groups`: the mean over its sets (`None` if one has no metrics).
    pub per_group: Vec<Option<MeanMetrics>>,
    /// The mean over every OOD set (`None` if one has no metrics).
    pub mean: Option<MeanMetrics>,
    pub is_baseline: bool,
}

/// Every method, best mean AUROC first.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaderboard {
    pub id_count: usize,
    pub id_accuracy: Option<f64>,
    pub sets: Vec<SetColumn>,
    pub groups: Vec<GroupColumn>,
    pub rows: Vec<MethodRow>,
}

impl Leaderboard {
    /// Ranks every method of `run` (one column each). `groups[s]` is set `s`'s group, if any.
    pub fn new(run: &ScoreRun, sets: &[ImageSet], groups: &[Option<String>]) -> Leaderboard {
        let ood = sets_with_role(sets, Role::Ood);
        let mut evaluations = (0..run.methods.len() + run.external.len()).map(|m| evaluate_column(run, sets, m));
        let first = evaluations.next();
        let columns: Vec<SetColumn> = ood
            .iter()
            .map(|&s| SetColumn {
                set: s,
                name: sets[s].name.clone(),
                group: groups.get(s).cloned().flatten(),
                count: first
                    .as_ref()
                    .and_then(|e| e.ood.iter().find(|o| o.set == s))
                    .map_or(0, |o| o.count),
            })
            .collect();
        let mut group_columns: Vec<GroupColumn> = Vec::new();
        for (i, column) in columns.iter().enumerate() {
            let Some(name) = &column.group else { continue };
            match group_columns.iter_mut().find(|g| &g.name == name) {
                Some(g) => g.members.push(i),
                None => group_columns.push(GroupColumn {
                    name: name.clone(),
                    members: vec![i],
                }),
            }
        }
        let (id_count, id_accuracy) = first.as_ref().map_or((0, None), |e| (e.id_count, e.id_accuracy));
        let mut rows: Vec<MethodRow> = first
            .into_iter()
            .chain(evaluations)
            .enumerate()
            .map(|(m, evaluation)| {
                let per_set: Vec<Result<DetectionMetrics, String>> = columns
                    .iter()
                    .map(|c| {
                        evaluation
                            .ood
                            .iter()
                            .find(|o| o.set == c.set)
                            .map_or_else(|| Err("not scored".into()), |o| o.method.clone())
                    })
                    .collect();
                let mean_over = |members: &mut dyn Iterator<Item = usize>| -> Option<MeanMetrics> {
                    let metrics = members.map(|i| per_set[i].as_ref().ok()).collect::<Option<Vec<_>>>()?;
                    MeanMetrics::of(metrics)
                };
                let per_group = group_columns
                    .iter()
                    .map(|g| mean_over(&mut g.members.iter().copied()))
                    .collect();
                let mean = mean_over(&mut (0..columns.len()));
                let external = m.checked_sub(run.methods.len()).map(|e| run.external[e].clone());
                let settings = run.methods.get(m).cloned().unwrap_or_else(|| ScoreSettings {
                    method: Method::named(BASELINE),
                    params: Params::new(),
                });
                MethodRow {
                    is_baseline: external.is_none() && settings.method.name() == BASELINE,
                    settings,
                    external,
                    column: m,
                    per_set,
                    per_group,
                    mean,
                }
            })
            .collect();
        // Stable: methods with equal means keep the run's (menu) order; those without one go last.
        rows.sort_by(|a, b| {
            let key = |r: &MethodRow| r.mean.map_or(f64::NEG_INFINITY, |m| m.auroc);
            key(b).total_cmp(&key(a))
        });
        Leaderboard {
            id_count,
            id_accuracy,
            sets: columns,
            groups: group_columns,
            rows,
        }
    }

    /// The row of the method named `name`.
    pub fn row(&self, name: &str) -> Option<&MethodRow> {
        self.rows
            .iter()
            .find(|r| r.external.is_none() && r.settings.method.name() == name)
    }

    /// The best row of an oodscope method (an external column cannot be saved or tuned).
    pub fn leading_method(&self) -> Option<&MethodRow> {
        self.rows.iter().find(|r| r.external.is_none())
    }
}

impl MethodRow {
    /// The method's name, or `NAME (external)` for an external column.
    pub fn name(&self) -> String {
        match &self.external {
            Some(name) => format!("{name} (external)"),
            None => self.settings.method.name().to_string(),
        }
    }

    /// The method's title, or `NAME (external)` for an external column.
    pub fn title(&self) -> String {
        match &self.external {
            Some(name) => format!("{name} (external)"),
            None => self.settings.method.title().to_string(),
        }
    }
}
