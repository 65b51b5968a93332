//! The command line: argument definitions and the headless `score` and `tune` commands.

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
use crate::report::tuning::{grid_csv, tune_heatmap, tune_summary};
use crate::report::{csv::scores_csv, table::metrics_table, write_atomically};
use crate::score::run::sets_with_role;
use crate::score::{Method, ScoreRun, ScoreSettings, run_scoring};
use crate::tune::grid::{DEFAULT_EPSILON_MAX, DEFAULT_EPSILON_STEPS, evenly_spaced};
use crate::tune::{Objective, Stage, TuneGrid, TuneOptions, ValidationSplit, tune};

#[derive(Debug, Parser)]
#[command(
    name = "oodscope",
    version,
    about = "Out-of-distribution detection inspector for TorchScript image classifiers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub gui: GuiArgs,
}

/// Without a sub-command oodscope opens its window, on these or on the last session's settings
/// (the bundled demo the first time).
#[derive(Debug, Args, Default)]
pub struct GuiArgs {
    /// Model to open (.pt with its card, or a .toml card).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// In-distribution folder (repeatable).
    #[arg(long)]
    pub id: Vec<String>,
    /// Out-of-distribution folder, uniform:N or gaussian:N (repeatable).
    #[arg(long)]
    pub ood: Vec<String>,
    /// Start with the bundled demo, ignoring the saved settings.
    #[arg(long)]
    pub demo: bool,
    /// Take screenshots of each view into this folder, then quit (for scripts/screenshots.sh).
    #[arg(long)]
    pub screenshots: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Score ID and OOD image sets with a model and print the detection metrics.
    Score(ScoreArgs),
    /// Choose T and ε on a validation split of every set, and report the choice on the rest.
    Tune(TuneArgs),
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
    /// Threads libtorch uses inside each operation [default: all cores on the CPU, 1 with CUDA].
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Runs `oodscope train`.
pub fn train_command(args: &TrainArgs) -> Result<()> {
    use crate::train::{TrainOptions, Which, train};
    let device = args.device.resolve()?;
    set_model_threads(args.threads, device);
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
        device,
    })
}

/// How a model runs, shared by `score` and `tune`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// auto (CUDA when available), cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Threads libtorch uses inside each operation [default: all cores on the CPU, 1 with CUDA].
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl RunArgs {
    /// Checks the batch size, loads the model on the chosen device and sets libtorch's threads for it.
    pub fn load_model(&self, path: &Path) -> Result<Model> {
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        let model = Model::load(path, self.device)?;
        set_model_threads(self.threads, model.device);
        Ok(model)
    }
}

/// The model and the image sets, shared by `score` and `tune`.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// TorchScript model (.pt, with its card <stem>.toml beside it) or a card (.toml).
    #[arg(long)]
    pub model: PathBuf,
    /// In-distribution image folder (repeatable).
    #[arg(long, required = true)]
    pub id: Vec<String>,
    /// Out-of-distribution image folder, or uniform:N / gaussian:N (repeatable).
    #[arg(long, required = true)]
    pub ood: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// msp, odin, energy, confidence or ensemble.
    #[arg(long, default_value = "msp")]
    pub method: Method,
    /// Temperature T [default: 1000 for odin and ensemble, 1 otherwise].
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f64>,
    /// Input perturbation ε in pixel units [default: 0.0014 for odin and ensemble, 0 otherwise].
    #[arg(long, allow_negative_numbers = true)]
    pub epsilon: Option<f64>,
    #[command(flatten)]
    pub run: RunArgs,
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
    let model = args.run.load_model(&args.input.model)?;
    if let Some(reason) = settings.method.unsupported_reason(&model.card) {
        bail!(reason);
    }
    let sets = open_sets(&args.input.id, &args.input.ood, &model.card.classes)?;
    let total: usize = sets.iter().map(ImageSet::len).sum();
    eprintln!(
        "oodscope: {} on {} ({} images in {} sets), {}",
        model.card.name,
        device_name(model.device),
        total,
        sets.len(),
        settings.describe()
    );
    let bar = progress_bar(total as u64, args.run.quiet);
    let cancel = AtomicBool::new(false);
    let run = run_scoring(&model, &sets, &settings, args.run.batch_size, &cancel, &mut |p| {
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
            model_path: args.input.model.display().to_string(),
            model_name: &model.card.name,
            settings: &settings,
            device: device_name(model.device),
            batch_size: args.run.batch_size,
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

#[derive(Debug, Args)]
pub struct TuneArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// odin, energy, confidence or ensemble.
    #[arg(long, default_value = "odin")]
    pub method: Method,
    /// Temperatures to search, comma-separated [default: 1,2,5,10,20,50,100,200,500,1000].
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub temperatures: Vec<f64>,
    /// ε values to search (pixel units), comma-separated [default: --epsilon-steps values from 0 to --epsilon-max].
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true, conflicts_with_all = ["epsilon_steps", "epsilon_max"])]
    pub epsilons: Vec<f64>,
    /// Number of evenly spaced ε values from 0 to --epsilon-max.
    #[arg(long, default_value_t = DEFAULT_EPSILON_STEPS)]
    pub epsilon_steps: usize,
    /// The largest ε of the evenly spaced grid.
    #[arg(long, default_value_t = DEFAULT_EPSILON_MAX, allow_negative_numbers = true)]
    pub epsilon_max: f64,
    /// fpr95 (FPR at 95% TPR, lower is better) or auroc (higher is better), on the validation split.
    #[arg(long, default_value = "fpr95")]
    pub objective: Objective,
    /// Validation split: the first N images of every set (e.g. 1000), or a fraction of each (e.g. 0.2).
    #[arg(long, default_value = "1000")]
    pub validation: ValidationSplit,
    /// Choose on this OOD set's validation split only (its name as printed) [default: the mean over all OOD sets].
    #[arg(long)]
    pub tune_on: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Write the grid as CSV: every (T, ε, OOD set) on the validation split, then the choice on the test split.
    #[arg(long)]
    pub grid: Option<PathBuf>,
    /// Write a PNG heatmap of the validation objective over T × ε, the best cell outlined.
    #[arg(long)]
    pub heatmap: Option<PathBuf>,
}

impl TuneArgs {
    /// The search options, with the ODIN paper's grid where none is given.
    pub fn options(&self) -> Result<TuneOptions, String> {
        let temperatures = if self.temperatures.is_empty() {
            TuneGrid::default().temperatures
        } else {
            self.temperatures.clone()
        };
        let epsilons = if self.epsilons.is_empty() {
            if self.epsilon_steps < 2 {
                return Err(format!(
                    "--epsilon-steps must be at least 2, got {}",
                    self.epsilon_steps
                ));
            }
            if !(self.epsilon_max.is_finite() && self.epsilon_max > 0.0) {
                return Err(format!("--epsilon-max must be positive, got {}", self.epsilon_max));
            }
            evenly_spaced(self.epsilon_max, self.epsilon_steps)
        } else {
            self.epsilons.clone()
        };
        if self.run.batch_size == 0 {
            return Err("--batch-size must be at least 1".into());
        }
        Ok(TuneOptions {
            method: self.method,
            grid: TuneGrid::new(&temperatures, &epsilons)?,
            objective: self.objective,
            validation: self.validation,
            tune_on: self.tune_on.clone(),
            batch_size: self.run.batch_size,
        })
    }
}

/// Runs `oodscope tune`: the grid on the validation split, the choice on the test split.
pub fn tune_command(args: &TuneArgs) -> Result<()> {
    let options = args.options().map_err(anyhow::Error::msg)?;
    let model = args.run.load_model(&args.input.model)?;
    if let Some(reason) = options.method.unsupported_reason(&model.card) {
        bail!(reason);
    }
    let grid = options.grid.for_method(options.method).map_err(anyhow::Error::msg)?;
    if !options.method.uses_temperature() && !args.temperatures.is_empty() {
        eprintln!("note: {} does not use T; searching ε only", options.method);
    }
    let sets = open_sets(&args.input.id, &args.input.ood, &model.card.classes)?;
    eprintln!(
        "oodscope: tuning {} on {} ({}), {} settings, validation split = {}",
        options.method.title(),
        model.card.name,
        device_name(model.device),
        grid.len(),
        options.validation.describe()
    );
    let bar = progress_bar(0, args.run.quiet);
    let mut stage = None;
    let cancel = AtomicBool::new(false);
    let result = tune(&model, &sets, &options, &cancel, &mut |p| {
        if stage != Some(p.stage) {
            stage = Some(p.stage);
            bar.reset();
            bar.set_length(p.total as u64);
            bar.set_message(match p.stage {
                Stage::Decoding => "decoding the validation split",
                Stage::Searching => "validation split × every T (each: 1 gradient + 1 forward per ε)",
                Stage::Testing => "scoring the test split at the chosen setting",
            });
        }
        bar.set_position(p.done as u64);
    })?;
    bar.finish_and_clear();
    let skipped = ScoreRun {
        skipped: [result.validation_skipped.clone(), result.test_run.skipped.clone()].concat(),
        ..ScoreRun::default()
    };
    report_skipped(&skipped, &sets);

    print!("{}", tune_summary(&model.card.name, &result, &sets));
    let validation_images: usize = result.validation_scored.iter().sum();
    let test_images = result.test_run.scores.len();
    eprintln!(
        "[validation] searched {} settings on {validation_images} images in {:.2} s (decoding included); [test] scored {test_images} images in {:.2} s",
        result.grid.len(),
        result.search_elapsed.as_secs_f64(),
        result.test_run.elapsed.as_secs_f64()
    );
    if let Some(path) = &args.grid {
        write_output(path, grid_csv(&result, &sets).as_bytes())?;
    }
    if let Some(path) = &args.heatmap {
        let png = tune_heatmap(&model.card.name, &result, &sets).map_err(anyhow::Error::msg)?;
        write_output(path, &png)?;
    }
    Ok(())
}

fn open_sets(id: &[String], ood: &[String], classes: &[String]) -> Result<Vec<ImageSet>> {
    let specs = id
        .iter()
        .map(|s| (s, Role::Id))
        .chain(ood.iter().map(|s| (s, Role::Ood)));
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

/// The headless demo report: the bundled model on the demo sets, the table and a histogram PNG
/// (`oodscope-demo-histogram.png`), for machines without a display.
pub fn headless_demo() -> Result<()> {
    let root = crate::assets_root();
    let path = |p: &str| root.join(p).display().to_string();
    let args = ScoreArgs {
        input: InputArgs {
            model: root.join("models/fmnist-resnet.pt"),
            id: vec![path("assets/demo/fmnist-test")],
            ood: vec![
                path("assets/demo/mnist"),
                path("assets/demo/photo-crops"),
                "uniform:1000".into(),
                "gaussian:1000".into(),
            ],
        },
        method: Method::Odin,
        temperature: None,
        epsilon: None,
        run: RunArgs {
            batch_size: 64,
            device: DeviceChoice::Auto,
            threads: None,
            quiet: false,
        },
        scores: None,
        report: None,
        histogram: Some(PathBuf::from("oodscope-demo-histogram.png")),
        bins: 60,
    };
    score_command(&args)
}
