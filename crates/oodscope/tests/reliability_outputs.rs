//! Outputs, as a careful user meets them (issue 22): an output that is an input or another output
//! is refused in one line before any work; a full disk leaves no truncated file; the temporaries of
//! killed runs are removed by the next run, a live run's kept; `merge` names the column whose
//! nullability differs. (Signals: `reliability_signals`.)

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn fx(rel: &str) -> String {
    support::fixtures().join(rel).to_str().unwrap().to_string()
}

pub(crate) fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn oodscope(args: &[&str]) -> (i32, String, String) {
    let cache = tempfile::tempdir().unwrap();
    support::oodscope_with_cache(cache.path(), args)
}

/// The run failed with exactly `line` on stderr (and nothing else there), exit 1.
fn refused(args: &[&str], line: &str) {
    let (code, _, err) = oodscope(args);
    assert_eq!(code, 1, "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines, [line], "{args:?}");
}

/// The names in `dir`, sorted.
pub(crate) fn names(dir: &Path) -> Vec<String> {
    support::names_in(dir)
}

/// The plain fixture model and its card copied into `dir` (so that a failed check cannot hurt the
/// fixtures); its path.
fn own_model(dir: &Path) -> PathBuf {
    for file in ["plain.pt", "plain.toml"] {
        std::fs::copy(fx(&format!("models/{file}")), dir.join(file)).unwrap();
    }
    dir.join("plain.pt")
}

#[test]
fn an_output_that_is_an_input_is_refused_in_one_line_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = own_model(d);
    let card = d.join("plain.toml");
    let (m, c) = (s(&model), s(&card));
    let before = (std::fs::read(&model).unwrap(), std::fs::read(&card).unwrap());
    // An image folder of our own: a check that failed would write into it.
    std::fs::create_dir_all(d.join("id/c0")).unwrap();
    std::fs::copy(fx("images/id/c0/photo.jpg"), d.join("id/c0/photo.jpg")).unwrap();
    let id = s(&d.join("id"));
    let score = |extra: &[&str]| {
        let mut args = vec![
            "score",
            "--model",
            &m,
            "--id",
            &id,
            "--ood",
            "uniform:8",
            "--device",
            "cpu",
        ];
        args.extend(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let refused_score = |extra: &[&str], line: &str| {
        let args = score(extra);
        refused(&args.iter().map(String::as_str).collect::<Vec<_>>(), line);
    };

    refused(
        &["fit", "--model", &m, "--train", &id, "--device", "cpu", "--out", &m],
        &format!("error: --out {m} would overwrite the input --model ({m}): give --out another path"),
    );
    refused_score(
        &["--results", &c],
        &format!("error: --results {c} would overwrite the input --model's card ({c}): give --results another path"),
    );
    // The same file by another spelling is the same file.
    let spelled = format!("{}/./plain.pt", d.display());
    refused_score(
        &["--report", &spelled],
        &format!("error: --report {spelled} would overwrite the input --model ({m}): give --report another path"),
    );
    // An output inside an image folder would become one of its images.
    let inside = format!("{id}/c0/h.png");
    refused_score(
        &["--histogram", &inside],
        &format!(
            "error: --histogram {inside} would write into the input folder --id ({id}): give --histogram a path outside it"
        ),
    );
    assert!(!Path::new(&inside).exists());
    // The parts of a merge and of a fit-merge.
    let (p0, p1) = (d.join("p0"), d.join("p1"));
    std::fs::write(&p0, b"part 0").unwrap();
    std::fs::write(&p1, b"part 1").unwrap();
    let (p0, p1) = (s(&p0), s(&p1));
    refused(
        &["fit-merge", &p0, &p1, "--out", &p0],
        &format!("error: --out {p0} would overwrite the input PART ({p0}): give --out another path"),
    );
    refused(
        &[
            "merge",
            &p0,
            &p1,
            "--out",
            &format!("{}/all.parquet", d.display()),
            "--report",
            &p1,
        ],
        &format!("error: --report {p1} would overwrite the input PART ({p1}): give --report another path"),
    );
    // The image preprocess reads.
    let image = s(&d.join("id/c0/photo.jpg"));
    let image_bytes = std::fs::read(&image).unwrap();
    refused(
        &["preprocess", "--model", &m, &image, "--out", &image],
        &format!("error: --out {image} would overwrite the input IMAGE ({image}): give --out another path"),
    );
    assert_eq!(std::fs::read(&image).unwrap(), image_bytes);
    assert_eq!(names(&d.join("id/c0")), ["photo.jpg"]);
    assert_eq!(std::fs::read(&p0).unwrap(), b"part 0");
    assert_eq!(std::fs::read(&p1).unwrap(), b"part 1");
    assert_eq!((std::fs::read(&model).unwrap(), std::fs::read(&card).unwrap()), before);
}

#[test]
fn one_path_for_two_outputs_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = s(&own_model(d));
    let id = fx("images/id");
    let out = s(&d.join("out"));
    refused(
        &[
            "score",
            "--model",
            &model,
            "--id",
            &id,
            "--ood",
            "uniform:8",
            "--device",
            "cpu",
            "--results",
            &out,
            "--scores",
            &out,
            "--report",
            &out,
        ],
        &format!("error: --results {out} and --scores {out} are the same file: give each output its own path"),
    );
    // Through a symlinked folder, before the file exists.
    std::fs::create_dir(d.join("real")).unwrap();
    std::os::unix::fs::symlink(d.join("real"), d.join("alias")).unwrap();
    let (a, b) = (s(&d.join("real/t.md")), s(&d.join("alias/t.md")));
    refused(
        &[
            "compare",
            "--model",
            &model,
            "--id",
            &id,
            "--ood",
            "uniform:8",
            "--device",
            "cpu",
            "--methods",
            "msp",
            "--table",
            &a,
            "--csv",
            &b,
        ],
        &format!("error: --table {a} and --csv {b} are the same file: give each output its own path"),
    );
    refused(
        &[
            "tune",
            "--model",
            &model,
            "--id",
            &id,
            "--ood",
            "uniform:8",
            "--device",
            "cpu",
            "--grid",
            &out,
            "--heatmap",
            &out,
        ],
        &format!("error: --grid {out} and --heatmap {out} are the same file: give each output its own path"),
    );
    assert_eq!(names(d), ["alias", "plain.pt", "plain.toml", "real"]);
    assert!(names(&d.join("real")).is_empty());
}

/// A 32 KiB tmpfs, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path) -> Option<SmallDisk> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=32k", "tmpfs", &s(dir)])
            .stderr(Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| SmallDisk(dir.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn preprocess_on_a_full_disk_leaves_no_truncated_npy() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let Some(_mounted) = SmallDisk::mount(&disk) else {
        eprintln!("note: cannot mount a tmpfs here (not root?): the full-disk case is not run");
        return;
    };
    // 60 images of 3 × 12 × 12 float32: 104 KB, over the 32 KiB disk.
    let image = fx("images/id/c0/photo.jpg");
    let out = s(&disk.join("x.npy"));
    let model = fx("models/plain.pt");
    let mut args = vec!["preprocess", "--model", model.as_str(), "--out", out.as_str()];
    args.extend(std::iter::repeat_n(image.as_str(), 60));
    let (code, _, err) = oodscope(&args);
    assert_eq!(code, 1, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [format!(
            "error: cannot write {out}: No space left on device (os error 28)"
        )],
        "{err}"
    );
    assert!(names(&disk).is_empty(), "left on the disk: {:?}", names(&disk));
    // What fits is written whole.
    let (code, _, err) = oodscope(&["preprocess", "--model", &model, "--out", &out, &image]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(names(&disk), ["x.npy"]);
}

/// A pid that belonged to a process that has ended.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Waits (at most a minute, scaled by OODSCOPE_TEST_TIME_SCALE) until `ready` holds, or fails if the
/// child ended first.
pub(crate) fn wait_until(child: &mut Child, what: &str, mut ready: impl FnMut() -> bool) {
    let scale: f64 = std::env::var("OODSCOPE_TEST_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let start = Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("it ended ({status}) before {what}");
        }
        assert!(start.elapsed().as_secs_f64() < 60.0 * scale, "no {what} after a minute");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a stopped run left in `dir` (a lock file, which only says who writes, aside).
pub(crate) fn left_behind(dir: &Path) -> Vec<String> {
    names(dir).into_iter().filter(|n| !n.ends_with(".lock")).collect()
}

pub(crate) fn temporaries(dir: &Path) -> Vec<String> {
    names(dir).into_iter().filter(|n| n.contains(".tmp-")).collect()
}

#[test]
fn the_temporaries_of_killed_runs_are_removed_by_the_next_run_and_a_live_runs_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (results, scores) = (s(&d.join("r.parquet")), s(&d.join("s.csv")));
    let model = fx("models/plain.pt");
    let id = fx("images/id");
    let args = |ood: &'static str| {
        vec![
            "score",
            "--model",
            &model,
            "--id",
            &id,
            "--ood",
            ood,
            "--device",
            "cpu",
            "--quiet",
            "--results",
            &results,
            "--scores",
            &scores,
        ]
    };
    // SIGKILL mid-run: its temporaries stay (nothing can remove them then).
    let mut child = Command::new(env!("CARGO_BIN_EXE_oodscope"))
        .args(args("uniform:400000"))
        .env("OODSCOPE_CACHE_DIR", d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(&mut child, "its temporaries", || temporaries(d).len() == 2);
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = temporaries(d);
    assert_eq!(killed.len(), 2, "{killed:?}");
    // A live run's temporary (this test's pid) and an old-style one of a dead run.
    let live = format!(".s.csv.tmp-{}-AbCdEf", std::process::id());
    let old = format!(".r.parquet.tmp-{}", dead_pid());
    std::fs::write(d.join(&live), b"live").unwrap();
    std::fs::write(d.join(&old), b"old").unwrap();

    let (code, _, err) = oodscope(&args("uniform:8"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(names(d), [live.as_str(), "r.parquet", "s.csv"]);
    assert_eq!(std::fs::read(d.join(&live)).unwrap(), b"live");
}

#[test]
fn merge_names_the_column_whose_nullability_differs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (model, id) = (fx("models/plain.pt"), fx("images/id"));
    let parts: Vec<String> = (0..2)
        .map(|i| {
            let path = s(&d.join(format!("p{i}.parquet")));
            let shard = format!("{i}/2");
            let (code, _, err) = oodscope(&[
                "score",
                "--model",
                &model,
                "--id",
                &id,
                "--ood",
                "uniform:20",
                "--device",
                "cpu",
                "--quiet",
                "--shard",
                &shard,
                "--results",
                &path,
            ]);
            assert_eq!(code, 0, "{err}");
            path
        })
        .collect();
    // Part 1 rewritten by pyarrow with `pred` nullable: the same rows, row groups and metadata.
    let odd = s(&d.join("odd.parquet"));
    let rewrite = r#"
import sys
import pyarrow as pa
import pyarrow.parquet as pq
source = pq.ParquetFile(sys.argv[1])
# The file's key-value metadata (the run's description) kept, Arrow's own schema key left to pyarrow.
kept = {k: v for k, v in source.metadata.metadata.items() if k != b"ARROW:schema"}
schema = source.schema_arrow.with_metadata(kept)
i = schema.get_field_index("pred")
schema = schema.set(i, schema.field(i).with_nullable(True))
with pq.ParquetWriter(sys.argv[2], schema) as writer:
    for g in range(source.num_row_groups):
        writer.write_table(source.read_row_group(g).cast(schema))
"#;
    let out = Command::new(support::python())
        .args(["-c", rewrite, &parts[1], &odd])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let all = s(&d.join("all.parquet"));
    refused(
        &["merge", &parts[0], &odd, "--out", &all],
        &format!(
            "error: {odd}: the columns differ from {}'s (column `pred`: nullable vs not nullable): parts of different runs cannot be merged",
            parts[0]
        ),
    );
    assert!(!Path::new(&all).exists());
}
