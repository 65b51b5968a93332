//! `score --from` and `compare --from`: a results file written by hand with pyarrow (its default
//! list and float64 types, only `set`, `role`, `logits`, `features` and a user's own score column)
//! scores as `compare` on the model that made the same outputs; the user's column is "external"
//! with scikit-learn's AUROC; the file read and written back by pandas and by polars scores the
//! same; bad files are one line each.

use crate::support;

use std::path::Path;

fn fx(rel: &str) -> String {
    support::fixtures().join(rel).to_str().unwrap().to_string()
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn oodscope(cache: &Path, args: &[&str]) -> (i32, String, String) {
    support::oodscope_with_cache(cache, args)
}

/// Runs a Python snippet with the venv's interpreter; returns its last line of stdout.
fn python(code: &str, args: &[String]) -> String {
    support::python_last_line(code, args)
}

/// Writes `argv[2]` with only set, role, logits, features (pyarrow's default types: lists of
/// float64) and `mine` (the first logit minus the second) from oodscope's results file `argv[1]`;
/// prints scikit-learn's AUROC of `mine`, ID positive.
const HAND_WRITE: &str = r#"
import sys
import pyarrow as pa, pyarrow.parquet as pq
from sklearn.metrics import roc_auc_score
t = pq.read_table(sys.argv[1])
logits = t.column("logits").to_pylist()
mine = [row[0] - row[1] for row in logits]
hand = pa.table({
    "set": t.column("set").to_pylist(),
    "role": t.column("role").to_pylist(),
    "logits": logits,
    "features": t.column("features").to_pylist(),
    "mine": mine,
})
assert str(hand.schema.field("logits").type) == "list<item: double>", hand.schema
pq.write_table(hand, sys.argv[2])
roles = t.column("role").to_pylist()
print(roc_auc_score([1 if r == "id" else 0 for r in roles], mine))
"#;

/// Reads `argv[1]` with pandas and writes `argv[2]`; with polars and writes `argv[3]`.
const ROUND_TRIP: &str = r#"
import sys
import pandas as pd, polars as pl
pd.read_parquet(sys.argv[1]).to_parquet(sys.argv[2])
pl.read_parquet(sys.argv[1]).write_parquet(sys.argv[3])
print("ok")
"#;

/// The leaderboard CSV's rows by method and scope, without the rank column.
fn rows(csv: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(csv).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            (cells[1].to_string(), cells[2..].join(","))
        })
        .collect()
}

#[test]
fn a_hand_written_file_compares_as_the_model_run_and_survives_pandas_and_polars() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    let (model, id, ood) = (
        fx("features/models/feat_conf.pt"),
        fx("features/images/id"),
        fx("features/images/ood"),
    );
    let fit = at("fit.safetensors");
    let (code, _, err) = oodscope(
        cache.path(),
        &[
            "fit",
            "--model",
            &model,
            "--train",
            &fx("features/fit"),
            "--out",
            &s(&fit),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = oodscope(
        cache.path(),
        &[
            "compare",
            "--model",
            &model,
            "--id",
            &id,
            "--ood",
            &ood,
            "--fit",
            &s(&fit),
            "--results",
            &s(&at("run.parquet")),
            "--save-logits",
            "--save-features",
            "--csv",
            &s(&at("model.csv")),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let auroc: f64 = python(HAND_WRITE, &[s(&at("run.parquet")), s(&at("hand.parquet"))])
        .parse()
        .unwrap();

    let from = |file: &str, csv: &str| {
        let (code, out, err) = oodscope(
            cache.path(),
            &[
                "compare",
                "--from",
                &s(&at(file)),
                "--fit",
                &s(&fit),
                "--csv",
                &s(&at(csv)),
            ],
        );
        assert_eq!(code, 0, "{err}");
        (out, err)
    };
    let (table, err) = from("hand.parquet", "hand.csv");
    assert!(table.contains("mine (external)"), "{table}");
    // The fit made by `oodscope fit` keeps no head: the methods that need one say so.
    assert!(err.contains("not run: vim: needs the head: give --head"), "{err}");
    assert!(
        err.contains("not run: odin: ODIN (T = 1000, ε = 0.0014) steps against the input gradient"),
        "{err}"
    );

    // A row's scope and set (after its parameters and baseline flag).
    let scope = |r: &str| r.split(',').skip(2).take(2).collect::<Vec<_>>().join(",");
    let model_rows = rows(&at("model.csv"));
    let hand_rows = rows(&at("hand.csv"));
    let mut common = 0;
    for (method, rest) in &hand_rows {
        if let Some((_, expected)) = model_rows.iter().find(|(m, r)| m == method && scope(r) == scope(rest)) {
            assert_eq!(
                rest, expected,
                "{method}: compare --from differs from compare with the model"
            );
            common += 1;
        }
    }
    for method in ["msp", "energy", "maxlogit", "knn", "mahalanobis"] {
        assert!(
            hand_rows.iter().any(|(m, _)| m == method),
            "{method} missing: {hand_rows:?}"
        );
    }
    assert!(common >= 10, "only {common} rows in common: {hand_rows:?}");
    // The user's column: external, with scikit-learn's AUROC.
    let (_, mine) = hand_rows.iter().find(|(m, _)| m == "mine (external)").unwrap();
    let header: Vec<String> = std::fs::read_to_string(at("hand.csv"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .split(',')
        .map(String::from)
        .collect();
    let auroc_at = header.iter().position(|h| h == "auroc").unwrap() - 2;
    let ours: f64 = mine.split(',').nth(auroc_at).unwrap().parse().unwrap();
    assert!((ours - auroc).abs() < 1e-12, "mine: ours {ours}, scikit-learn {auroc}");

    // pandas and polars write it back; it opens and scores the same.
    assert_eq!(
        python(
            ROUND_TRIP,
            &[
                s(&at("hand.parquet")),
                s(&at("pandas.parquet")),
                s(&at("polars.parquet"))
            ]
        ),
        "ok"
    );
    for file in ["pandas", "polars"] {
        from(&format!("{file}.parquet"), &format!("{file}.csv"));
        assert_eq!(
            std::fs::read_to_string(at(&format!("{file}.csv"))).unwrap(),
            std::fs::read_to_string(at("hand.csv")).unwrap(),
            "{file}"
        );
    }
    // score --from: one method, the same metrics as compare's row.
    let (code, out, err) = oodscope(
        cache.path(),
        &["score", "--from", &s(&at("polars.parquet")), "--method", "energy"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Energy"), "{out}");
}

/// Writes `argv[1]` as a Parquet file from the Python literal `argv[2]` (a dict of columns).
const WRITE: &str = r#"
import sys
import pyarrow as pa, pyarrow.parquet as pq
pq.write_table(pa.table(eval(sys.argv[2])), sys.argv[1])
print("ok")
"#;

#[test]
fn bad_files_are_one_line_each() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("{'set': ['a', 'b'], 'role': ['id', 'ood']}", "nothing to score"),
        (
            "{'set': ['a', 'b'], 'logits': [[1.0, 2.0], [2.0, 1.0]]}",
            "it has no `role` column",
        ),
        (
            "{'set': ['a', 'b'], 'role': ['id', 'out'], 'logits': [[1.0, 2.0], [2.0, 1.0]]}",
            "row 1 has role `out`",
        ),
        (
            "{'set': ['a', 'b'], 'role': ['id', 'ood'], 'logits': [[1.0, 2.0], [2.0]]}",
            "every row needs the same number",
        ),
        (
            "{'set': ['a', 'a'], 'role': ['id', 'ood'], 'logits': [[1.0, 2.0], [2.0, 1.0]]}",
            "set `a` has rows of role `id` and of role `ood`",
        ),
        (
            "{'set': ['a', 'b'], 'role': ['id', 'ood'], 'features': [[1.0, 2.0], [2.0, 1.0]]}",
            "the file has no logits",
        ),
    ];
    for (i, (columns, expected)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad{i}.parquet"));
        assert_eq!(python(WRITE, &[s(&file), columns.to_string()]), "ok");
        let (code, _, err) = oodscope(cache.path(), &["compare", "--from", &s(&file), "--methods", "msp"]);
        assert_ne!(code, 0, "{columns}");
        assert!(err.contains(expected), "{columns}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{columns}: {err}");
    }
    let (code, _, err) = oodscope(cache.path(), &["score", "--from", "/nonexistent.parquet"]);
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
