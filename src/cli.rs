//! The command line: argument definitions and the headless `score` command.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::data::set::make_names_unique;
use crate::data::{ImageSet, Role};
use crate::evaluate::evaluate;
use crate::model::{DeviceChoice, Model, device_name, set_model_threads};
use crate::report::histogram::{HistogramPlot, Series, histogram_png};
use crate::report::json::{RunContext, build_report};
use crate::report::{csv::scores_csv, table::metrics_table, write_atomically};
use crate::score::run::sets_with_role;
use crate::score::{Method, ScoreRun, ScoreSettings, run_scoring};

#[derive(Debug, Parser)]
#[command(
    name = "oodscope",
    version,
    about = "Out-of-distribution detection inspector for TorchScript image classifiers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Score ID and OOD image sets with a model and print the detection metrics.
    Score(ScoreArgs),
    /// Train the bundled Fashion-MNIST models (plain, confidence branch, leave-out ensemble).
    Train(TrainArgs),
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Fashion-MNIST in ImageFolder layout with train/ and test/ (made by scripts/import_data.py).
    #[arg(long, default_value = "data/fashion-mnist")]
    pub data: PathBuf,
    /// Where the models and their cards are written.
    #[arg(long, default_value = "models")]
    pub out: PathBuf,
    /// Which models to train (repeatable) [default: all three].
    #[arg(long = "model", value_enum)]
    pub which: Vec<crate::train::Which>,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Epochs for each leave-out member.
    #[arg(long, default_value_t = 8)]
    pub ensemble_epochs: usize,
    /// Width of the first ResNet stage (the others are 2× and 4×).
    #[arg(long, default_value_t = 16)]
    pub width: i64,
    #[arg(long, default_value_t = 128)]
    pub batch_size: i64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Use only the first N training images per class (quick runs).
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Threads libtorch uses on the CPU [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Runs `oodscope train`.
pub fn train_command(args: &TrainArgs) -> Result<()> {
    use crate::train::{TrainOptions, Which, train};
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    set_model_threads(Some(args.threads.unwrap_or(cores)));
    let which = if args.which.is_empty() {
        vec![Which::Plain, Which::Confidence, Which::Ensemble]
    } else {
        args.which.clone()
    };
    train(&TrainOptions {
        data: args.data.clone(),
        out: args.out.clone(),
        which,
        epochs: args.epochs,
        ensemble_epochs: args.ensemble_epochs,
        width: args.width,
        batch_size: args.batch_size,
        seed: args.seed,
        limit: args.limit,
        device: args.device.resolve()?,
    })
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// TorchScript model (.pt, with its card <stem>.toml beside it) or a card (.toml).
    #[arg(long)]
    pub model: PathBuf,
    /// In-distribution image folder (repeatable).
    #[arg(long, required = true)]
    pub id: Vec<String>,
    /// Out-of-distribution image folder, or uniform:N / gaussian:N (repeatable).
    #[arg(long, required = true)]
    pub ood: Vec<String>,
    /// msp, odin, energy, confidence or ensemble.
    #[arg(long, default_value = "msp")]
    pub method: Method,
    /// Temperature T [default: 1000 for odin and ensemble, 1 otherwise].
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f64>,
    /// Input perturbation ε in pixel units [default: 0.0014 for odin and ensemble, 0 otherwise].
    #[arg(long, allow_negative_numbers = true)]
    pub epsilon: Option<f64>,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// auto (CUDA when available), cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Threads libtorch uses inside each operation on the CPU [default: half the cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write per-image scores as CSV.
    #[arg(long)]
    pub scores: Option<PathBuf>,
    /// Write the run's report as JSON.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write a PNG histogram of ID vs each OOD set's scores.
    #[arg(long)]
    pub histogram: Option<PathBuf>,
    /// Histogram bins.
    #[arg(long, default_value_t = 60)]
    pub bins: usize,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl ScoreArgs {
    /// The settings, with the paper's defaults where T or ε is not given.
    pub fn settings(&self) -> Result<ScoreSettings, String> {
        let odin_like = matches!(self.method, Method::Odin | Method::Ensemble);
        let t = self.temperature.unwrap_or(if odin_like { 1000.0 } else { 1.0 });
        let eps = self.epsilon.unwrap_or(if odin_like { 0.0014 } else { 0.0 });
        ScoreSettings::new(self.method, t, eps)
    }
}

/// Runs `oodscope score`: everything a script needs, headless.
pub fn score_command(args: &ScoreArgs) -> Result<()> {
    let settings = args.settings().map_err(anyhow::Error::msg)?;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    set_model_threads(args.threads);
    let model = Model::load(&args.model, args.device)?;
    if let Some(reason) = settings.method.unsupported_reason(&model.card) {
        bail!(reason);
    }
    let sets = open_sets(args, &model.card.classes)?;
    let total: usize = sets.iter().map(ImageSet::len).sum();
    eprintln!(
        "oodscope: {} on {} ({} images in {} sets), {}",
        model.card.name,
        device_name(model.device),
        total,
        sets.len(),
        settings.describe()
    );
    let bar = progress_bar(total as u64, args.quiet);
    let cancel = AtomicBool::new(false);
    let run = run_scoring(&model, &sets, &settings, args.batch_size, &cancel, &mut |p| {
        bar.set_position(p.done as u64);
        if p.skipped > 0 {
            bar.set_message(format!("{} skipped", p.skipped));
        }
    })?;
    bar.finish_and_clear();
    report_skipped(&run, &sets);

    let evaluation = evaluate(&run, &sets);
    print!("{}", metrics_table(&model.card.name, &settings, &evaluation));
    let images = run.scores.len() + run.skipped.len();
    eprintln!(
        "scored {images} images in {:.2} s ({:.0} images/s)",
        run.elapsed.as_secs_f64(),
        images as f64 / run.elapsed.as_secs_f64().max(1e-9)
    );

    if let Some(path) = &args.scores {
        write_output(path, scores_csv(&run, &sets, &model.card.classes).as_bytes())?;
    }
    if let Some(path) = &args.report {
        let ctx = RunContext {
            model_path: args.model.display().to_string(),
            model_name: &model.card.name,
            settings: &settings,
            device: device_name(model.device),
            batch_size: args.batch_size,
        };
        let report = build_report(&ctx, &sets, &run, &evaluation);
        write_output(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if let Some(path) = &args.histogram {
        let png = histogram_of_run(&run, &sets, &model.card.name, &settings, args.bins)?;
        write_output(path, &png)?;
    }
    Ok(())
}

fn open_sets(args: &ScoreArgs, classes: &[String]) -> Result<Vec<ImageSet>> {
    let specs = args
        .id
        .iter()
        .map(|s| (s, Role::Id))
        .chain(args.ood.iter().map(|s| (s, Role::Ood)));
    let mut sets = specs
        .map(|(spec, role)| {
            ImageSet::open(spec, role, classes).with_context(|| format!("{} set", role.name().to_uppercase()))
        })
        .collect::<Result<Vec<_>>>()?;
    make_names_unique(&mut sets);
    Ok(sets)
}

fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} images  {per_sec}  ETA {eta}  {msg}") {
        bar.set_style(style);
    }
    bar
}

fn report_skipped(run: &ScoreRun, sets: &[ImageSet]) {
    let unreadable: Vec<_> = sets
        .iter()
        .flat_map(|s| s.unreadable.iter().map(move |u| (&s.name, u)))
        .collect();
    if run.skipped.is_empty() && unreadable.is_empty() {
        return;
    }
    eprintln!("skipped {} files:", run.skipped.len() + unreadable.len());
    for s in &run.skipped {
        eprintln!("  [{}] {}: {}", sets[s.set].name, s.path, s.reason);
    }
    for (set, (path, reason)) in unreadable {
        eprintln!("  [{set}] {}: {reason}", path.display());
    }
}

/// The histogram PNG of a run: pooled ID against each OOD set, with the 95%-TPR threshold.
pub fn histogram_of_run(
    run: &ScoreRun,
    sets: &[ImageSet],
    model_name: &str,
    settings: &ScoreSettings,
    bins: usize,
) -> Result<Vec<u8>> {
    let id: Vec<f32> = sets_with_role(sets, Role::Id)
        .into_iter()
        .flat_map(|s| run.set_scores(s))
        .collect();
    let ood: Vec<(String, Vec<f32>)> = sets_with_role(sets, Role::Ood)
        .into_iter()
        .map(|s| (sets[s].name.clone(), run.set_scores(s)))
        .collect();
    let threshold = crate::metrics::SortedScores::new(&id, &id)
        .ok()
        .map(|s| s.threshold_at_95_tpr());
    let mut series = vec![Series {
        name: "ID".into(),
        scores: &id,
    }];
    series.extend(ood.iter().map(|(name, scores)| Series {
        name: format!("OOD: {name}"),
        scores,
    }));
    let plot = HistogramPlot {
        title: format!("{model_name}: {}", settings.describe()),
        x_label: format!("{} score (higher = more in-distribution)", settings.method.title()),
        series,
        threshold,
        bins,
        width: 1200,
        height: 720,
    };
    histogram_png(&plot).map_err(anyhow::Error::msg)
}

fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
