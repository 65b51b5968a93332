//! `oodscope compare`: every method on the same images in one pass, a leaderboard with near/far
//! groups, optionally each method tuned on the validation split; markdown, CSV, JSON and ROC outputs.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use super::detector;
use super::paths::Paths;
use super::{
    FitArgs, ResultsArgs, RunArgs, StreamedOutputs, interrupt_flag, open_sets, progress_bar, report_skipped,
    write_output,
};
use oodscope_engine::compare::groups::split_group;
use oodscope_engine::compare::selection::drop_unserved;
use oodscope_engine::compare::{CompareOptions, Leaderboard, TuneSpec, compare_into, parse_methods, select};
use oodscope_engine::deploy::SetSummary;
use oodscope_engine::detect::plan::dims_of;
use oodscope_engine::detect::{Method, Missing, Params, ScoreSettings};
use oodscope_engine::model::device_name;
use oodscope_engine::report::compare_files::{
    CompareContext, compare_report, leaderboard_csv, leaderboard_markdown, roc_overlay_png,
};
use oodscope_engine::results::RunDescription;
use oodscope_engine::score::Keep;
use oodscope_engine::tune::{Objective, ValidationSplit};

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// TorchScript model (.pt, with its card <stem>.toml beside it) or a card (.toml).
    #[arg(long, required_unless_present = "from")]
    pub model: Option<PathBuf>,
    /// In-distribution image folder (repeatable).
    #[arg(long, required_unless_present = "from")]
    pub id: Vec<String>,
    /// Out-of-distribution set, optionally in a group: [GROUP:]DIR, [GROUP:]uniform:N or
    /// [GROUP:]gaussian:N (repeatable), e.g. --ood near:data/cifar100 --ood far:data/svhn.
    #[arg(long, required_unless_present = "from")]
    pub ood: Vec<String>,
    /// Compare on a results file's saved logits and features instead, with no model: every method
    /// the file (with --fit and --head) can serve, and the file's own score columns as "external".
    #[arg(long, value_name = "FILE.parquet", conflicts_with_all = ["model", "id", "ood"])]
    pub from: Option<PathBuf>,
    /// With --from: the classifier head as .safetensors (`weight` [C, D], `bias` [C]) [default:
    /// the fit's, when it keeps one].
    #[arg(long, value_name = "FILE.safetensors", requires = "from")]
    pub head: Option<PathBuf>,
    /// The methods: `all`, or a comma-separated list (msp, the baseline, is always included).
    #[arg(long, default_value = "all")]
    pub methods: String,
    /// A method's parameter, METHOD.NAME=VALUE (repeatable), e.g. knn.k=100, odin.temperature=10
    /// [default: each method's defaults].
    #[arg(long = "param", value_name = "METHOD.NAME=VALUE")]
    pub params: Vec<String>,
    /// Search every method's parameters on the validation split (each method's own grid, as
    /// `oodscope methods` lists), and report the choices on the test split.
    #[arg(long)]
    pub tune: bool,
    /// With --tune: fpr95 (lower is better) or auroc (higher is better), on the validation split.
    #[arg(long, default_value = "fpr95")]
    pub objective: Objective,
    /// With --tune: the first N images of every set (e.g. 1000), or a fraction of each (e.g. 0.2).
    #[arg(long, default_value = "1000")]
    pub validation: ValidationSplit,
    #[command(flatten)]
    pub fit: FitArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub results: ResultsArgs,
    /// Write the report as JSON: settings, and per method its parameters, metrics per set and per group.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the leaderboard as printed (markdown).
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// Write the leaderboard as CSV: one row per method and OOD set, group and mean.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write per-image scores as CSV, one column per method.
    #[arg(long)]
    pub scores: Option<PathBuf>,
    /// Write every method's ROC curve (ID against all OOD sets pooled) on one PNG.
    #[arg(long)]
    pub roc: Option<PathBuf>,
    /// Save the leading method (best mean AUROC; its chosen parameters with --tune) as a detector
    /// file, δ calibrated on the ID sets' validation split (with --tune) or on the ID sets.
    #[arg(long, value_name = "FILE.oodsd")]
    pub save_detector: Option<PathBuf>,
    /// With --save-detector: δ for at most this false-alarm rate on new ID images [default: 0.05].
    #[arg(long, value_name = "ALPHA", requires = "save_detector")]
    pub false_alarm: Option<f64>,
}

/// Each method's given parameters, from `--param METHOD.NAME=VALUE`.
fn given_params(texts: &[String]) -> Result<Vec<(Method, Params)>> {
    let mut given: Vec<(Method, Params)> = Vec::new();
    for text in texts {
        let (qualified, _) = text.split_once('=').unwrap_or((text, ""));
        let Some((method, _)) = qualified.split_once('.') else {
            bail!("--param `{text}`: expected METHOD.NAME=VALUE, e.g. knn.k=100");
        };
        let method: Method = method.trim().parse().map_err(anyhow::Error::msg)?;
        let (name, value) =
            Params::parse_assignment(&text[text.find('.').map_or(0, |i| i + 1)..]).map_err(anyhow::Error::msg)?;
        match given.iter_mut().find(|(m, _)| *m == method) {
            Some((_, params)) if params.contains(&name) => {
                bail!("--param {method}.{name} is given twice: give each parameter once")
            }
            Some((_, params)) => params.set(&name, value),
            None => {
                let mut params = Params::new();
                params.set(&name, value);
                given.push((method, params));
            }
        }
    }
    Ok(given)
}

/// Runs `oodscope compare`.
pub fn compare_command(args: &CompareArgs) -> Result<()> {
    if let Some(from) = &args.from {
        return compare_from_file(args, from);
    }
    let model_path = args
        .model
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("give --model (or --from FILE.parquet)"))?;
    let ood_paths: Vec<String> = args.ood.iter().map(|spec| split_group(spec).1.to_string()).collect();
    let mut paths = Paths::new();
    paths
        .model("--model", model_path)
        .sets("--id", &args.id)
        .sets("--ood", &ood_paths);
    args.fit
        .inputs(&mut paths)
        .output("--results", args.results.results.as_deref())
        .output("--scores", args.scores.as_deref())
        .output("--report", args.report.as_deref())
        .output("--table", args.table.as_deref())
        .output("--csv", args.csv.as_deref())
        .output("--roc", args.roc.as_deref())
        .output("--save-detector", args.save_detector.as_deref())
        .check()
        .map_err(anyhow::Error::msg)?;
    let requested = parse_methods(&args.methods).map_err(anyhow::Error::msg)?;
    let given = given_params(&args.params)?;
    if args.tune && (args.results.shard.is_some() || args.results.results.is_some()) {
        bail!(
            "--tune chooses parameters on a validation split of the whole sets: run it without --shard and --results, then compare at the chosen parameters (--param) with them"
        );
    }
    if args.save_detector.is_some() && args.results.shard.is_some() {
        bail!("--save-detector needs the whole comparison: run it without --shard");
    }
    let model = args.run.load_model(model_path)?;
    args.results.check(&model)?;
    let has_fit = args.fit.train.is_some() || args.fit.fit.is_some();
    let mut selection = select(&requested, &model.capabilities(), has_fit);
    if let Some((method, _)) = given.iter().find(|(m, _)| !selection.supported.contains(m)) {
        bail!("--param for `{method}`, which this comparison does not run");
    }
    if selection.supported.is_empty() {
        let reasons: Vec<String> = selection
            .unsupported
            .iter()
            .map(|u| format!("{}: {}", u.method, u.missing.short()))
            .collect();
        bail!(
            "{} supports none of the requested methods ({})",
            model.card.name,
            reasons.join("; ")
        );
    }
    let dims = dims_of(&model);
    let defaults: Vec<ScoreSettings> = selection
        .supported
        .iter()
        .map(|&m| ScoreSettings::default_for(m, &dims))
        .collect();
    let fit = args.fit.obtain(&model, &defaults, &args.run)?;
    // A method whose statistics the fit lacks is not run (and says why) rather than failing the rest.
    drop_unserved(&mut selection, fit.as_ref());
    if let Some((method, _)) = given.iter().find(|(m, _)| !selection.supported.contains(m)) {
        let missing = selection
            .unsupported
            .iter()
            .find(|u| u.method == *method)
            .map_or(Missing::FitContent, |u| u.missing);
        bail!(
            "--param for `{method}`: {}",
            missing.message(method.name(), &model.card.name)
        );
    }
    let dims = oodscope_engine::detect::plan::dims_with_fit(&model, fit.as_ref());
    let settings = selection
        .supported
        .iter()
        .map(|&m| {
            let params = given
                .iter()
                .find(|(g, _)| *g == m)
                .map(|(_, p)| p.clone())
                .unwrap_or_default();
            ScoreSettings::new(m, &params, &dims).map_err(anyhow::Error::msg)
        })
        .collect::<Result<Vec<_>>>()?;

    let (groups, specs): (Vec<Option<String>>, Vec<String>) = args
        .ood
        .iter()
        .map(|spec| {
            let (group, rest) = split_group(spec);
            (group, rest.to_string())
        })
        .unzip();
    let whole = open_sets(&args.id, &specs, &model.card.classes)?;
    let sets = args.results.shard_sets(&whole, args.run.batch_size);
    // Groups per set: none for the ID sets, which come first.
    let groups: Vec<Option<String>> = std::iter::repeat_n(None, args.id.len()).chain(groups).collect();

    let total: usize = sets.iter().map(oodscope_data::ImageSet::len).sum();
    let names: Vec<&str> = settings.iter().map(|s| s.method.name()).collect();
    eprintln!(
        "oodscope: comparing {} methods on {} ({}), {total} images in {} sets{}{}: {}",
        settings.len(),
        model.card.name,
        device_name(model.device),
        sets.len(),
        args.results.shard.map(|s| format!(", shard {s}")).unwrap_or_default(),
        if args.tune {
            ", each tuned on the validation split"
        } else {
            ""
        },
        names.join(", ")
    );
    for u in &selection.unsupported {
        eprintln!("  not run: {}", u.missing.message(u.method.name(), &model.card.name));
    }
    // Tuned, the run drops the noise sets' validation images at the end: its CSV is written then.
    let streamed_scores = args.scores.as_deref().filter(|_| !args.tune);
    let mut outputs = StreamedOutputs::create(
        args.results.results.as_deref(),
        streamed_scores,
        &RunDescription {
            command: "compare",
            model: &model,
            model_path,
            methods: &settings,
            fit: fit.as_ref(),
            shard: args.results.shard_or_whole(),
            whole_sets: &whole,
            groups: &groups,
            save_logits: args.results.save_logits,
            save_features: args.results.save_features,
            batch_size: args.run.batch_size,
        },
    )?;
    drop(whole);
    let options = CompareOptions {
        settings,
        tune: args.tune.then_some(TuneSpec {
            objective: args.objective,
            validation: args.validation,
        }),
        batch_size: args.run.batch_size,
        keep_features: args.results.save_features,
    };
    let bar = progress_bar(0, args.run.quiet);
    let mut stage = None;
    let cancel = interrupt_flag();
    let mut progress = |p: oodscope_engine::compare::CompareProgress| {
        if stage != Some(p.stage) {
            stage = Some(p.stage);
            bar.reset();
            bar.set_length(p.total as u64);
            bar.set_message(p.stage.describe());
        }
        bar.set_position(p.done as u64);
    };
    let outcome = compare_into(
        &model,
        fit.as_ref(),
        &sets,
        &options,
        cancel,
        &mut progress,
        Keep::SCORES,
        &mut outputs.sinks(),
    );
    bar.finish_and_clear();
    let result = outcome?;
    report_skipped(&result.run, &result.sets);

    let board = Leaderboard::new(&result.run, &result.sets, &groups);
    let table = leaderboard_markdown(&model.card.name, &board, &result, &selection.unsupported);
    if let Some(note) = args.results.shard_note() {
        print!("{note}");
    }
    print!("{table}");
    let images = result.run.images.len() + result.run.skipped.len();
    eprintln!(
        "scored {images} images with {} methods in {:.2} s ({})",
        result.run.methods.len(),
        result.run.elapsed.as_secs_f64(),
        super::score::rate(images, result.run.elapsed.as_secs_f64())
    );
    if let Some(path) = &args.table {
        write_output(path, table.as_bytes())?;
    }
    if let Some(path) = &args.csv {
        write_output(path, &leaderboard_csv(&board).map_err(anyhow::Error::msg)?)?;
    }
    outputs.finish(&result.run, &result.sets)?;
    if let (Some(path), None) = (&args.scores, streamed_scores) {
        let bytes = oodscope_engine::report::csv::scores_csv(&result.run, &result.sets, &model.card.classes)
            .map_err(anyhow::Error::msg)?;
        write_output(path, &bytes)?;
    }
    if let Some(path) = &args.report {
        let ctx = CompareContext {
            model_path: model_path.display().to_string(),
            model_name: &model.card.name,
            device: device_name(model.device),
            batch_size: args.run.batch_size,
            fit: fit.as_ref().map(|f| f.info.to_json()),
            unsupported: &selection.unsupported,
        };
        let report = compare_report(&ctx, &board, &result, &groups);
        write_output(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if let Some(path) = &args.roc {
        let png = roc_overlay_png(&model.card.name, &board, &result).map_err(anyhow::Error::msg)?;
        write_output(path, &png)?;
    }
    if let Some(path) = &args.save_detector {
        save_leader(args, &model, fit.as_ref(), &sets, &board, &result, path)?;
    }
    Ok(())
}

/// `compare --from FILE`: the file's outputs compared with no model.
fn compare_from_file(args: &CompareArgs, from: &std::path::Path) -> Result<()> {
    let mut paths = Paths::new();
    paths.input("--from", Some(from));
    args.fit
        .inputs(&mut paths)
        .input("--head", args.head.as_deref())
        .output("--scores", args.scores.as_deref())
        .output("--report", args.report.as_deref())
        .output("--table", args.table.as_deref())
        .output("--csv", args.csv.as_deref())
        .output("--roc", args.roc.as_deref())
        .check()
        .map_err(anyhow::Error::msg)?;
    if args.tune || args.save_detector.is_some() || args.results.results.is_some() || args.fit.train.is_some() {
        bail!(
            "--from compares a results file's saved outputs: --tune, --save-detector, --results and --train need the model; give --fit FILE for the methods that need a fit"
        );
    }
    let given = given_params(&args.params)?;
    super::from_file::compare_from(&super::from_file::CompareFrom {
        from,
        fit: args.fit.fit.as_deref(),
        head: args.head.as_deref(),
        methods: &args.methods,
        given: &given,
        table: args.table.as_deref(),
        csv: args.csv.as_deref(),
        scores: args.scores.as_deref(),
        report: args.report.as_deref(),
        roc: args.roc.as_deref(),
    })
}

/// `--save-detector`: the leaderboard's first method, calibrated on the ID sets' validation split
/// (tuned) or on the ID sets themselves (then not held out: the manifest says so).
fn save_leader(
    args: &CompareArgs,
    model: &oodscope_engine::model::Model,
    fit: Option<&oodscope_engine::stats::Fit>,
    sets: &[oodscope_data::ImageSet],
    board: &Leaderboard,
    result: &oodscope_engine::compare::CompareResult,
    path: &std::path::Path,
) -> Result<()> {
    let Some(leader) = board.leading_method() else {
        bail!("--save-detector: no method has metrics on every OOD set");
    };
    let (calibration, calibration_set) = match &result.tuning {
        Some(tuning) => (
            detector::id_validation_splits(sets, &tuning.splits),
            "the ID sets' validation split".to_string(),
        ),
        None => (
            sets.iter()
                .filter(|s| s.role == oodscope_data::Role::Id)
                .cloned()
                .collect(),
            "the ID sets (also compared on: not held out)".to_string(),
        ),
    };
    let metrics = board.sets.iter().map(|s| s.name.as_str()).zip(&leader.per_set);
    detector::save_from_search(
        detector::FromSearch {
            model,
            fit,
            settings: &leader.settings,
            calibration,
            calibration_set,
            made_by: "compare",
            sets: board
                .sets
                .iter()
                .map(|s| SetSummary {
                    name: s.name.clone(),
                    role: "ood".into(),
                    images: s.count,
                })
                .collect(),
            metrics: Some(detector::metrics_seen(metrics)),
            false_alarm: args.false_alarm,
            run: &args.run,
        },
        path,
    )
}
