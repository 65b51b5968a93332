//! `oodscope merge`: the results files of `--shard i/n` runs joined into the whole run's (checked,
//! streamed; see `results::merge`), then its metrics printed as `score` or `compare` prints them.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use super::paths::Paths;
use super::{interrupt_flag, write_output};
use oodscope_engine::compare::{CompareResult, Leaderboard};
use oodscope_engine::evaluate::evaluate;
use oodscope_engine::report::compare_files::{CompareContext, compare_report, leaderboard_markdown};
use oodscope_engine::report::json::{RunContext, build_report};
use oodscope_engine::report::table::metrics_table;
use oodscope_engine::results::{Load, merge, open_with};

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The parts: results files of `score` or `compare` runs with `--shard i/n --results FILE`
    /// (every shard 0..n once, in any order).
    #[arg(required = true, value_name = "PART")]
    pub parts: Vec<PathBuf>,
    /// The merged results file (Parquet), written only when every check passes.
    #[arg(long, value_name = "FILE.parquet")]
    pub out: PathBuf,
    /// Also write the merged run's report as JSON (as `score --report` / `compare --report`).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Runs `oodscope merge`.
pub fn merge_command(args: &MergeArgs) -> Result<()> {
    let mut paths = Paths::new();
    for part in &args.parts {
        paths.input("PART", part.as_path());
    }
    paths
        .output("--out", args.out.as_path())
        .output("--report", args.report.as_deref())
        .check()
        .map_err(anyhow::Error::msg)?;
    let meta = merge(&args.parts, &args.out, interrupt_flag())?;
    let rows: u64 = meta.sets.iter().map(|s| s.rows).sum();
    eprintln!(
        "merged {} parts ({rows} images, {} skipped) into {}",
        args.parts.len(),
        meta.skipped.len(),
        args.out.display()
    );
    let results = open_with(&args.out, Load::SCORES).map_err(anyhow::Error::msg)?;
    let (run, sets) = (results.run, results.sets);
    let fit = meta.fit.as_ref().map(|f| f.provenance.clone());
    match meta.command.as_str() {
        "compare" => {
            let groups: Vec<Option<String>> = meta.sets.iter().map(|s| s.group.clone()).collect();
            let board = Leaderboard::new(&run, &sets, &groups);
            let result = CompareResult {
                run,
                sets,
                tuning: None,
            };
            print!("{}", leaderboard_markdown(&meta.model.name, &board, &result, &[]));
            if let Some(path) = &args.report {
                let ctx = CompareContext {
                    model_path: meta.model.path.clone(),
                    model_name: &meta.model.name,
                    device: meta.device.clone(),
                    batch_size: meta.batch_size,
                    fit,
                    unsupported: &[],
                };
                let report = compare_report(&ctx, &board, &result, &groups);
                write_output(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
            }
        }
        _ => {
            let Some(settings) = run.methods.first().cloned() else {
                bail!("{}: no score column", args.out.display());
            };
            let evaluation = evaluate(&run, &sets);
            print!("{}", metrics_table(&meta.model.name, &settings, &evaluation));
            if let Some(path) = &args.report {
                let ctx = RunContext {
                    model_path: meta.model.path.clone(),
                    model_name: &meta.model.name,
                    settings: &settings,
                    device: meta.device.clone(),
                    batch_size: meta.batch_size,
                    fit,
                };
                let report = build_report(&ctx, &sets, &run, &evaluation);
                write_output(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
            }
        }
    }
    Ok(())
}
