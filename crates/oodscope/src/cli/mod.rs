//! The command line: the argument definitions every sub-command shares, and their helpers (sets,
//! progress bar, skipped files, outputs). Each sub-command is a file of its own.

pub mod check;
pub mod compare;
pub mod detector;
pub mod fit;
pub mod fit_merge;
pub mod from_file;
pub mod merge;
pub mod methods;
pub(crate) mod paths;
pub mod preprocess;
pub mod score;
pub mod serve;
pub(crate) mod signals;
pub mod train;
pub mod tune;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use oodscope_data::set::make_names_unique;
use oodscope_data::{ImageSet, Role, Shard};
use oodscope_engine::detect::Params;
use oodscope_engine::model::{DeviceChoice, Model, set_model_threads};
use oodscope_engine::output::write_atomically;
use oodscope_engine::results::csv_writer::CsvFile;
use oodscope_engine::results::{ResultsWriter, RunDescription};
use oodscope_engine::score::{BatchSink, ScoreRun};

pub use check::{CheckArgs, check_command};
pub use compare::{CompareArgs, compare_command};
pub use detector::{DetectorArgs, detector_command};
pub use fit::{FitArgs, FitCommandArgs, fit_command};
pub use fit_merge::{FitMergeArgs, fit_merge_command};
pub use merge::{MergeArgs, merge_command};
pub use methods::methods_command;
pub use preprocess::{PreprocessArgs, preprocess_command};
pub use score::{ScoreArgs, headless_demo, headless_results, score_command};
pub use train::{TrainArgs, train_command};
pub use tune::{TuneArgs, tune_command};

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
    /// Open a results file (`oodscope score --results FILE`): shown without a model; with no
    /// display, its metrics are printed.
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Watch a running `oodscope serve` (http://HOST:PORT): live scores against the calibration,
    /// the OOD rate against α, the latest flagged inputs.
    #[arg(long, value_name = "URL")]
    pub watch: Option<String>,
}

impl GuiArgs {
    /// The window's startup options from these flags.
    pub fn startup_options(&self) -> oodscope_gui::StartupOptions {
        oodscope_gui::StartupOptions {
            model: self.model.clone(),
            id: self.id.clone(),
            ood: self.ood.clone(),
            demo: self.demo,
            screenshots: self.screenshots.clone(),
            results: self.results.clone(),
            watch: self.watch.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Score ID and OOD image sets with a model and print the detection metrics.
    Score(ScoreArgs),
    /// Compare every method (or a list) on the same images in one pass: a leaderboard by mean
    /// AUROC, per OOD set and group (`--ood near:DIR`), optionally each method tuned first.
    Compare(CompareArgs),
    /// Choose a method's parameters on a validation split of every set, and report the choice on the rest.
    Tune(TuneArgs),
    /// Pass ID training images once through a model and store the statistics the feature methods
    /// need (class means, covariances, ViM, ReAct, DICE, KL templates, the KNN bank).
    Fit(FitCommandArgs),
    /// Merge the parts written by `fit --shard i/n` into the fit file a single `fit` writes.
    FitMerge(FitMergeArgs),
    /// List the scoring methods: what each needs, its parameters, defaults and ranges.
    Methods(methods::MethodsArgs),
    /// Merge the results files of `--shard i/n` runs into the whole run's, checking that they
    /// come from the same run and cover every image once, and print its metrics.
    Merge(MergeArgs),
    /// Train the bundled Fashion-MNIST models (plain, confidence branch, leave-out ensemble).
    Train(TrainArgs),
    /// Preprocess one image as the model's card says and write the tensor the model receives (.npy).
    Preprocess(PreprocessArgs),
    /// Save a calibrated detector (method, parameters, δ) to one file, or describe one.
    Detector(DetectorArgs),
    /// A saved detector's verdict on image files or folders: id or ood, score, p-value, class.
    Check(CheckArgs),
    /// Serve a saved detector over HTTP (Open Inference Protocol / KServe V2), with dynamic
    /// batching, back-pressure, Prometheus metrics and drift; SIGTERM drains, then exits 0.
    Serve(serve::ServeArgs),
}

impl Command {
    /// Whether SIGINT and SIGTERM stop this command at its next batch (exit 130 / 143).
    pub fn stops_at_the_next_batch(&self) -> bool {
        matches!(
            self,
            Command::Score(_)
                | Command::Tune(_)
                | Command::Compare(_)
                | Command::Fit(_)
                | Command::FitMerge(_)
                | Command::Merge(_)
                | Command::Preprocess(_)
                | Command::Detector(_)
                | Command::Check(_)
        )
    }

    /// Whether this command's output is read by pipes (a closed pipe then ends it quietly): every
    /// command but `serve` and `train`, whose sockets and long runs must outlive a closed terminal.
    pub fn prints_for_pipes(&self) -> bool {
        self.stops_at_the_next_batch() || matches!(self, Command::Methods(_))
    }
}

/// How a model runs, shared by `score` and `tune`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// auto (CUDA when available), cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Threads libtorch uses inside each operation [default: the cores other processes leave free, followed as they change; 1 with CUDA].
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
    #[arg(long, required_unless_present = "from")]
    pub model: Option<PathBuf>,
    /// In-distribution image folder (repeatable).
    #[arg(long, required_unless_present = "from")]
    pub id: Vec<String>,
    /// Out-of-distribution image folder, or uniform:N / gaussian:N (repeatable).
    #[arg(long, required_unless_present = "from")]
    pub ood: Vec<String>,
    /// Score a results file's saved logits and features instead, with no model (its sets are the
    /// file's; docs/results.md says what a file needs).
    #[arg(long, value_name = "FILE.parquet", conflicts_with_all = ["model", "id", "ood"])]
    pub from: Option<PathBuf>,
    /// With --from: the classifier head as .safetensors (`weight` [C, D], `bias` [C]), for the
    /// methods that need it [default: the fit's, when it keeps one].
    #[arg(long, value_name = "FILE.safetensors", requires = "from")]
    pub head: Option<PathBuf>,
}

impl InputArgs {
    /// The model (`--model`; absent only with `--from`, which the caller handles first).
    pub fn model(&self) -> Result<&Path> {
        self.model
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("give --model (or --from FILE.parquet)"))
    }
}

/// The method and its parameters, shared by `score` and `tune`.
#[derive(Debug, Args)]
pub struct MethodArgs {
    /// A method parameter, name=value (repeatable): k=50, percentile=90, dim=32, gamma=0.1, m=100,
    /// temperature=1000, epsilon=0.0014 (`oodscope methods` lists each method's).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Temperature T (shorthand for --param temperature=T) [default: the method's, 1000 for odin and ensemble].
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f64>,
    /// Input perturbation ε in pixel units (shorthand for --param epsilon=E) [default: the method's, 0.0014 for odin and ensemble].
    #[arg(long, allow_negative_numbers = true)]
    pub epsilon: Option<f64>,
}

impl MethodArgs {
    /// The parameters as given (not yet checked against a method); a parameter given twice (by
    /// `--param` twice, or also by its shorthand) is an error rather than the last one silently.
    pub fn given(&self) -> Result<Params, String> {
        let mut params = Params::new();
        for text in &self.params {
            let (name, value) = Params::parse_assignment(text)?;
            if params.contains(&name) {
                return Err(format!("--param {name} is given twice: give each parameter once"));
            }
            params.set(&name, value);
        }
        for (flag, name, value) in [
            ("--temperature", "temperature", self.temperature),
            ("--epsilon", "epsilon", self.epsilon),
        ] {
            let Some(value) = value else { continue };
            if params.contains(name) {
                return Err(format!(
                    "{name} is given twice (--param {name}=… and {flag}): give it once"
                ));
            }
            params.set(name, value);
        }
        Ok(params)
    }
}

/// The per-image results table and sharding, shared by `score` and `compare`.
#[derive(Debug, Args, Default)]
pub struct ResultsArgs {
    /// Write one row per image as Parquet (set, role, path, index, label, pred, pred_prob, one
    /// score column per method; the run's settings and provenance in its metadata), as the run goes.
    #[arg(long, value_name = "FILE.parquet")]
    pub results: Option<PathBuf>,
    /// With --results: add each image's logits (a list column).
    #[arg(long, requires = "results")]
    pub save_logits: bool,
    /// With --results: add each image's penultimate features (a list column).
    #[arg(long, requires = "results")]
    pub save_features: bool,
    /// Score only shard i of n (0-based): a contiguous block of every set's sorted listing, for
    /// `oodscope merge` to join (e.g. one Slurm array task or Ray task each).
    #[arg(long, value_name = "i/n")]
    pub shard: Option<Shard>,
}

impl ResultsArgs {
    pub fn shard_or_whole(&self) -> Shard {
        self.shard.unwrap_or(Shard::WHOLE)
    }

    /// The shard of each set to score (the sets themselves without --shard).
    /// The shard's blocks of the sets, as whole batches of size `batch_size` ([`Shard::blocks`]).
    pub fn shard_sets(&self, sets: &[ImageSet], batch_size: usize) -> Vec<ImageSet> {
        match self.shard {
            Some(shard) => {
                let lens: Vec<usize> = sets.iter().map(ImageSet::len).collect();
                let blocks = shard.blocks(&lens, batch_size);
                sets.iter()
                    .zip(blocks)
                    .map(|(s, b)| s.block(b, shard.index == 0))
                    .collect()
            }
            None => sets.to_vec(),
        }
    }

    /// Checks the model can give what is to be saved.
    pub fn check(&self, model: &Model) -> Result<()> {
        if self.save_features && model.feature_width.is_none() {
            bail!(
                "--save-features: {} has no features (its card must say outputs = \"logits+features\")",
                model.card.name
            );
        }
        Ok(())
    }

    /// The line printed above a shard's metrics.
    pub fn shard_note(&self) -> Option<String> {
        self.shard.filter(|s| !s.is_whole()).map(|s| {
            format!(
                "Shard {s}: these metrics cover this shard's images only; `oodscope merge` joins the parts into the whole run's.\n"
            )
        })
    }
}

/// The files a run writes as it goes: the results table and the scores CSV.
#[derive(Default)]
pub(crate) struct StreamedOutputs {
    results: Option<(PathBuf, ResultsWriter)>,
    csv: Option<(PathBuf, CsvFile)>,
}

impl StreamedOutputs {
    /// Starts the files (as temporaries, renamed into place by [`StreamedOutputs::finish`]).
    pub(crate) fn create(
        results: Option<&Path>,
        scores: Option<&Path>,
        run: &RunDescription,
    ) -> Result<StreamedOutputs> {
        let mut outputs = StreamedOutputs::default();
        if let Some(path) = results {
            let meta = oodscope_engine::results::metadata(run).map_err(anyhow::Error::msg)?;
            let writer = ResultsWriter::create(path, meta).map_err(anyhow::Error::msg)?;
            outputs.results = Some((path.to_path_buf(), writer));
        }
        if let Some(path) = scores {
            let csv = CsvFile::create(path, run.methods, &run.model.card.classes).map_err(anyhow::Error::msg)?;
            outputs.csv = Some((path.to_path_buf(), csv));
        }
        Ok(outputs)
    }

    pub(crate) fn sinks(&mut self) -> Vec<&mut dyn BatchSink> {
        let mut sinks: Vec<&mut dyn BatchSink> = Vec::new();
        if let Some((_, w)) = &mut self.results {
            sinks.push(w);
        }
        if let Some((_, c)) = &mut self.csv {
            sinks.push(c);
        }
        sinks
    }

    /// Completes the files from the finished run and renames them into place.
    pub(crate) fn finish(self, run: &ScoreRun, sets: &[ImageSet]) -> Result<()> {
        if let Some((path, writer)) = self.results {
            writer.finish(run, sets).map_err(anyhow::Error::msg)?;
            write_output_note(&path);
        }
        if let Some((path, csv)) = self.csv {
            csv.finish().map_err(anyhow::Error::msg)?;
            write_output_note(&path);
        }
        Ok(())
    }
}

pub(crate) fn open_sets(id: &[String], ood: &[String], classes: &[String]) -> Result<Vec<ImageSet>> {
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

pub(crate) fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} images  {per_sec}  ETA {eta}  {msg}") {
        bar.set_style(style);
    }
    bar
}

pub(crate) fn report_skipped(run: &ScoreRun, sets: &[ImageSet]) {
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
        eprintln!("  [{set}] {}: {reason}", oodscope_data::path_to_text(path));
    }
}

pub(crate) fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    write_output_note(path);
    Ok(())
}

pub(crate) fn write_output_note(path: &Path) {
    eprintln!("wrote {}", path.display());
}

/// The cancel flag of a command-line run, raised by SIGINT (Ctrl-C) or SIGTERM and checked between
/// batches, so an interrupted command stops cleanly and writes nothing half-done ([`signals`]).
pub(crate) fn interrupt_flag() -> &'static AtomicBool {
    signals::install()
}
