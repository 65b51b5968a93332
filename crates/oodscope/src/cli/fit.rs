//! `oodscope fit`, and the `--train` / `--fit` options of `score` and `tune`: the statistics of ID
//! training images that the feature methods need, computed once (with progress) and cached.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::ProgressBar;

use super::paths::Paths;
use super::{RunArgs, progress_bar, write_output_note};
use oodscope_data::Shard;
use oodscope_data::{ImageSet, Role};
use oodscope_engine::fit::cache::{bank_budget, cached_path, create_parent, obtain};
use oodscope_engine::fit::{FitOptions, FitProgress, FitStage, check_class_covariances, fit_model, fit_shard};
use oodscope_engine::model::{Model, device_name};
use oodscope_engine::score::ScoreSettings;
use oodscope_engine::stats::gaussians::{CLASS_COVARIANCES, check_size, covariance_bytes};
use oodscope_engine::stats::{Fit, FitInfo, LabelSource};

/// Where the fit comes from, for `score` and `tune`.
#[derive(Debug, Args, Default)]
pub struct FitArgs {
    /// ID training images for the methods that need a fit (knn, mahalanobis, vim, react, dice,
    /// klm, rmds): an ImageFolder with class sub-folders (else the model's predictions are the
    /// classes). Fitted on first use and cached, keyed by the model and the folder.
    #[arg(long, conflicts_with = "fit")]
    pub train: Option<PathBuf>,
    /// A fit file made by `oodscope fit`, instead of --train.
    #[arg(long)]
    pub fit: Option<PathBuf>,
    /// Fit on at most N of the training images, evenly spread over the folder's sorted listing.
    #[arg(long = "max-fit-images", value_name = "N")]
    pub max_fit_images: Option<usize>,
}

impl FitArgs {
    /// Its inputs (`--train`, `--fit`), for the check of a command's outputs.
    pub(crate) fn inputs<'a>(&self, paths: &'a mut Paths) -> &'a mut Paths {
        paths
            .input("--train", self.train.as_deref())
            .input("--fit", self.fit.as_deref())
    }

    /// The fit the methods need (`None` when none needs one, or none was given — the plan then
    /// says what is missing). Prints where it came from.
    pub fn obtain(&self, model: &Model, methods: &[ScoreSettings], run: &RunArgs) -> Result<Option<Fit>> {
        let needed = methods.iter().any(|m| m.method.detector().needs().fit);
        if !needed {
            if self.train.is_some() || self.fit.is_some() {
                eprintln!("note: this method needs no fit; --train / --fit are not used");
            }
            return Ok(None);
        }
        if let Some(path) = &self.fit {
            let fit = Fit::load(path, model, bank_budget()).map_err(anyhow::Error::msg)?;
            eprintln!("fit: {} (from {})", fit.info.describe(), path.display());
            return Ok(Some(fit));
        }
        let Some(train) = &self.train else {
            return Ok(None);
        };
        let set = open_train(train, model)?;
        let options = FitOptions {
            batch_size: run.batch_size,
            max_images: self.max_fit_images,
            class_covariances: class_covariances_for(model, methods)?,
        };
        let bar = progress_bar(set.len() as u64, run.quiet);
        let obtained = obtain(model, &set, &options, super::interrupt_flag(), &mut |p| show(&bar, p))?;
        bar.finish_and_clear();
        if let Some(why) = &obtained.replaced {
            eprintln!("note: the cached fit could not be used and was fitted again ({why})");
        }
        let info = &obtained.fit.info;
        match &obtained.computed {
            None => eprintln!(
                "fit: using the cached statistics of {} ({})",
                info.describe(),
                info.path.display()
            ),
            Some(summary) => {
                eprintln!(
                    "fit: computed from {} in {:.1} s, cached at {}",
                    info.describe(),
                    summary.elapsed.as_secs_f64(),
                    info.path.display()
                );
                note_skipped(summary.skipped.len());
            }
        }
        note_labels(info);
        Ok(Some(obtained.fit))
    }
}

/// Whether a fit for `methods` keeps each class's covariance: when one of them reads it (gmm) and
/// they are not too many. Too many is an error when only such methods need the fit (before any
/// image is passed), else a note: the comparison leaves those methods out and says why.
fn class_covariances_for(model: &Model, methods: &[ScoreSettings]) -> Result<bool> {
    let reads = |m: &&ScoreSettings| m.method.detector().fit_tensors().contains(&CLASS_COVARIANCES);
    let (Some(first), Some(d)) = (methods.iter().find(reads), model.feature_width) else {
        return Ok(false);
    };
    let Err(why) = check_size(model.card.num_classes(), d) else {
        return Ok(true);
    };
    if methods
        .iter()
        .filter(|m| m.method.detector().needs().fit)
        .all(|m| reads(&m))
    {
        bail!("{why}");
    }
    eprintln!(
        "note: the fit keeps no per-class covariances, so {} is not run: {why}",
        first.method
    );
    Ok(false)
}

#[derive(Debug, Args)]
pub struct FitCommandArgs {
    /// TorchScript model (.pt, with its card) or a card (.toml); it must return features.
    #[arg(long)]
    pub model: PathBuf,
    /// ID training images: an ImageFolder with class sub-folders (else the model's predictions
    /// are the classes).
    #[arg(long)]
    pub train: PathBuf,
    /// Use at most N images, evenly spread over the folder's sorted listing.
    #[arg(long)]
    pub max_images: Option<usize>,
    /// Also keep each class's covariance, for gmm: C·D² float64 values (C classes, D features),
    /// refused above 4 GB. `score --train` adds them itself when its method needs them.
    #[arg(long)]
    pub class_covariances: bool,
    /// Where to write the fit file [default: the cache, where `score --train` finds it]; with
    /// --shard, the part.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Fit only shard i of n (0-based) of the training listing, in whole batches, and write a
    /// mergeable part to --out; `oodscope fit-merge` turns all n parts into the fit file (give
    /// every shard the same --batch-size and --max-images).
    #[arg(long, value_name = "i/n")]
    pub shard: Option<Shard>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Runs `oodscope fit`.
pub fn fit_command(args: &FitCommandArgs) -> Result<()> {
    if let (Some(shard), None) = (args.shard, &args.out) {
        bail!("fit --shard {shard} needs --out PART: where to write this shard's part for `oodscope fit-merge`");
    }
    Paths::new()
        .model("--model", &args.model)
        .input("--train", args.train.as_path())
        .output("--out", args.out.as_deref())
        .check()
        .map_err(anyhow::Error::msg)?;
    let model = args.run.load_model(&args.model)?;
    if model.feature_width.is_none() {
        eprintln!(
            "note: {} returns no features: the fit holds the KL-matching templates only (outputs = \"logits+features\" gives the feature methods)",
            model.card.name
        );
    }
    let set = open_train(&args.train, &model)?;
    let options = FitOptions {
        batch_size: args.run.batch_size,
        max_images: args.max_images,
        class_covariances: args.class_covariances,
    };
    // Too many per-class covariances: refused now, before anything is said to start.
    check_class_covariances(model.card.num_classes(), model.feature_width, options.class_covariances)?;
    if let (Some(shard), Some(out)) = (args.shard, &args.out) {
        return fit_shard_command(args, &model, &set, &options, shard, out);
    }
    let out = match &args.out {
        Some(path) => path.clone(),
        None => cached_path(&model, &set, &options).map_err(anyhow::Error::msg)?,
    };
    create_parent(&out)?;
    let used = options.max_images.map_or(set.len(), |m| m.min(set.len()));
    eprintln!(
        "oodscope: fitting {} on {} ({} of {} images in {})",
        model.card.name,
        device_name(model.device),
        used,
        set.len(),
        args.train.display()
    );
    let bar = progress_bar(used as u64, args.run.quiet);
    let cancel = super::interrupt_flag();
    let summary = fit_model(&model, &set, &options, &out, cancel, &mut |p| show(&bar, p))?;
    bar.finish_and_clear();
    let info = &summary.info;
    let rate = super::score::rate(info.images as usize, summary.elapsed.as_secs_f64());
    print_fit(&model.card.name, info);
    eprintln!("fitted in {:.2} s ({rate})", summary.elapsed.as_secs_f64());
    note_skipped(summary.skipped.len());
    note_labels(info);
    write_output_note(&out);
    if args.out.is_none() {
        eprintln!(
            "(`oodscope score --train {}` finds it in the cache; or give --fit {})",
            args.train.display(),
            out.display()
        );
    }
    Ok(())
}

/// `oodscope fit --shard i/n --out PART`.
fn fit_shard_command(
    args: &FitCommandArgs,
    model: &Model,
    set: &ImageSet,
    options: &FitOptions,
    shard: Shard,
    out: &std::path::Path,
) -> Result<()> {
    create_parent(out)?;
    let used = options.max_images.map_or(set.len(), |m| m.min(set.len()));
    let range = oodscope_engine::fit::part::shard_images(shard, used, options.batch_size);
    eprintln!(
        "oodscope: fitting shard {shard} of {} on {} (images {}..{} of {} in {}, in batches of {})",
        model.card.name,
        device_name(model.device),
        range.start,
        range.end,
        used,
        args.train.display(),
        options.batch_size
    );
    let bar = progress_bar(range.len() as u64, args.run.quiet);
    let cancel = super::interrupt_flag();
    let summary = fit_shard(model, set, options, shard, out, cancel, &mut |p| show(&bar, p))?;
    bar.finish_and_clear();
    let info = &summary.info;
    let rate = super::score::rate(info.fit.images as usize, summary.elapsed.as_secs_f64());
    println!(
        "Fit part {shard} of {}: {} images of {} (images {}..{})",
        model.card.name, info.fit.images, info.fit.train_root, info.first, info.end
    );
    eprintln!("fitted in {:.2} s ({rate})", summary.elapsed.as_secs_f64());
    note_skipped(summary.skipped.len());
    write_output_note(out);
    eprintln!(
        "(`oodscope fit-merge` with every part of {} gives the fit file)",
        shard.count
    );
    Ok(())
}

/// What a fit holds, on stdout (`fit` and `fit-merge`).
pub(super) fn print_fit(name: &str, info: &FitInfo) {
    println!("Fit of {name}: {}", info.describe());
    let counts: Vec<String> = info
        .classes
        .iter()
        .zip(&info.counts)
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    println!("images per class: {}", counts.join(", "));
    if let Some(d) = info.feature_width {
        println!(
            "features: D = {d}; KNN bank {} × {d} ({:.1} MB)",
            info.images,
            (info.images as f64 * d as f64 * 4.0) / 1e6
        );
        if info.class_covariances {
            println!(
                "per-class covariances: {} × {d} × {d} ({:.1} MB)",
                info.classes.len(),
                covariance_bytes(info.classes.len(), d) / 1e6
            );
        }
    }
}

fn open_train(train: &std::path::Path, model: &Model) -> Result<ImageSet> {
    if !train.exists() {
        bail!("training folder {}: no such folder", train.display());
    }
    ImageSet::open(&train.display().to_string(), Role::Id, &model.card.classes).context("training folder")
}

pub(super) fn show(bar: &ProgressBar, p: FitProgress) {
    match p.stage {
        FitStage::Images => {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
        }
        FitStage::Statistics => bar.set_message(format!("statistics {}/{}", p.done, p.total)),
    }
}

pub(super) fn note_labels(info: &FitInfo) {
    if info.labels == LabelSource::Predicted {
        eprintln!(
            "note: {} has no class sub-folders named as the card's classes: the fit uses the model's predicted classes",
            info.train_root
        );
    }
}

pub(super) fn note_skipped(skipped: usize) {
    if skipped > 0 {
        eprintln!("note: {skipped} training files could not be read and were skipped");
    }
}
