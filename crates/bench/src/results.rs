//! The results table at scale: writing N synthetic rows through `ResultsWriter` (as a run's
//! batches arrive) and opening the file with `results::open_with`, each timed, with the process's
//! peak resident memory (for scripts/bench_results.py, one process per measurement).

use std::path::PathBuf;
use std::time::Instant;

use oodscope_data::scan::FileEntry;
use oodscope_data::{ImageSet, Role, SetSource, Shard};
use oodscope_engine::detect::Params;
use oodscope_engine::detect::plan::BatchScores;
use oodscope_engine::pipeline::stream::Item;
use oodscope_engine::results::schema::{FORMAT, FORMAT_VERSION, Metadata, MethodMeta, ModelMeta, SetMeta};
use oodscope_engine::results::{Load, ResultsWriter, open_with};
use oodscope_engine::score::run::{BatchSink, ScoreRun};
use serde_json::json;

use super::Report;

#[derive(Debug, clap::Args)]
pub struct ResultsWriteArgs {
    #[arg(long)]
    pub out: PathBuf,
    /// Rows in all: half an ID folder set (labelled), half an OOD one.
    #[arg(long, default_value_t = 10_000_000)]
    pub rows: usize,
    /// Score columns (msp, energy, maxlogit, … in that order).
    #[arg(long, default_value_t = 2)]
    pub methods: usize,
    /// Rows per batch handed to the writer (as a run's batches).
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
}

#[derive(Debug, clap::Args)]
pub struct ResultsOpenArgs {
    #[arg(long)]
    pub file: PathBuf,
    /// Load the saved logits and features too.
    #[arg(long)]
    pub lists: bool,
}

/// The process's peak resident memory (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A plausible image path of a large stream.
fn path_of(set: &str, i: usize) -> PathBuf {
    PathBuf::from(format!("/data/stream/{set}/part-{:04}/img-{i:08}.jpg", i / 10_000))
}

pub fn write(args: &ResultsWriteArgs) -> Report {
    const NAMES: [&str; 6] = ["msp", "energy", "maxlogit", "entropy", "odin", "gen"];
    let methods = args.methods.clamp(1, NAMES.len());
    let half = args.rows / 2;
    let set = |name: &str, role: Role, len: usize, labelled: bool| ImageSet {
        name: name.into(),
        role,
        source: SetSource::Folder {
            root: PathBuf::from(format!("/data/stream/{name}")),
            files: (0..len)
                .map(|i| FileEntry {
                    path: path_of(name, i),
                    label: labelled.then_some(i % 10),
                })
                .collect(),
        },
        unreadable: Vec::new(),
        labelled,
    };
    let sets = vec![
        set("id", Role::Id, half, true),
        set("ood", Role::Ood, args.rows - half, false),
    ];
    let listing_mib = peak_rss_mib();
    let meta = Metadata {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        schema_version: oodscope_engine::results::schema::SCHEMA_VERSION.into(),
        oodscope_version: env!("CARGO_PKG_VERSION").into(),
        command: if methods > 1 { "compare" } else { "score" }.into(),
        model: ModelMeta {
            path: "bench.pt".into(),
            name: "bench".into(),
            sha256: "0".repeat(64),
            card_sha256: "0".repeat(64),
            classes: (0..10).map(|c| format!("class-{c}")).collect(),
        },
        methods: NAMES[..methods]
            .iter()
            .map(|n| MethodMeta {
                name: (*n).into(),
                params: Params::new(),
                describe: String::new(),
            })
            .collect(),
        baseline: true,
        fit: None,
        shard: Shard::WHOLE,
        sets: sets.iter().map(|s| SetMeta::of(s, 0..s.len(), None)).collect(),
        skipped: Vec::new(),
        unreadable: Vec::new(),
        logits: None,
        features: None,
        device: "cpu".into(),
        batch_size: args.batch_size,
    };
    let start = Instant::now();
    let mut writer = ResultsWriter::create(&args.out, meta).map_err(anyhow::Error::msg)?;
    let items: Vec<Item> = sets
        .iter()
        .enumerate()
        .flat_map(|(set, s)| (0..s.len()).map(move |index| Item { set, index }))
        .collect();
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    for chunk in items.chunks(args.batch_size.max(1)) {
        let n = chunk.len();
        let scores = BatchScores {
            scores: (0..methods).map(|_| (0..n).map(|_| uniform()).collect()).collect(),
            pred: (0..n).map(|_| (uniform() * 10.0) as i64).collect(),
            pred_prob: (0..n).map(|_| uniform()).collect(),
            ..BatchScores::default()
        };
        writer.batch(&sets, chunk, &scores).map_err(anyhow::Error::msg)?;
    }
    writer.finish(&ScoreRun::default(), &sets).map_err(anyhow::Error::msg)?;
    let seconds = start.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&args.out)?.len();
    Ok(json!({
        "measure": "results-write",
        "rows": args.rows,
        "methods": methods,
        "seconds": seconds,
        "rows_per_s": args.rows as f64 / seconds,
        "file_mib": bytes as f64 / (1 << 20) as f64,
        "peak_rss_mib": peak_rss_mib(),
        "rss_after_listing_mib": listing_mib,
    }))
}

pub fn open(args: &ResultsOpenArgs) -> Report {
    let before = peak_rss_mib();
    let start = Instant::now();
    let load = if args.lists { Load::ALL } else { Load::SCORES };
    let results = open_with(&args.file, load).map_err(anyhow::Error::msg)?;
    let seconds = start.elapsed().as_secs_f64();
    let rows = results.run.images.len();
    Ok(json!({
        "measure": "results-open",
        "rows": rows,
        "methods": results.run.methods.len(),
        "seconds": seconds,
        "peak_rss_mib": peak_rss_mib(),
        "rss_at_start_mib": before,
        "first_path": results.run.path_of(0, &results.sets),
    }))
}
