//! `oodscope fit-merge PART... [--out FIT]`: the parts written by `fit --shard i/n` turned into the
//! fit file a single `fit` writes (by default into the fit cache, where `score --train` finds it).

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use clap::Args;

use super::fit::{note_labels, print_fit, show};
use super::paths::Paths;
use super::{interrupt_flag, progress_bar, write_output_note};
use oodscope_engine::fit::cache::{cached_path_for, create_parent};
use oodscope_engine::fit::merge::{merge_parts, open_parts};

#[derive(Debug, Args)]
pub struct FitMergeArgs {
    /// The parts written by `oodscope fit --shard i/n --out PART`, every shard once (any order).
    #[arg(required = true, value_name = "PART")]
    pub parts: Vec<PathBuf>,
    /// Where to write the fit file [default: the cache, where `score --train` finds it].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `oodscope fit-merge`.
pub fn fit_merge_command(args: &FitMergeArgs) -> Result<()> {
    let mut paths = Paths::new();
    for part in &args.parts {
        paths.input("PART", part.as_path());
    }
    paths
        .output("--out", args.out.as_deref())
        .check()
        .map_err(anyhow::Error::msg)?;
    let parts = open_parts(&args.parts).map_err(|e| anyhow!(e))?;
    let first = &parts[0].info;
    let out = match &args.out {
        Some(path) => path.clone(),
        None => cached_path_for(
            &first.model_name,
            &first.fit.model_sha256,
            &first.fit.train_listing_sha256,
            first.fit.max_images,
            first.fit.class_covariances,
        ),
    };
    create_parent(&out)?;
    eprintln!(
        "oodscope: merging {} parts of the fit of {} on {} ({} images in batches of {})",
        parts.len(),
        first.model_name,
        first.fit.train_root,
        first.used_files,
        first.batch_size
    );
    let bar = progress_bar(4, args.quiet);
    let start = std::time::Instant::now();
    let summary = merge_parts(&parts, &out, interrupt_flag(), &mut |p| show(&bar, p))?;
    bar.finish_and_clear();
    print_fit(&first.model_name, &summary.info);
    eprintln!(
        "merged {} parts in {:.2} s",
        summary.parts,
        start.elapsed().as_secs_f64()
    );
    note_labels(&summary.info);
    write_output_note(&out);
    if args.out.is_none() {
        eprintln!(
            "(`oodscope score --train {}` finds it in the cache; or give --fit {})",
            first.fit.train_root,
            out.display()
        );
    }
    Ok(())
}
