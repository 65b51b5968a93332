//! `oodscope tune`: a method's parameter grid on the validation split, the choice on the test split.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use super::detector;
use super::from_file::FromFile;
use super::paths::Paths;
use super::{FitArgs, InputArgs, RunArgs, open_sets, progress_bar, report_skipped, write_output};
use oodscope_engine::deploy::SetSummary;
use oodscope_engine::detect::cache::CachedOutputs;
use oodscope_engine::detect::params::{EPSILON_GRID_MAX, EPSILON_GRID_STEPS, evenly_spaced};
use oodscope_engine::detect::plan::{dims_of, dims_with_fit};
use oodscope_engine::model::device_name;
use oodscope_engine::report::tuning::{grid_csv, tune_heatmap, tune_summary};
use oodscope_engine::results::stored::rescore_stored;
use oodscope_engine::score::{Method, ScoreRun, ScoreSettings};
use oodscope_engine::tune::grid::parse_axis;
use oodscope_engine::tune::{Objective, ParamGrid, Stage, TuneOptions, ValidationSplit, tune, tune_stored};

#[derive(Debug, Args)]
pub struct TuneArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// The method whose parameters are searched (any with parameters: odin, energy, confidence,
    /// ensemble, gen, knn, vim, react, ash-p, scale, dice, mahalanobis…).
    #[arg(long, default_value = "odin")]
    pub method: Method,
    /// Values of one parameter to search, name=v1,v2,… (repeatable), e.g. k=10,50,100 [default:
    /// each parameter's grid, as `oodscope methods` lists].
    #[arg(long = "grid-param", value_name = "NAME=V1,V2,…")]
    pub grid_params: Vec<String>,
    /// Temperatures to search, comma-separated [default: 1,2,5,10,20,50,100,200,500,1000].
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub temperatures: Vec<f64>,
    /// ε values to search (pixel units), comma-separated [default: --epsilon-steps values from 0 to --epsilon-max].
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true, conflicts_with_all = ["epsilon_steps", "epsilon_max"])]
    pub epsilons: Vec<f64>,
    /// Number of evenly spaced ε values from 0 to --epsilon-max.
    #[arg(long, default_value_t = EPSILON_GRID_STEPS)]
    pub epsilon_steps: usize,
    /// The largest ε of the evenly spaced grid.
    #[arg(long, default_value_t = EPSILON_GRID_MAX, allow_negative_numbers = true)]
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
    pub fit: FitArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Write the grid as CSV: every (setting, OOD set) on the validation split, then the choice on the test split.
    #[arg(long)]
    pub grid: Option<PathBuf>,
    /// Write a PNG heatmap of the validation objective over the (at most two) parameters, the best cell outlined.
    #[arg(long)]
    pub heatmap: Option<PathBuf>,
    /// Save the chosen setting as a detector file (`oodscope check`, `oodscope serve`), δ calibrated
    /// on the ID sets' validation split.
    #[arg(long, value_name = "FILE.oodsd")]
    pub save_detector: Option<PathBuf>,
    /// With --save-detector: δ for at most this false-alarm rate on new ID images [default: 0.05].
    #[arg(long, value_name = "ALPHA", requires = "save_detector")]
    pub false_alarm: Option<f64>,
}

impl TuneArgs {
    /// The values given for each parameter: `--grid-param`, and `--temperatures` / the ε flags for
    /// the methods that have T and ε. Notes the flags a method ignores.
    pub fn overrides(&self, has: impl Fn(&str) -> bool) -> Result<Vec<(String, Vec<f64>)>, String> {
        let mut overrides = Vec::new();
        for text in &self.grid_params {
            overrides.push(parse_axis(text)?);
        }
        if !self.temperatures.is_empty() {
            if has("temperature") {
                overrides.push(("temperature".into(), self.temperatures.clone()));
            } else {
                eprintln!("note: {} does not use T; --temperatures is ignored", self.method);
            }
        }
        if has("epsilon") {
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
            overrides.push(("epsilon".into(), epsilons));
        }
        if self.run.batch_size == 0 {
            return Err("--batch-size must be at least 1".into());
        }
        Ok(overrides)
    }
}

/// Runs `oodscope tune`: the grid on the validation split, the choice on the test split.
pub fn tune_command(args: &TuneArgs) -> Result<()> {
    if let Some(from) = &args.input.from {
        return tune_from(args, from);
    }
    let mut paths = Paths::new();
    paths
        .model("--model", args.input.model()?)
        .sets("--id", &args.input.id)
        .sets("--ood", &args.input.ood);
    args.fit
        .inputs(&mut paths)
        .output("--grid", args.grid.as_deref())
        .output("--heatmap", args.heatmap.as_deref())
        .output("--save-detector", args.save_detector.as_deref())
        .check()
        .map_err(anyhow::Error::msg)?;
    let model = args.run.load_model(args.input.model()?)?;
    if let Some(missing) = args.method.missing(&model.capabilities(), true) {
        anyhow::bail!(missing.message(args.method.name(), &model.card.name));
    }
    let defaults = ScoreSettings::default_for(args.method, &dims_of(&model));
    let fit = args.fit.obtain(&model, std::slice::from_ref(&defaults), &args.run)?;
    let dims = dims_with_fit(&model, fit.as_ref());
    let specs = args.method.params(&dims);
    let overrides = args
        .overrides(|name| specs.iter().any(|s| s.name == name))
        .map_err(anyhow::Error::msg)?;
    let grid = ParamGrid::for_method(args.method, &dims, &overrides).map_err(anyhow::Error::msg)?;
    let options = TuneOptions {
        grid,
        objective: args.objective,
        validation: args.validation,
        tune_on: args.tune_on.clone(),
        batch_size: args.run.batch_size,
    };
    let sets = open_sets(&args.input.id, &args.input.ood, &model.card.classes)?;
    eprintln!(
        "oodscope: tuning {} on {} ({}), {} settings, validation split = {}",
        args.method.title(),
        model.card.name,
        device_name(model.device),
        options.grid.len(),
        options.validation.describe()
    );
    let bar = progress_bar(0, args.run.quiet);
    let mut stage = None;
    let cancel = super::interrupt_flag();
    let result = tune(&model, fit.as_ref(), &sets, &options, cancel, &mut |p| {
        if stage != Some(p.stage) {
            stage = Some(p.stage);
            bar.reset();
            bar.set_length(p.total as u64);
            bar.set_message(match p.stage {
                Stage::Decoding => "decoding the validation split",
                Stage::Searching => "validation split × every setting (one gradient per step, one forward per ε)",
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
    let test_images = result.test_run.images.len();
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
    if let Some(path) = &args.save_detector {
        let metrics = result.test_evaluation.ood.iter().map(|o| (o.name.as_str(), &o.method));
        let sizes = result.test_split_scored();
        detector::save_from_search(
            detector::FromSearch {
                model: &model,
                fit: fit.as_ref(),
                settings: &result.chosen,
                calibration: detector::id_validation_splits(&sets, &result.splits),
                calibration_set: "the ID sets' validation split".into(),
                made_by: "tune",
                sets: result
                    .test_sets
                    .iter()
                    .zip(sizes)
                    .map(|(s, images)| SetSummary {
                        name: s.name.clone(),
                        role: format!("{} (test split)", s.role.name()),
                        images,
                    })
                    .collect(),
                metrics: Some(detector::metrics_seen(metrics)),
                false_alarm: args.false_alarm,
                run: &args.run,
            },
            path,
        )?;
    }
    Ok(())
}

/// `oodscope tune --from FILE`: the same protocol on a results file's saved outputs, with the fit
/// (`--fit`) and head given; ε stays 0 (a step needs the model's gradients).
fn tune_from(args: &TuneArgs, from: &Path) -> Result<()> {
    if args.save_detector.is_some() {
        anyhow::bail!("--save-detector needs the model: tune with --model to save the chosen detector");
    }
    if args.fit.train.is_some() {
        anyhow::bail!("--train needs the model: with --from, give a fit file (--fit)");
    }
    Paths::new()
        .output("--grid", args.grid.as_deref())
        .output("--heatmap", args.heatmap.as_deref())
        .check()
        .map_err(anyhow::Error::msg)?;
    let file = FromFile::open(from, args.fit.fit.as_deref(), args.input.head.as_deref())?;
    let dims = file.dims();
    let specs = args.method.params(&dims);
    let mut overrides = args
        .overrides(|name| specs.iter().any(|s| s.name == name))
        .map_err(anyhow::Error::msg)?;
    if let Some((_, epsilons)) = overrides.iter_mut().find(|(name, _)| name == "epsilon") {
        if !args.epsilons.is_empty() && args.epsilons.iter().any(|&e| e != 0.0) {
            anyhow::bail!("--epsilons: a results file re-scores only at ε = 0 (a step needs the model's gradients)");
        }
        *epsilons = vec![0.0];
    }
    let grid = ParamGrid::for_method(args.method, &dims, &overrides).map_err(anyhow::Error::msg)?;
    let options = TuneOptions {
        grid,
        objective: args.objective,
        validation: args.validation,
        tune_on: args.tune_on.clone(),
        batch_size: args.run.batch_size,
    };
    let sets = &file.results.sets;
    eprintln!(
        "oodscope: tuning {} from {} ({} rows, no model), {} settings, validation split = {}",
        args.method.title(),
        from.display(),
        file.results.run.images.len(),
        options.grid.len(),
        options.validation.describe()
    );
    let score = |outputs: &CachedOutputs, settings: &ScoreSettings| {
        rescore_stored(outputs, settings, file.fit.as_ref(), file.head.as_ref())
    };
    let bar = progress_bar(0, args.run.quiet);
    let result = tune_stored(
        &file.results.run,
        &file.outputs,
        sets,
        &options,
        &score,
        super::interrupt_flag(),
        &mut |p| {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
        },
    )?;
    bar.finish_and_clear();
    print!("{}", tune_summary(&file.name, &result, sets));
    if let Some(path) = &args.grid {
        write_output(path, grid_csv(&result, sets).as_bytes())?;
    }
    if let Some(path) = &args.heatmap {
        let png = tune_heatmap(&file.name, &result, sets).map_err(anyhow::Error::msg)?;
        write_output(path, &png)?;
    }
    Ok(())
}
