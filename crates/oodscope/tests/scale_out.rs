//! Scale-out scripts end to end. `scripts/ray_score.py` on a local Ray cluster (2 CPUs) over the
//! bundled ResNet: a sharded fit (fit --shard as Ray tasks, fit-merge) equal to the single fit, then
//! sharded scoring merged by `oodscope merge` equal to a single `score --results` (every column,
//! scores bit for bit, read back with pyarrow), with one fit shard and one score shard failing once
//! on purpose to exercise the retries. `scripts/slurm_score.sbatch`: `bash -n`, its `#SBATCH`
//! lines, and its array tasks run by hand (no Slurm here) merged into the same results.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use safetensors::SafeTensors;
use safetensors::tensor::Dtype;

fn root() -> PathBuf {
    support::repo_root()
}

fn abs(rel: &str) -> String {
    root().join(rel).to_str().unwrap().to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const BIN: &str = env!("CARGO_BIN_EXE_oodscope");
const MAX_FIT_IMAGES: &str = "1200";

/// A tensor's values as f64.
fn values(t: &safetensors::tensor::TensorView) -> Vec<f64> {
    let b = t.data();
    match t.dtype() {
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        Dtype::I64 => b
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        other => panic!("unexpected dtype {other:?}"),
    }
}

/// Two fit files hold the same tensors to 1e-12 (relative above 1; NaN where the other has NaN) and
/// the same provenance.
fn assert_same_fit(single: &Path, merged: &Path) {
    let (a, b) = (std::fs::read(single).unwrap(), std::fs::read(merged).unwrap());
    let (fa, fb) = (
        SafeTensors::deserialize(&a).unwrap(),
        SafeTensors::deserialize(&b).unwrap(),
    );
    let mut names: Vec<&String> = fa.names();
    names.sort();
    let mut names_b: Vec<&String> = fb.names();
    names_b.sort();
    assert_eq!(names, names_b);
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        let (x, y) = (values(&fa.tensor(name).unwrap()), values(&fb.tensor(name).unwrap()));
        assert_eq!(x.len(), y.len(), "{name}");
        for (u, v) in x.iter().zip(&y) {
            // NaN pads OpenMax's tails beyond a class's rows: the same places in both.
            let same = (u.is_nan() && v.is_nan()) || (u - v).abs() <= 1e-12 * u.abs().max(1.0);
            assert!(same, "{name}: {u} vs {v}");
        }
    }
    let provenance = |bytes: &[u8]| -> serde_json::Value {
        let (_, m) = SafeTensors::read_metadata(bytes).unwrap();
        serde_json::from_str(&m.metadata().as_ref().unwrap()["oodscope"]).unwrap()
    };
    assert_eq!(provenance(&a), provenance(&b));
}

/// Two results files hold the same rows, column by column (pyarrow reads them; float columns
/// compared bit for bit).
fn assert_same_results(single: &Path, merged: &Path) {
    let check = r#"
import sys
import numpy as np
import pyarrow.parquet as pq
a, b = pq.read_table(sys.argv[1]), pq.read_table(sys.argv[2])
assert a.column_names == b.column_names, (a.column_names, b.column_names)
assert a.num_rows == b.num_rows and a.num_rows > 0, (a.num_rows, b.num_rows)
for name in a.column_names:
    x, y = a.column(name).to_numpy(zero_copy_only=False), b.column(name).to_numpy(zero_copy_only=False)
    if x.dtype.kind == "f":
        assert np.array_equal(x.view(f"u{x.dtype.itemsize}"), y.view(f"u{y.dtype.itemsize}")), name
    else:
        assert list(x) == list(y), name
print(a.num_rows, "rows,", len(a.column_names), "columns:", ",".join(a.column_names))
"#;
    let out = Command::new(support::python())
        .args(["-c", check, s(single), s(merged)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("same results: {}", String::from_utf8_lossy(&out.stdout).trim());
}

fn oodscope(cache: &Path, args: &[&str]) -> String {
    let (code, stdout, err) = support::oodscope_with_cache(cache, args);
    assert_eq!(code, 0, "oodscope {args:?}: {err}");
    stdout
}

/// A copy of the first `count` images of each class folder of `from` (of `from` itself when it
/// has no class folders).
fn sample(from: &Path, to: &Path, count: usize) -> PathBuf {
    let sorted = |dir: &Path| {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        entries
    };
    let copy = |files: &[PathBuf], target: &Path| {
        std::fs::create_dir_all(target).unwrap();
        for f in files.iter().filter(|f| f.is_file()).take(count) {
            std::fs::copy(f, target.join(f.file_name().unwrap())).unwrap();
        }
    };
    let entries = sorted(from);
    copy(&entries, to);
    for class in entries.iter().filter(|e| e.is_dir()) {
        copy(&sorted(class), &to.join(class.file_name().unwrap()));
    }
    to.to_path_buf()
}

#[test]
fn ray_shards_fit_and_score_as_one_machine_despite_failures() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (model, train) = (abs("models/fmnist-resnet.pt"), abs("assets/demo/fmnist-train"));
    // Small ID and OOD sets (the demo's first images), to keep Ray's part of the test short.
    let id = sample(
        &root().join("assets/demo/fmnist-test"),
        &work.path().join("fmnist-test"),
        30,
    );
    let ood = sample(&root().join("assets/demo/mnist"), &work.path().join("mnist"), 300);
    let (id, ood) = (s(&id).to_string(), s(&ood).to_string());

    // The single machine: a fit, then scoring with it into a results file.
    let single_fit = work.path().join("single-fit.safetensors");
    oodscope(
        cache.path(),
        &[
            "fit",
            "--model",
            &model,
            "--train",
            &train,
            "--max-images",
            MAX_FIT_IMAGES,
            "--out",
            s(&single_fit),
            "--quiet",
        ],
    );
    let single = work.path().join("single.parquet");
    oodscope(
        cache.path(),
        &[
            "compare",
            "--model",
            &model,
            "--methods",
            "knn,vim,energy",
            "--id",
            &id,
            "--ood",
            &ood,
            "--ood",
            "uniform:300",
            "--fit",
            s(&single_fit),
            "--results",
            s(&single),
            "--quiet",
        ],
    );

    // Ray: 3 fit shards and 3 score shards on a local cluster of 2 CPUs; fit shard 1 and score
    // shard 2 fail on their first attempt.
    let parts = work.path().join("ray");
    let merged = work.path().join("merged.parquet");
    let out = Command::new(support::python())
        .arg(root().join("scripts/ray_score.py"))
        .args(["--oodscope", BIN, "--model", &model, "--train", &train])
        .args(["--max-fit-images", MAX_FIT_IMAGES, "--fit-batch-size", "64"])
        .args([
            "--id",
            &id,
            "--ood",
            &ood,
            "--ood",
            "uniform:300",
            "--methods",
            "knn,vim,energy",
        ])
        .args([
            "--shards",
            "3",
            "--num-cpus",
            "2",
            "--work",
            s(&parts),
            "--out",
            s(&merged),
        ])
        .env("RAY_SCORE_FAIL_ONCE", "fit:1,score:2")
        .env("OODSCOPE_CACHE_DIR", cache.path())
        .env_remove("RAY_ADDRESS")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "fit shard 1/3 failed (attempt 1 of 3): simulated failure",
        "score shard 2/3 failed (attempt 1 of 3): simulated failure",
        "fit merged from 3 parts",
        "results merged from 3 parts",
    ] {
        assert!(stderr.contains(line), "expected {line:?} in:\n{stderr}");
    }
    assert!(
        stdout.contains("KNN") && stdout.contains("OOD set mnist"),
        "the report: {stdout}"
    );

    assert_same_fit(&single_fit, &parts.join("fit.safetensors"));
    assert_same_results(&single, &merged);
}

/// The `#SBATCH` lines: `--option=value` (or a bare `--option`) of the options sbatch knows.
fn sbatch_options(script: &str) -> Vec<(String, String)> {
    let known = [
        "job-name",
        "array",
        "ntasks",
        "cpus-per-task",
        "mem",
        "time",
        "output",
        "error",
        "gres",
        "partition",
    ];
    let mut options = Vec::new();
    for line in script.lines() {
        if !line.starts_with("#SBATCH") {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            break; // sbatch reads no directive after the first command
        }
        let rest = line["#SBATCH".len()..].trim();
        let (name, value) = rest
            .strip_prefix("--")
            .and_then(|r| r.split_once('='))
            .unwrap_or_else(|| panic!("not --option=value: {line}"));
        assert!(known.contains(&name), "unknown sbatch option in {line}");
        assert!(!value.is_empty() && !value.contains(' '), "{line}");
        options.push((name.to_string(), value.to_string()));
    }
    options
}

#[test]
fn the_slurm_array_script_parses_and_its_tasks_merge_into_the_single_run() {
    let script = root().join("scripts/slurm_score.sbatch");
    let syntax = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
    let options = sbatch_options(&std::fs::read_to_string(&script).unwrap());
    let get = |name: &str| options.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let array = get("array").expect("an --array line");
    let (first, last) = array.split_once('-').unwrap();
    assert_eq!(first, "0", "shards count from 0");
    assert!(last.parse::<usize>().unwrap() >= 1);
    for (name, value) in &options {
        match name.as_str() {
            "time" => assert!(value.split(':').all(|p| p.parse::<u32>().is_ok()), "{value}"),
            "ntasks" | "cpus-per-task" => assert!(value.parse::<u32>().is_ok(), "{value}"),
            "mem" => assert!(value.trim_end_matches(['K', 'M', 'G', 'T']).parse::<u32>().is_ok()),
            _ => {}
        }
    }

    // The array's tasks, run here as Slurm would (its environment), then the documented merge.
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let parts = work.path().join("parts");
    let model = abs("models/fmnist-resnet.pt");
    let id = sample(
        &root().join("assets/demo/fmnist-test"),
        &work.path().join("fmnist-test"),
        30,
    );
    let mnist = sample(&root().join("assets/demo/mnist"), &work.path().join("mnist"), 300);
    let (id, mnist) = (s(&id).to_string(), s(&mnist).to_string());
    let ood = format!("{mnist} uniform:300");
    let task = |index: usize, dry: bool| {
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .env("SLURM_ARRAY_TASK_ID", index.to_string())
            .env("SLURM_ARRAY_TASK_COUNT", "3")
            .env("SLURM_ARRAY_TASK_MIN", "0")
            .env("MODEL", &model)
            .env("ID", &id)
            .env("OOD", &ood)
            .env("METHOD", "energy")
            .env("WORK", &parts)
            .env("OODSCOPE", BIN)
            .env("EXTRA", "--device cpu")
            .env("OODSCOPE_CACHE_DIR", cache.path());
        if dry {
            command.env("DRY_RUN", "1");
        }
        command.output().unwrap()
    };
    let dry = task(1, true);
    let printed = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    assert!(
        printed.contains("--shard 1/3 --results") && printed.contains("score-part-1.parquet"),
        "{printed}"
    );
    for index in 0..3 {
        let done = task(index, false);
        assert!(
            done.status.success(),
            "task {index}: {}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
    let merged = work.path().join("merged.parquet");
    let mut merge = vec!["merge".to_string()];
    merge.extend((0..3).map(|i| s(&parts.join(format!("score-part-{i}.parquet"))).to_string()));
    merge.extend(["--out".to_string(), s(&merged).to_string()]);
    let merge: Vec<&str> = merge.iter().map(String::as_str).collect();
    let table = oodscope(cache.path(), &merge);
    let single = work.path().join("single.parquet");
    let single_table = oodscope(
        cache.path(),
        &[
            "score",
            "--model",
            &model,
            "--method",
            "energy",
            "--id",
            &id,
            "--ood",
            &mnist,
            "--ood",
            "uniform:300",
            "--results",
            s(&single),
            "--device",
            "cpu",
            "--quiet",
        ],
    );
    assert!(table.contains("mnist"), "{table}");
    assert!(single_table.contains("mnist"), "{single_table}");
    assert_same_results(&single, &merged);
}
