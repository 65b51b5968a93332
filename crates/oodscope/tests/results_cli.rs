//! `--results FILE.parquet`, `--shard i/n` and `oodscope merge` end to end: the file as pyarrow,
//! pandas and polars read it equals the scores CSV, its scores give the printed metrics (scikit-learn),
//! its logits and features equal PyTorch's on the same input tensors; shards 0..3 merged equal the
//! whole run bit for bit (score and compare); every bad input is one line and leaves no file.

use crate::support;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn fx(rel: &str) -> String {
    support::fixtures().join(rel).to_str().unwrap().to_string()
}

fn oodscope(args: &[&str]) -> (i32, String, String) {
    let cache = tempfile::tempdir().unwrap();
    support::oodscope_with_cache(cache.path(), args)
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Runs a Python snippet with the venv's interpreter; returns its stdout's last line as JSON.
fn python(code: &str, args: &[String]) -> Value {
    let line = support::python_last_line(code, args);
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// Reads a results file with pyarrow, pandas and polars, checks the three agree, compares every
/// column with the scores CSV and the report's metrics (scikit-learn on the file's scores), and the
/// saved list (`logits` or `features`) with the PyTorch model on `npy` (the folder rows' input
/// tensors, in file order).
const CHECK_FILE: &str = r#"
import json, sys
import numpy as np, pandas as pd, polars as pl, pyarrow.parquet as pq
from sklearn.metrics import roc_auc_score
parquet, csv_path, report_path, method, npy, model, listed = sys.argv[1:8]
table = pq.read_table(parquet)
meta = json.loads(pq.read_metadata(parquet).metadata[b"oodscope"])
pdf = pd.read_parquet(parquet)
pldf = pl.read_parquet(parquet)
out = {"rows": table.num_rows, "columns": table.column_names}
for name in ["set", "role", "path", "index", "pred", "pred_prob", method]:
    a = table.column(name).to_pylist()
    assert a == pdf[name].tolist() == pldf[name].to_list(), name
labels = table.column("label").to_pylist()
assert labels == pldf["label"].to_list()
assert [None if v is None else int(v) for v in pdf["label"].astype("object").where(pdf["label"].notna(), None)] == labels
csv = pd.read_csv(csv_path, keep_default_na=False, dtype=str)
classes = meta["model"]["classes"]
f32 = lambda xs: np.array(xs, dtype=np.float32)
out["csv_rows"] = len(csv)
out["csv_equal"] = bool(
    csv["set"].tolist() == table.column("set").to_pylist()
    and csv["role"].tolist() == table.column("role").to_pylist()
    and csv["path"].tolist() == table.column("path").to_pylist()
    and np.array_equal(f32(csv["score"].astype(float)), f32(table.column(method).to_pylist()))
    and np.array_equal(f32(csv["pred_prob"].astype(float)), f32(table.column("pred_prob").to_pylist()))
    and csv["pred"].tolist() == [classes[p] for p in table.column("pred").to_pylist()]
    and csv["label"].tolist() == ["" if l is None else classes[l] for l in labels]
)
report = json.load(open(report_path))
scores = pdf[method].to_numpy(dtype=np.float64)
roles = pdf["role"].to_numpy()
worst = 0.0
for name, m in report["metrics"].items():
    ood = (pdf["set"] == name).to_numpy()
    idm = roles == "id"
    y = np.concatenate([np.ones(idm.sum()), np.zeros(ood.sum())])
    auroc = roc_auc_score(y, np.concatenate([scores[idm], scores[ood]]))
    worst = max(worst, abs(auroc - m["auroc"]))
out["auroc_sets"] = len(report["metrics"])
out["auroc_worst"] = worst
if npy != "-":
    import torch
    x = torch.from_numpy(np.load(npy))
    net = torch.jit.load(model).eval()
    with torch.no_grad():
        y = net(x)
    ref = (y[0] if isinstance(y, tuple) else y)
    if listed == "features":
        ref = y[1] if isinstance(y, tuple) else ref
    ref = ref.numpy()
    folder = pdf[pdf["set"] != "uniform"]
    got = np.stack(folder[listed].to_numpy())
    out["list_shape"] = list(got.shape)
    out["list_ref_shape"] = list(ref.shape)
    out["list_width_meta"] = meta[listed]
    out["list_worst"] = float(np.abs(got - ref).max())
    out["list_polars_equal"] = bool(np.array_equal(np.stack(pldf.filter(pl.col("set") != "uniform")[listed].to_list()).astype(np.float32), got))
print(json.dumps(out))
"#;

/// The folder rows' paths of a results file, in order (pyarrow).
fn folder_paths(parquet: &Path) -> Vec<String> {
    let code = r#"
import json, sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1]).to_pydict()
print(json.dumps([p for p, s in zip(t["path"], t["set"]) if s != "uniform"]))
"#;
    let v = python(code, &[s(parquet)]);
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

/// `score --results` with a saved list, checked against the CSV, the report, and PyTorch.
fn check_score_file(model: &str, id: &str, ood: &str, method: &str, listed: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (parquet, csv, report, npy) = (
        dir.path().join("r.parquet"),
        dir.path().join("s.csv"),
        dir.path().join("r.json"),
        dir.path().join("x.npy"),
    );
    let save = format!("--save-{listed}");
    let (code, _, err) = oodscope(&[
        "score",
        "--model",
        &fx(model),
        "--id",
        &fx(id),
        "--ood",
        &fx(ood),
        "--ood",
        "uniform:40",
        "--method",
        method,
        "--device",
        "cpu",
        "--quiet",
        "--batch-size",
        "16",
        "--results",
        &s(&parquet),
        &save,
        "--scores",
        &s(&csv),
        "--report",
        &s(&report),
    ]);
    assert_eq!(code, 0, "{err}");
    let paths = folder_paths(&parquet);
    let mut args = vec![
        "preprocess".to_string(),
        "--model".into(),
        fx(model),
        "--out".into(),
        s(&npy),
    ];
    args.extend(paths.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = oodscope(&args);
    assert_eq!(code, 0, "{err}");
    let model_pt = fx(&model.replace(".toml", ".pt"));
    let v = python(
        CHECK_FILE,
        &[
            s(&parquet),
            s(&csv),
            s(&report),
            method.into(),
            s(&npy),
            model_pt,
            listed.into(),
        ],
    );
    let rows = v["rows"].as_u64().unwrap();
    assert_eq!(rows as usize, paths.len() + 40);
    assert_eq!(v["csv_rows"].as_u64(), Some(rows));
    assert_eq!(v["csv_equal"], true, "{v}");
    assert!(v["auroc_sets"].as_u64().unwrap() >= 2, "{v}");
    assert!(
        v["auroc_worst"].as_f64().unwrap() < 1e-9,
        "AUROC from the file's scores vs the report: {v}"
    );
    assert_eq!(v["list_shape"], v["list_ref_shape"], "{v}");
    assert_eq!(v["list_shape"][1], v["list_width_meta"], "{v}");
    assert!(v["list_worst"].as_f64().unwrap() < 1e-5, "{listed} vs PyTorch: {v}");
    assert_eq!(v["list_polars_equal"], true);
    println!(
        "{model} {method}: {rows} rows, {listed} within {} of PyTorch",
        v["list_worst"]
    );
}

#[test]
fn score_results_equal_the_csv_the_metrics_and_pytorch_logits() {
    check_score_file("models/plain.pt", "images/id", "images/ood", "odin", "logits");
}

#[test]
fn saved_features_equal_pytorch() {
    check_score_file(
        "features/models/feat.pt",
        "features/images/id",
        "features/images/ood",
        "energy",
        "features",
    );
}

/// Equality of two results files as pyarrow reads them: every column (scores compared as bits)
/// and the metadata, less the keys given.
fn assert_same_files(a: &Path, b: &Path) {
    let code = r#"
import json, sys, numpy as np, pyarrow.parquet as pq
a, b = pq.read_table(sys.argv[1]), pq.read_table(sys.argv[2])
ma = json.loads(pq.read_metadata(sys.argv[1]).metadata[b"oodscope"])
mb = json.loads(pq.read_metadata(sys.argv[2]).metadata[b"oodscope"])
bits = all(
    np.array_equal(np.asarray(a.column(c).to_numpy()).view(np.uint32), np.asarray(b.column(c).to_numpy()).view(np.uint32))
    for c in a.column_names if str(a.schema.field(c).type) == "float"
)
print(json.dumps({"equal": a.equals(b), "bits": bits, "rows": a.num_rows, "meta_diff": sorted(k for k in ma if ma[k] != mb.get(k)), "skipped": len(mb["skipped"])}))
"#;
    let v = python(code, &[s(a), s(b)]);
    assert_eq!(v["equal"], true, "{v}");
    assert_eq!(v["bits"], true, "{v}");
    assert_eq!(v["meta_diff"], serde_json::json!([]), "{v}");
    println!("{} rows equal bit for bit ({} skipped files)", v["rows"], v["skipped"]);
}

/// Runs a command in whole and as 3 shards, merges the parts (given out of order), and checks the
/// merged file and printed metrics equal the whole run's.
fn check_merge_equals_whole(base: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.parquet");
    let whole_report = dir.path().join("whole.json");
    let mut args = base.to_vec();
    let (w, wr) = (s(&whole), s(&whole_report));
    args.extend(["--results", &w, "--save-logits", "--report", &wr]);
    let (code, whole_table, err) = oodscope(&args);
    assert_eq!(code, 0, "{err}");
    let mut parts: Vec<PathBuf> = Vec::new();
    for i in 0..3 {
        let part = dir.path().join(format!("part-{i}.parquet"));
        let shard = format!("{i}/3");
        let mut args = base.to_vec();
        let p = s(&part);
        args.extend(["--results", &p, "--save-logits", "--shard", &shard]);
        let (code, table, err) = oodscope(&args);
        assert_eq!(code, 0, "{err}");
        assert!(
            table.starts_with(&format!("Shard {i}/3: these metrics cover this shard's images only")),
            "{table}"
        );
        parts.push(part);
    }
    let merged = dir.path().join("all.parquet");
    let merged_report = dir.path().join("all.json");
    let (m, mr) = (s(&merged), s(&merged_report));
    let (p0, p1, p2) = (s(&parts[0]), s(&parts[1]), s(&parts[2]));
    let (code, merged_table, err) = oodscope(&["merge", &p2, &p0, &p1, "--out", &m, "--report", &mr]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("merged 3 parts"), "{err}");
    assert_eq!(
        merged_table, whole_table,
        "the metrics printed after merge equal the whole run's"
    );
    let metrics = |p: &Path| {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        (v["metrics"].clone(), v["methods"].clone(), v["id_accuracy"].clone())
    };
    assert_eq!(metrics(&merged_report), metrics(&whole_report));
    assert_same_files(&whole, &merged);
}

#[test]
fn score_shards_merged_equal_the_whole_run_bit_for_bit() {
    // images_bad has undecodable files: skipped, they keep their places across shards.
    let (model, id, ood, bad) = (
        fx("models/plain.pt"),
        fx("images/id"),
        fx("images/ood"),
        fx("images_bad"),
    );
    check_merge_equals_whole(&[
        "score",
        "--model",
        &model,
        "--id",
        &id,
        "--ood",
        &ood,
        "--ood",
        &bad,
        "--ood",
        "gaussian:31",
        "--method",
        "odin",
        "--device",
        "cpu",
        "--quiet",
        "--batch-size",
        "8",
    ]);
}

#[test]
fn compare_shards_merged_equal_the_whole_run_bit_for_bit() {
    let (model, id, ood) = (fx("models/plain.pt"), fx("images/id"), fx("images/ood"));
    let near = format!("near:{ood}");
    check_merge_equals_whole(&[
        "compare",
        "--model",
        &model,
        "--id",
        &id,
        "--ood",
        &near,
        "--ood",
        "far:uniform:25",
        "--methods",
        "msp,odin,energy,maxlogit",
        "--device",
        "cpu",
        "--quiet",
        "--batch-size",
        "16",
    ]);
}

/// A part of a small run: `score` on the fixture images and noise, shard `shard`, extra arguments.
fn part(dir: &Path, name: &str, shard: &str, extra: &[&str]) -> String {
    let path = s(&dir.join(name));
    let (model, id) = (fx("models/plain.pt"), fx("images/id"));
    let mut args = vec![
        "score",
        "--model",
        &model,
        "--id",
        &id,
        "--ood",
        "uniform:20",
        "--method",
        "odin",
        "--device",
        "cpu",
        "--quiet",
        "--shard",
        shard,
        "--results",
        &path,
    ];
    args.extend(extra);
    let (code, _, err) = oodscope(&args);
    assert_eq!(code, 0, "{err}");
    path
}

/// Runs `args`, which must fail with one line containing each of `needles`, and leave `out` unwritten.
fn assert_refused(args: &[&str], out: &Path, needles: &[&str]) {
    let (code, _, err) = oodscope(args);
    assert_ne!(code, 0, "{args:?} should fail");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} missing in {err}");
    }
    assert!(!out.exists(), "{} was written", out.display());
    let dir = out.parent().unwrap();
    let temporaries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(temporaries.is_empty(), "temporaries left: {temporaries:?}");
}

#[test]
fn bad_parts_and_files_are_one_line_each_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("out").join("all.parquet");
    std::fs::create_dir(d.join("out")).unwrap();
    let o = s(&out);
    let p: Vec<String> = (0..3)
        .map(|i| part(d, &format!("p{i}.parquet"), &format!("{i}/3"), &[]))
        .collect();

    // A truncated part.
    let bytes = std::fs::read(&p[1]).unwrap();
    let truncated = s(&d.join("truncated.parquet"));
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_refused(
        &["merge", &p[0], &truncated, &p[2], "--out", &o],
        &out,
        &["truncated.parquet: not a readable Parquet file"],
    );
    // Parts of different settings, and of a different model.
    let other_t = part(d, "t10.parquet", "1/3", &["--temperature", "10"]);
    assert_refused(
        &["merge", &p[0], &other_t, &p[2], "--out", &o],
        &out,
        &["t10.parquet: the methods and their parameters differ", "T = 10"],
    );
    let (conf, id) = (fx("models/conf.pt"), fx("images/id"));
    let other_model = s(&d.join("conf.parquet"));
    let (code, _, err) = oodscope(&[
        "score",
        "--model",
        &conf,
        "--id",
        &id,
        "--ood",
        "uniform:20",
        "--method",
        "odin",
        "--device",
        "cpu",
        "--quiet",
        "--shard",
        "1/3",
        "--results",
        &other_model,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_refused(
        &["merge", &p[0], &other_model, &p[2], "--out", &o],
        &out,
        &["conf.parquet: the model (sha256) differs"],
    );
    // A missing shard, a duplicate one, a shard count that differs.
    assert_refused(&["merge", &p[0], &p[2], "--out", &o], &out, &["shard 1/3 missing"]);
    assert_refused(
        &["merge", &p[0], &p[1], &p[1], &p[2], "--out", &o],
        &out,
        &["p1.parquet: shard 1/3 again"],
    );
    let half = part(d, "half.parquet", "1/2", &[]);
    assert_refused(
        &["merge", &p[0], &half, "--out", &o],
        &out,
        &["the shard count differs"],
    );
    // A shard spec out of range: no file.
    let never = d.join("never.parquet");
    let (model, nv) = (fx("models/plain.pt"), s(&never));
    assert_refused(
        &[
            "score",
            "--model",
            &model,
            "--id",
            &id,
            "--ood",
            "uniform:20",
            "--device",
            "cpu",
            "--shard",
            "3/3",
            "--results",
            &nv,
        ],
        &never,
        &["out of range"],
    );
    // Not Parquet; Parquet but not ours; ours without a column; ours with a row missing (a gap).
    let text = s(&d.join("notes.parquet"));
    std::fs::write(&text, "not a table\n").unwrap();
    assert_refused(
        &["merge", &text, "--out", &o],
        &out,
        &["notes.parquet: not a readable Parquet file"],
    );
    let forge = r#"
import json, sys, pyarrow as pa, pyarrow.parquet as pq
src, d = sys.argv[1], sys.argv[2]
pq.write_table(pa.table({"x": [1, 2]}), d + "/foreign.parquet")
t = pq.read_table(src)
kv = pq.read_metadata(src).metadata
meta = json.loads(kv[b"oodscope"])
keep = {b"oodscope": kv[b"oodscope"]}
pq.write_table(t.drop_columns(["pred"]).replace_schema_metadata(keep), d + "/nopred.parquet")
meta["sets"][0]["rows"] -= 1
gap = t.slice(1).replace_schema_metadata({b"oodscope": json.dumps(meta).encode()})
pq.write_table(gap, d + "/gap.parquet")
print(json.dumps({"ok": True}))
"#;
    python(forge, &[p[1].clone(), s(d)]);
    let (foreign, nopred, gap) = (
        s(&d.join("foreign.parquet")),
        s(&d.join("nopred.parquet")),
        s(&d.join("gap.parquet")),
    );
    assert_refused(
        &["merge", &foreign, "--out", &o],
        &out,
        &["foreign.parquet: a Parquet file, but not an oodscope results file"],
    );
    assert_refused(
        &["merge", &p[0], &nopred, &p[2], "--out", &o],
        &out,
        &["nopred.parquet: it has no `pred` column"],
    );
    assert_refused(
        &["merge", &p[0], &gap, &p[2], "--out", &o],
        &out,
        &["gap.parquet", "a gap"],
    );
    // The good parts merge.
    let (code, _, err) = oodscope(&["merge", &p[0], &p[1], &p[2], "--out", &o]);
    assert_eq!(code, 0, "{err}");
    assert!(out.exists());
}

#[test]
fn results_open_gives_back_the_run() {
    use oodscope_data::{ImageSet, Role};
    use oodscope_engine::model::{DeviceChoice, Model};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.parquet");
    let (model_path, id, bad) = (fx("models/plain.pt"), fx("images/id"), fx("images_bad"));
    let f = s(&file);
    let (code, _, err) = oodscope(&[
        "score",
        "--model",
        &model_path,
        "--id",
        &id,
        "--ood",
        &bad,
        "--ood",
        "uniform:9",
        "--method",
        "energy",
        "--device",
        "cpu",
        "--quiet",
        "--results",
        &f,
        "--save-logits",
    ]);
    assert_eq!(code, 0, "{err}");
    let model = Model::load(Path::new(&model_path), DeviceChoice::Cpu).unwrap();
    let sets = vec![
        ImageSet::open(&id, Role::Id, &model.card.classes).unwrap(),
        ImageSet::open(&bad, Role::Ood, &model.card.classes).unwrap(),
        ImageSet::open("uniform:9", Role::Ood, &[]).unwrap(),
    ];
    let settings = support::settings(&model, "energy", &[]);
    let run = oodscope_engine::score::score_sets(&model, None, &sets, &settings, 64).unwrap();
    let loaded = oodscope_engine::results::open(&file).unwrap();
    assert_eq!(loaded.run.methods, run.methods);
    assert_eq!(loaded.run.columns, run.columns, "scores bit for bit");
    assert_eq!(loaded.run.logits, run.logits);
    assert_eq!(loaded.run.logit_width, run.logit_width);
    assert_eq!(loaded.run.skipped.len(), run.skipped.len());
    assert!(!run.skipped.is_empty(), "images_bad has undecodable files");
    for (i, (a, b)) in loaded.run.images.iter().zip(&run.images).enumerate() {
        assert_eq!(
            (a.set, a.index, a.pred, a.label, a.baseline),
            (b.set, b.index, b.pred, b.label, b.baseline)
        );
        assert_eq!(a.pred_prob.to_bits(), b.pred_prob.to_bits());
        assert_eq!(loaded.run.path_of(i, &loaded.sets), &*b.path);
    }
    for (a, b) in loaded.sets.iter().zip(&sets) {
        assert_eq!(
            (a.name.as_str(), a.role, a.len(), a.labelled),
            (b.name.as_str(), b.role, b.len(), b.labelled)
        );
        for k in 0..a.len() {
            assert_eq!(a.item_name(k), b.item_name(k));
            assert_eq!(a.label(k), b.label(k));
        }
    }
    let scores_only = oodscope_engine::results::open_with(&file, oodscope_engine::results::Load::SCORES).unwrap();
    assert!(scores_only.run.logits.is_empty() && scores_only.run.logit_width == 0);
    // The same metrics as the run's.
    assert_eq!(
        oodscope_engine::evaluate::evaluate(&loaded.run, &loaded.sets),
        oodscope_engine::evaluate::evaluate(&run, &sets)
    );
}
