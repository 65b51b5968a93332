//! A results file's own score columns in the window's single-method views: a file written by hand
//! with pyarrow holding only `set`, `role` and two score columns opens on the first, marked
//! "(external)", with scikit-learn's AUROC and average precision; the other is chosen like a
//! method; beside logits, MSP (computed from them) and an external column take turns; a file of
//! logits alone shows MSP; the histogram PNG says "external" and a report (which describes a
//! method's run) is refused in one line.

use std::path::Path;

use oodscope_gui::app::shown::ShownResult;
use oodscope_gui::app::{Command, ExportKind, OodscopeApp};
use oodscope_gui::testing::{opened, results_harness, step_until};

use crate::support::python_last_line;

/// Writes `argv[1]`: sets `id` (300 rows), `near` and `far` (200 each) with seeded columns
/// `mine` and `theirs` (`argv[2]` "none"), with `logits` [N, 5] too ("logits"), or logits alone
/// ("logits only"); prints scikit-learn's AUROC and average precision (ID positive) of `mine`,
/// `theirs` and the logits' MSP on each OOD set.
const WRITE: &str = r#"
import sys, json
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
from sklearn.metrics import roc_auc_score, average_precision_score
rng = np.random.default_rng(5)
sizes = {"id": 300, "near": 200, "far": 200}
shift = {"id": 0.0, "near": -0.7, "far": -1.6}
sets, roles, mine, theirs = [], [], [], []
for name, n in sizes.items():
    sets += [name] * n
    roles += ["id" if name == "id" else "ood"] * n
    mine += list((rng.standard_normal(n) + shift[name]).astype(np.float32))
    theirs += list((rng.standard_normal(n) * 2 + shift[name] / 2).astype(np.float32))
columns = {"set": sets, "role": roles, "mine": pa.array(mine, pa.float32()), "theirs": pa.array(theirs, pa.float32())}
logits = rng.standard_normal((len(sets), 5)).astype(np.float32)
if sys.argv[2] != "none":
    columns["logits"] = logits.tolist()
if sys.argv[2] == "logits only":
    del columns["mine"], columns["theirs"]
pq.write_table(pa.table(columns), sys.argv[1])
z = logits.astype(np.float64)
msp = (np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)).max(1)
out = {}
for column, values in (("mine", mine), ("theirs", theirs), ("msp", msp)):
    values = np.asarray(values, dtype=np.float64)
    sets_a = np.asarray(sets)
    for ood in ("near", "far"):
        keep = (sets_a == "id") | (sets_a == ood)
        y = (sets_a[keep] == "id").astype(int)
        out[f"{column}/{ood}"] = [roc_auc_score(y, values[keep]), average_precision_score(y, values[keep])]
print(json.dumps(out))
"#;

/// Writes the file and returns scikit-learn's figures by `column/set`.
fn write(path: &Path, columns: &str) -> serde_json::Value {
    let line = python_last_line(WRITE, &[path.display().to_string(), columns.to_string()]);
    serde_json::from_str(&line).unwrap()
}

/// The window's AUROC and AUPR-In of `column` match scikit-learn's on both OOD sets.
fn assert_metrics_of(app: &OodscopeApp, column: &str, expected: &serde_json::Value) {
    let derived = app.derived.as_ref().expect("metrics are derived");
    assert_eq!(derived.ood.len(), 2);
    for view in &derived.ood {
        let metrics = view.metrics.as_ref().expect("metrics");
        let want = &expected[format!("{column}/{}", view.name)];
        let (auroc, aupr) = (want[0].as_f64().unwrap(), want[1].as_f64().unwrap());
        assert!(
            (metrics.auroc - auroc).abs() < 1e-9,
            "{column} on {}: AUROC {} vs scikit-learn {auroc}",
            view.name,
            metrics.auroc
        );
        assert!(
            (metrics.aupr_in - aupr).abs() < 1e-9,
            "{column} on {}: AUPR-In {} vs scikit-learn {aupr}",
            view.name,
            metrics.aupr_in
        );
    }
}

fn title(app: &OodscopeApp) -> String {
    app.result.as_ref().map(ShownResult::title).unwrap_or_default()
}

#[test]
fn a_file_of_only_its_own_score_columns_shows_each_with_scikit_learns_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("own.parquet");
    let expected = write(&parquet, "none");
    let mut h = results_harness(Some(&parquet), dir.path());
    step_until(&mut h, "the file shown", opened);
    assert_eq!(title(h.state()), "mine (external)");
    assert_metrics_of(h.state(), "mine", &expected);

    h.state_mut().push(Command::ShowExternal("theirs".into()));
    step_until(&mut h, "theirs shown", |a| title(a) == "theirs (external)");
    assert_metrics_of(h.state(), "theirs", &expected);
    assert!(h.state().threshold.is_some(), "δ is drawn on the external column");

    // The histogram PNG says what it shows; a report describes a method's run and is refused.
    let png = dir.path().join("hist.png");
    h.state_mut().push(Command::Export {
        kind: ExportKind::HistogramPng,
        path: Some(png.clone()),
    });
    let report = dir.path().join("report.json");
    h.state_mut().push(Command::Export {
        kind: ExportKind::ReportJson,
        path: Some(report.clone()),
    });
    h.step();
    let bytes = std::fs::read(&png).expect("the histogram PNG is written");
    let image = image::load_from_memory(&bytes).expect("a real PNG");
    assert!(image.width() > 100);
    assert!(!report.exists(), "no report of an external column");
    let last = h.state().messages.last().map(|m| m.text.clone()).unwrap_or_default();
    assert_eq!(
        last,
        "export failed: theirs is the results file's own column, not a method: show a method to export its report"
    );
}

#[test]
fn beside_logits_a_method_and_an_external_column_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("own.parquet");
    let expected = write(&parquet, "logits");
    let mut h = results_harness(Some(&parquet), dir.path());
    step_until(&mut h, "the file shown", opened);
    // The method on the sliders (ODIN with its step) needs the model: MSP from the logits first.
    let method = h.state().settings.method;
    assert_eq!(method.name(), "msp");
    let first = title(h.state());
    assert!(first.contains("MSP"), "{first}");
    assert!(h.state().result.as_ref().unwrap().external.is_none());
    assert_metrics_of(h.state(), "msp", &expected);

    h.state_mut().push(Command::ShowExternal("mine".into()));
    step_until(&mut h, "mine shown", |a| title(a) == "mine (external)");
    assert_metrics_of(h.state(), "mine", &expected);

    // Choosing the method again (the same one) shows its scores again.
    h.state_mut().push(Command::SetMethod(method));
    step_until(&mut h, "the method shown again", |a| {
        a.result.as_ref().is_some_and(|r| r.external.is_none()) && a.derived.is_some()
    });
    assert_metrics_of(h.state(), "msp", &expected);
    assert_eq!(title(h.state()), first);
}

#[test]
fn a_file_of_logits_alone_shows_msp_computed_from_them() {
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("logits.parquet");
    let expected = write(&parquet, "logits only");
    let mut h = results_harness(Some(&parquet), dir.path());
    step_until(&mut h, "the file shown", |a| {
        opened(a) && a.result.as_ref().is_some_and(|r| !r.placeholder)
    });
    assert!(title(h.state()).contains("MSP"), "{}", title(h.state()));
    assert_metrics_of(h.state(), "msp", &expected);
}
