//! The outputs of `compare`: the leaderboard as a markdown table (printed and `--table`), as CSV
//! rows (`--csv`), as the report JSON (`--report`), and every method's ROC curve on one PNG (`--roc`).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::json::{MetricsEntry, SetCounts, SkippedEntry, set_counts, skipped_entries};
use super::roc::{RocCurve, roc_png};
use crate::compare::{CompareResult, Leaderboard, MeanMetrics, MethodRow, Unsupported};
use crate::detect::{Params, ScoreSettings};
use oodscope_data::Role;
use oodscope_metrics::{Curves, curves};

/// What the outputs say about the run beyond its scores.
pub struct CompareContext<'a> {
    pub model_path: String,
    pub model_name: &'a str,
    pub device: String,
    pub batch_size: usize,
    pub fit: Option<serde_json::Value>,
    pub unsupported: &'a [Unsupported],
}

/// A metric column: its header and its value in a mean.
type Column = (&'static str, fn(&MeanMetrics) -> f64);

const COLUMNS: [Column; 6] = [
    ("AUROC ↑", |m| m.auroc),
    ("FPR95 ↓", |m| m.fpr_at_95_tpr),
    ("FPR95 OOD+ ↓", |m| m.fpr_at_95_tpr_ood_positive),
    ("Det. error ↓", |m| m.detection_error),
    ("AUPR-In ↑", |m| m.aupr_in),
    ("AUPR-Out ↑", |m| m.aupr_out),
];

/// An extra column of the ranking: its header and its value in a row.
type ExtraColumn = (String, Box<dyn Fn(&MethodRow) -> Option<f64>>);

/// Which images the metrics come from.
pub fn scope_line(result: &CompareResult) -> String {
    match &result.tuning {
        None => "Metrics on all images, each method at the parameters given (or its defaults).".into(),
        Some(t) => format!(
            "Metrics on the TEST split. Each method's parameters were chosen on the VALIDATION split ({}, objective {}), which these metrics do not include.",
            t.spec.validation.describe(),
            t.spec.objective.title()
        ),
    }
}

/// The leaderboard as markdown: the ranking by mean AUROC (with each group's, or each set's, AUROC),
/// the methods that could not run, then one table per group and per OOD set.
pub fn leaderboard_markdown(
    model_name: &str,
    board: &Leaderboard,
    result: &CompareResult,
    unsupported: &[Unsupported],
) -> String {
    let mut out = String::new();
    let _ = write!(out, "## {model_name}: {} methods compared\n\n", board.rows.len());
    let _ = write!(out, "ID images: {}", board.id_count);
    if let Some(acc) = board.id_accuracy {
        let _ = write!(out, " (classification accuracy {:.2}%)", 100.0 * acc);
    }
    let set_list: Vec<String> = board
        .sets
        .iter()
        .map(|s| match &s.group {
            Some(g) => format!("{} [{g}, {}]", s.name, s.count),
            None => format!("{} [{}]", s.name, s.count),
        })
        .collect();
    let _ = write!(out, ". OOD sets: {}.\n{}\n", set_list.join(", "), scope_line(result));
    out.push_str("Ranked by AUROC, the mean over every OOD set (groups: the mean of their sets' metrics, as OpenOOD). Values in %.\n\n");

    // Extra AUROC columns: per group when there are groups, else per set (when more than one).
    let extra: Vec<ExtraColumn> = if board.groups.is_empty() {
        if board.sets.len() > 1 {
            (0..board.sets.len())
                .map(|i| {
                    let value = move |r: &MethodRow| r.per_set[i].as_ref().ok().map(|m| m.auroc);
                    (format!("{} AUROC", board.sets[i].name), Box::new(value) as Box<_>)
                })
                .collect()
        } else {
            Vec::new()
        }
    } else {
        (0..board.groups.len())
            .map(|g| {
                let value = move |r: &MethodRow| r.per_group[g].map(|m| m.auroc);
                (format!("{} AUROC", board.groups[g].name), Box::new(value) as Box<_>)
            })
            .collect()
    };
    out.push_str("| # | Method | Parameters |");
    for (title, _) in COLUMNS {
        let _ = write!(out, " {title} |");
    }
    for (title, _) in &extra {
        let _ = write!(out, " {title} |");
    }
    out.push_str("\n|---:|---|---|");
    out.push_str(&"---:|".repeat(COLUMNS.len() + extra.len()));
    out.push('\n');
    for (rank, row) in board.rows.iter().enumerate() {
        let _ = write!(
            out,
            "| {} | {} | {} |",
            rank + 1,
            method_label(row),
            if row.external.is_some() {
                "–".to_string()
            } else {
                params_text(&row.settings)
            }
        );
        for (_, value) in COLUMNS {
            let _ = write!(out, " {} |", percent(row.mean.as_ref().map(value)));
        }
        for (_, value) in &extra {
            let _ = write!(out, " {} |", percent(value(row)));
        }
        out.push('\n');
    }
    if !unsupported.is_empty() {
        out.push_str("\nNot run on this model:\n");
        for u in unsupported {
            let _ = writeln!(out, "- {}: {}", u.method.name(), u.missing.short());
        }
    }
    for group in &board.groups {
        let names: Vec<&str> = group.members.iter().map(|&i| board.sets[i].name.as_str()).collect();
        let _ = write!(out, "\n### Group {}: mean over {}\n\n", group.name, names.join(", "));
        let g = board.groups.iter().position(|x| x.name == group.name).unwrap_or(0);
        detail_table(&mut out, board, |r| {
            r.per_group[g].ok_or_else(|| "a set has no metrics".to_string())
        });
    }
    for (i, set) in board.sets.iter().enumerate() {
        let group = set.group.as_ref().map(|g| format!(", group {g}")).unwrap_or_default();
        let _ = write!(out, "\n### OOD set {} ({} images{group})\n\n", set.name, set.count);
        detail_table(&mut out, board, |r| {
            r.per_set[i].as_ref().map(MeanMetrics::one).map_err(Clone::clone)
        });
    }
    out
}

fn detail_table(out: &mut String, board: &Leaderboard, metrics: impl Fn(&MethodRow) -> Result<MeanMetrics, String>) {
    out.push_str("| Method |");
    for (title, _) in COLUMNS {
        let _ = write!(out, " {title} |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(COLUMNS.len()));
    out.push('\n');
    for row in &board.rows {
        let _ = write!(out, "| {} |", method_label(row));
        match metrics(row) {
            Ok(m) => {
                for (_, value) in COLUMNS {
                    let _ = write!(out, " {} |", percent(Some(value(&m))));
                }
            }
            Err(e) => {
                let _ = write!(out, " metrics unavailable: {e} |{}", " |".repeat(COLUMNS.len() - 1));
            }
        }
        out.push('\n');
    }
}

/// The method's title, in bold for the baseline.
fn method_label(row: &MethodRow) -> String {
    let title = row.title();
    if row.is_baseline { format!("**{title}**") } else { title }
}

/// `T = 1000, ε = 0.0014`, or `–` for none.
fn params_text(settings: &ScoreSettings) -> String {
    let text = settings.describe_params();
    if text.is_empty() { "–".into() } else { text }
}

/// `epsilon=0.0014;temperature=1000` (names, not symbols, for machines).
fn params_plain(params: &Params) -> String {
    let text: Vec<String> = params.iter().map(|(name, value)| format!("{name}={value}")).collect();
    text.join(";")
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{:.2}", 100.0 * v))
}

/// The leaderboard as CSV: one row per method and scope (each OOD set, each group, the mean), the
/// metrics as fractions.
pub fn leaderboard_csv(board: &Leaderboard) -> Result<Vec<u8>, String> {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    let header = [
        "rank",
        "method",
        "params",
        "baseline",
        "scope",
        "name",
        "images",
        "fpr_at_95_tpr",
        "fpr_at_95_tpr_ood_positive",
        "detection_error",
        "auroc",
        "aupr_in",
        "aupr_out",
        "error",
    ];
    writer.write_record(header).map_err(|e| e.to_string())?;
    for (rank, row) in board.rows.iter().enumerate() {
        let mut lines: Vec<(&str, String, String, Result<MeanMetrics, String>)> = Vec::new();
        for (set, m) in board.sets.iter().zip(&row.per_set) {
            lines.push((
                "set",
                set.name.clone(),
                set.count.to_string(),
                m.as_ref().map(MeanMetrics::one).map_err(Clone::clone),
            ));
        }
        for (group, m) in board.groups.iter().zip(&row.per_group) {
            let images: usize = group.members.iter().map(|&i| board.sets[i].count).sum();
            lines.push((
                "group",
                group.name.clone(),
                images.to_string(),
                m.ok_or_else(|| "a set has no metrics".into()),
            ));
        }
        let images: usize = board.sets.iter().map(|s| s.count).sum();
        lines.push((
            "mean",
            "all".into(),
            images.to_string(),
            row.mean.ok_or_else(|| "a set has no metrics".into()),
        ));
        for (scope, name, images, metrics) in lines {
            let mut record = vec![
                (rank + 1).to_string(),
                row.name(),
                params_plain(&row.settings.params),
                row.is_baseline.to_string(),
                scope.to_string(),
                name,
                images,
            ];
            match metrics {
                Ok(m) => {
                    record.extend(
                        [
                            m.fpr_at_95_tpr,
                            m.fpr_at_95_tpr_ood_positive,
                            m.detection_error,
                            m.auroc,
                            m.aupr_in,
                            m.aupr_out,
                        ]
                        .iter()
                        .map(ToString::to_string),
                    );
                    record.push(String::new());
                }
                Err(e) => {
                    record.extend(std::iter::repeat_n(String::new(), 6));
                    record.push(e);
                }
            }
            writer.write_record(&record).map_err(|e| e.to_string())?;
        }
    }
    writer.into_inner().map_err(|e| e.to_string())
}

#[derive(Debug, Serialize)]
pub struct CompareReport {
    pub oodscope_version: &'static str,
    /// Which side of a threshold is in-distribution, in words.
    pub rule: &'static str,
    pub settings: CompareSettings,
    pub sets: Vec<SetEntry>,
    pub skipped: Vec<SkippedEntry>,
    pub id_accuracy: Option<f64>,
    /// Method names, best first.
    pub ranking: Vec<String>,
    pub methods: BTreeMap<String, MethodEntry>,
    /// Methods requested that the model (or the missing fit) cannot run, with the reason.
    pub unsupported: BTreeMap<String, String>,
    /// Group name → its OOD sets.
    pub groups: BTreeMap<String, Vec<String>>,
    pub elapsed_s: f64,
}

#[derive(Debug, Serialize)]
pub struct CompareSettings {
    pub model: String,
    pub model_name: String,
    pub device: String,
    pub batch_size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fit: Option<serde_json::Value>,
    /// `all images`, or `test split` when tuned.
    pub metrics_from: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuning: Option<TuningSettings>,
}

#[derive(Debug, Serialize)]
pub struct TuningSettings {
    pub objective: String,
    pub validation: String,
    /// Validation images decoded per set name.
    pub validation_images: BTreeMap<String, usize>,
    pub search_elapsed_s: f64,
}

#[derive(Debug, Serialize)]
pub struct SetEntry {
    #[serde(flatten)]
    pub counts: SetCounts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MethodEntry {
    pub title: String,
    pub rank: usize,
    pub baseline: bool,
    /// A score column of the results file's own, not an oodscope method ("NAME (external)").
    pub external: bool,
    pub params: Params,
    /// Keyed by OOD set name.
    pub metrics: BTreeMap<String, MetricsEntry>,
    /// Keyed by group name: the mean of its sets' metrics.
    pub group_metrics: BTreeMap<String, Option<MeanMetrics>>,
    /// The mean over every OOD set.
    pub mean_metrics: Option<MeanMetrics>,
    /// When tuned: the search on the validation split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationEntry>,
}

#[derive(Debug, Serialize)]
pub struct ValidationEntry {
    pub settings_searched: usize,
    /// The chosen setting's objective on the validation split (mean over OOD sets).
    pub objective: Option<f64>,
    /// The chosen setting's validation metrics, keyed by OOD set name.
    pub metrics: BTreeMap<String, MetricsEntry>,
}

/// The report JSON of a comparison.
pub fn compare_report(
    ctx: &CompareContext,
    board: &Leaderboard,
    result: &CompareResult,
    groups: &[Option<String>],
) -> CompareReport {
    let run = &result.run;
    let sets = &result.sets;
    let searches = result.tuning.as_ref().map(|t| &t.searches);
    let methods = board
        .rows
        .iter()
        .enumerate()
        .map(|(rank, row)| {
            let validation = searches.and_then(|s| s.get(row.column)?.as_ref()).and_then(|search| {
                let best = search.best_result()?;
                Some(ValidationEntry {
                    settings_searched: search.grid.len(),
                    objective: best.objective,
                    metrics: best
                        .per_set
                        .iter()
                        .map(|m| (sets[m.set].name.clone(), MetricsEntry::from(&m.metrics)))
                        .collect(),
                })
            });
            let entry = MethodEntry {
                title: row.title(),
                rank: rank + 1,
                baseline: row.is_baseline,
                external: row.external.is_some(),
                params: row.settings.params.clone(),
                metrics: board
                    .sets
                    .iter()
                    .zip(&row.per_set)
                    .map(|(s, m)| (s.name.clone(), MetricsEntry::from(m)))
                    .collect(),
                group_metrics: board
                    .groups
                    .iter()
                    .zip(&row.per_group)
                    .map(|(g, m)| (g.name.clone(), *m))
                    .collect(),
                mean_metrics: row.mean,
                validation,
            };
            (row.name(), entry)
        })
        .collect();
    let tuning = result.tuning.as_ref().map(|t| TuningSettings {
        objective: t.spec.objective.name().to_string(),
        validation: t.spec.validation.describe(),
        validation_images: sets
            .iter()
            .zip(&t.validation_scored)
            .map(|(s, n)| (s.name.clone(), *n))
            .collect(),
        search_elapsed_s: t.search_elapsed.as_secs_f64(),
    });
    CompareReport {
        oodscope_version: env!("CARGO_PKG_VERSION"),
        rule: super::json::REPORT_RULE,
        settings: CompareSettings {
            model: ctx.model_path.clone(),
            model_name: ctx.model_name.to_string(),
            device: ctx.device.clone(),
            batch_size: ctx.batch_size,
            fit: ctx.fit.clone(),
            metrics_from: if result.tuning.is_some() {
                "test split"
            } else {
                "all images"
            },
            tuning,
        },
        sets: set_counts(run, sets)
            .into_iter()
            .zip(groups.iter().cloned().chain(std::iter::repeat(None)))
            .map(|(counts, group)| SetEntry { counts, group })
            .collect(),
        skipped: skipped_entries(run, sets),
        id_accuracy: board.id_accuracy,
        ranking: board.rows.iter().map(MethodRow::name).collect(),
        methods,
        unsupported: ctx
            .unsupported
            .iter()
            .map(|u| {
                (
                    u.method.name().to_string(),
                    u.missing.message(u.method.name(), ctx.model_name),
                )
            })
            .collect(),
        groups: board
            .groups
            .iter()
            .map(|g| {
                (
                    g.name.clone(),
                    g.members.iter().map(|&i| board.sets[i].name.clone()).collect(),
                )
            })
            .collect(),
        elapsed_s: run.elapsed.as_secs_f64(),
    }
}

/// Every method's ROC curve of the pooled ID images against the pooled OOD images, on one chart.
pub fn method_curves(board: &Leaderboard, result: &CompareResult) -> Vec<(String, Result<Curves, String>)> {
    let (run, sets) = (&result.run, &result.sets);
    board
        .rows
        .iter()
        .map(|row| {
            let id = run.column_role_scores(row.column, sets, Role::Id);
            let ood = run.column_role_scores(row.column, sets, Role::Ood);
            let c = curves(&id, &ood).map_err(|e| e.to_string());
            (row.title(), c)
        })
        .collect()
}

/// The ROC chart of [`method_curves`], AUROC of the pooled sets in the legend.
pub fn roc_overlay_png(model_name: &str, board: &Leaderboard, result: &CompareResult) -> Result<Vec<u8>, String> {
    let curves = method_curves(board, result);
    let drawn: Vec<RocCurve> = curves
        .iter()
        .filter_map(|(name, c)| {
            let c = c.as_ref().ok()?;
            Some(RocCurve {
                name: name.clone(),
                auroc: trapezoid_auc(&c.roc),
                points: &c.roc,
                operating_point: None,
            })
        })
        .collect();
    roc_png(
        &format!("{model_name}: every method, ID vs all OOD sets pooled"),
        &drawn,
        1200,
        900,
    )
}

/// The area under a ROC polyline from (0, 0) to (1, 1) (exact for the step-and-diagonal curve of
/// tied scores, which the AUROC's ½·P(id = ood) term matches).
fn trapezoid_auc(points: &[(f64, f64)]) -> f64 {
    points
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
        .sum()
}
