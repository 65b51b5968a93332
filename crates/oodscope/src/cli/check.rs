//! `oodscope check`: a saved detector's verdict on image files, one record per image (JSON lines,
//! CSV or a table): ID or OOD, the score, its conformal p-value, the predicted class and its
//! probability; a file that cannot be used gets a record saying why.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::{RunArgs, progress_bar};
use oodscope_data::scan::scan_folder;
use oodscope_data::{ImageSet, Role};
use oodscope_engine::deploy::SavedDetector;
use oodscope_engine::model::set_model_threads;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The detector file (`oodscope detector save`).
    #[arg(long, value_name = "FILE.oodsd")]
    pub detector: PathBuf,
    /// How records are printed.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Exit with status 3 when any verdict is ood.
    #[arg(long)]
    pub fail_on_ood: bool,
    /// Image files or folders (searched recursively); `-` reads paths from standard input, one per line.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
    Table,
}

/// One image's verdict, as a record holds it.
#[derive(Debug, Serialize)]
pub struct Checked {
    path: String,
    verdict: &'static str,
    score: f32,
    p_value: f64,
    class: String,
    class_index: usize,
    probability: f32,
}

/// One image's record: its verdict, or why it was skipped.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Record {
    Verdict(Checked),
    Skipped { path: String, skipped: String },
}

impl Record {
    fn path(&self) -> &str {
        match self {
            Record::Verdict(c) => &c.path,
            Record::Skipped { path, .. } => path,
        }
    }

    fn verdict(&self) -> Option<&str> {
        match self {
            Record::Verdict(c) => Some(c.verdict),
            Record::Skipped { .. } => None,
        }
    }
}

/// A record as a CSV row: every column, empty where it does not apply.
#[derive(Serialize)]
struct CsvRow<'a> {
    path: &'a str,
    verdict: Option<&'a str>,
    score: Option<f32>,
    p_value: Option<f64>,
    class: Option<&'a str>,
    class_index: Option<usize>,
    probability: Option<f32>,
    skipped: Option<&'a str>,
}

impl<'a> From<&'a Record> for CsvRow<'a> {
    fn from(r: &'a Record) -> Self {
        match r {
            Record::Verdict(c) => CsvRow {
                path: &c.path,
                verdict: Some(c.verdict),
                score: Some(c.score),
                p_value: Some(c.p_value),
                class: Some(&c.class),
                class_index: Some(c.class_index),
                probability: Some(c.probability),
                skipped: None,
            },
            Record::Skipped { path, skipped } => CsvRow {
                path,
                verdict: None,
                score: None,
                p_value: None,
                class: None,
                class_index: None,
                probability: None,
                skipped: Some(skipped),
            },
        }
    }
}

/// The exit status `--fail-on-ood` gives when some image is out-of-distribution.
pub const OOD_EXIT: i32 = 3;

/// Runs `oodscope check`; returns whether some verdict was ood.
pub fn check_command(args: &CheckArgs) -> Result<bool> {
    if args.run.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let detector = SavedDetector::load(&args.detector, args.run.device)?;
    set_model_threads(args.run.threads, detector.model.device);
    let (files, mut unusable) = list_paths(&args.paths)?;
    let set = ImageSet::from_files("check", Role::Id, &files);
    let bar = progress_bar(files.len() as u64, args.run.quiet || files.len() <= args.run.batch_size);
    let run = detector.score_sets(
        std::slice::from_ref(&set),
        args.run.batch_size,
        super::interrupt_flag(),
        &mut |p| bar.set_position(p.done as u64),
    )?;
    bar.finish_and_clear();

    let scored: HashMap<usize, usize> = run.images.iter().enumerate().map(|(i, s)| (s.index, i)).collect();
    let mut skipped: HashMap<String, String> = run.skipped.iter().map(|s| (s.path.clone(), s.reason.clone())).collect();
    let classes = detector.classes();
    let mut records = Vec::with_capacity(files.len() + unusable.len());
    for index in 0..set.len() {
        let path = set.item_name(index);
        let record = match scored.get(&index) {
            Some(&i) => {
                let image = &run.images[i];
                let v = detector.verdict(run.scores()[i], image.pred as usize, image.pred_prob);
                Record::Verdict(Checked {
                    path,
                    verdict: if v.is_ood { "ood" } else { "id" },
                    score: v.score,
                    p_value: v.p_value,
                    class: classes.get(v.class).cloned().unwrap_or_default(),
                    class_index: v.class,
                    probability: v.probability,
                })
            }
            None => Record::Skipped {
                skipped: skipped.remove(&path).unwrap_or_else(|| "not scored".into()),
                path,
            },
        };
        records.push(record);
    }
    records.append(&mut unusable);

    let ood = records.iter().filter(|r| r.verdict() == Some("ood")).count();
    let ids = records.iter().filter(|r| r.verdict() == Some("id")).count();
    print_records(&records, args.format)?;
    eprintln!(
        "checked {} image{} with {}: {ids} id, {ood} ood, {} skipped",
        records.len(),
        if records.len() == 1 { "" } else { "s" },
        detector.name(),
        records.len() - ids - ood
    );
    Ok(ood > 0)
}

/// The image files the arguments name (folders searched, `-` read from stdin), and a record for
/// each one that cannot be used.
fn list_paths(args: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<Record>)> {
    let mut given = Vec::new();
    for arg in args {
        if arg.as_os_str() == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let line = line.trim_end_matches('\r');
                if !line.trim().is_empty() {
                    given.push(PathBuf::from(line));
                }
            }
        } else {
            given.push(arg.clone());
        }
    }
    let mut files = Vec::new();
    let mut unusable = Vec::new();
    for path in given {
        if path.is_dir() {
            let scan = scan_folder(&path, &[]);
            if scan.files.is_empty() && scan.unreadable.is_empty() {
                unusable.push(skipped(&path, "a folder with no image files"));
            }
            files.extend(scan.files.into_iter().map(|f| f.path));
            unusable.extend(scan.unreadable.iter().map(|(p, why)| skipped(p, why)));
        } else if path.exists() {
            files.push(path);
        } else {
            unusable.push(skipped(&path, "no such file"));
        }
    }
    Ok((files, unusable))
}

fn skipped(path: &Path, reason: &str) -> Record {
    Record::Skipped {
        path: oodscope_data::path_to_text(path),
        skipped: reason.to_string(),
    }
}

fn print_records(records: &[Record], format: Format) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match format {
        Format::Jsonl => {
            for r in records {
                serde_json::to_writer(&mut out, r)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            for r in records {
                w.serialize(CsvRow::from(r))?;
            }
            w.flush()?;
        }
        Format::Table => {
            let width = records
                .iter()
                .map(|r| r.path().chars().count())
                .max()
                .unwrap_or(4)
                .max(4);
            writeln!(
                out,
                "{:<width$}  verdict  {:>12}  {:>8}  class (probability)",
                "path", "score", "p-value"
            )?;
            for r in records {
                match r {
                    Record::Verdict(c) => writeln!(
                        out,
                        "{:<width$}  {:<7}  {:>12.6}  {:>8.4}  {} ({:.3})",
                        c.path, c.verdict, c.score, c.p_value, c.class, c.probability
                    )?,
                    Record::Skipped { path, skipped } => writeln!(out, "{path:<width$}  skipped  {skipped}")?,
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}
