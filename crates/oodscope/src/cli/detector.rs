//! `oodscope detector save` and `oodscope detector show`: a method, its parameters and δ (chosen
//! for a target false-alarm rate on held-out ID calibration images, or given) written to one
//! `.oodsd` file, and such a file described. `tune` and `compare` save one with `--save-detector`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use super::paths::Paths;
use super::{FitArgs, MethodArgs, RunArgs, progress_bar, report_skipped, write_output_note};
use oodscope_data::{ImageSet, Role};
use oodscope_engine::deploy::{Calibration, Manifest, SaveRequest, SetSummary, default_name, open, save};
use oodscope_engine::detect::plan::{Plan, dims_of};
use oodscope_engine::model::{Model, device_name};
use oodscope_engine::pipeline::DecodeSchedule;
use oodscope_engine::score::{Keep, Method, ScoreSettings, run_scoring_into};
use oodscope_engine::stats::Fit;

#[derive(Debug, Subcommand)]
pub enum DetectorCommand {
    /// Calibrate a method on held-out ID images and save it, with δ, as one detector file.
    Save(Box<SaveArgs>),
    /// Describe a detector file: method, parameters, δ and its rule, model, fit, provenance.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct DetectorArgs {
    #[command(subcommand)]
    pub command: DetectorCommand,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// TorchScript model (.pt, with its card <stem>.toml beside it) or a card (.toml).
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub fit: FitArgs,
    /// The scoring method (`oodscope methods` lists them).
    #[arg(long, default_value = "msp")]
    pub method: Method,
    #[command(flatten)]
    pub params: MethodArgs,
    /// ID images held out from everything else (training, fitting, tuning): δ and the p-values come
    /// from their scores.
    #[arg(long, value_name = "DIR")]
    pub calibration: PathBuf,
    /// Choose δ so that at most this share of new ID images is flagged OOD (conformal rule)
    /// [default: 0.05].
    #[arg(long, value_name = "ALPHA", conflicts_with = "threshold")]
    pub false_alarm: Option<f64>,
    /// Use this δ (score ≥ δ → ID) instead of choosing it.
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub threshold: Option<f64>,
    /// The detector's name (a server's model name) [default: <card name>-<method>].
    #[arg(long)]
    pub name: Option<String>,
    /// Put the model, its card and its head inside the file (else: a path relative to the detector
    /// and a hash).
    #[arg(long)]
    pub embed_model: bool,
    /// The detector file to write.
    #[arg(long, value_name = "FILE.oodsd")]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The detector file.
    pub file: PathBuf,
    /// The whole manifest as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn detector_command(args: &DetectorArgs) -> Result<()> {
    match &args.command {
        DetectorCommand::Save(a) => save_command(a),
        DetectorCommand::Show(a) => show_command(a),
    }
}

/// How δ is chosen: `--false-alarm` (default 0.05) or `--threshold`.
pub(crate) fn calibrate(scores: Vec<f32>, false_alarm: Option<f64>, threshold: Option<f64>) -> Result<Calibration> {
    match threshold {
        Some(t) => Calibration::given(scores, t as f32),
        None => Calibration::conformal(scores, false_alarm.unwrap_or(0.05)),
    }
    .map_err(anyhow::Error::msg)
}

fn save_command(args: &SaveArgs) -> Result<()> {
    let mut paths = Paths::new();
    paths
        .model("--model", &args.model)
        .input("--calibration", args.calibration.as_path());
    args.fit
        .inputs(&mut paths)
        .output("--out", Some(args.out.as_path()))
        .check()
        .map_err(anyhow::Error::msg)?;
    if let Some(name) = &args.name {
        oodscope_engine::deploy::check_name(name).map_err(anyhow::Error::msg)?;
    }
    if let Some(alpha) = args.false_alarm
        && !(alpha > 0.0 && alpha < 1.0)
    {
        bail!("--false-alarm must be between 0 and 1 (exclusive), not {alpha}");
    }
    let given = args.params.given().map_err(anyhow::Error::msg)?;
    let model = args.run.load_model(&args.model)?;
    let settings = ScoreSettings::new(args.method, &given, &dims_of(&model)).map_err(anyhow::Error::msg)?;
    if let Some(missing) = args.method.missing(&model.capabilities(), true) {
        bail!(missing.message(args.method.name(), &model.card.name));
    }
    let fit = args.fit.obtain(&model, std::slice::from_ref(&settings), &args.run)?;
    let set = ImageSet::open(&args.calibration.display().to_string(), Role::Id, &model.card.classes)
        .context("calibration set")?;
    eprintln!(
        "oodscope: calibrating {} on {} ({}) with {} images of {}",
        settings.describe(),
        model.card.name,
        device_name(model.device),
        set.len(),
        args.calibration.display()
    );
    let (scores, skipped) = calibration_scores(&model, fit.as_ref(), &settings, std::slice::from_ref(&set), &args.run)?;
    let calibration = calibrate(scores, args.false_alarm, args.threshold)?;
    let name = args.name.clone().unwrap_or_else(|| default_name(&model, &settings));
    let request = SaveRequest {
        name,
        model: &model,
        settings: &settings,
        fit: fit.as_ref(),
        calibration: &calibration,
        calibration_set: args.calibration.display().to_string(),
        calibration_skipped: skipped,
        embed_model: args.embed_model,
        made_by: "detector save".into(),
        sets: vec![SetSummary {
            name: set.name.clone(),
            role: "calibration".into(),
            images: calibration.scores.len(),
        }],
        metrics: None,
    };
    let manifest = save(&request, &args.out)?;
    write_output_note(&args.out);
    print!("{}", describe(&manifest, &args.out));
    Ok(())
}

/// What `tune --save-detector` and `compare --save-detector` save: the chosen (or leading) method,
/// calibrated on the ID images of their validation split.
pub(crate) struct FromSearch<'a> {
    pub model: &'a Model,
    pub fit: Option<&'a Fit>,
    pub settings: &'a ScoreSettings,
    /// The calibration images (the ID sets' validation splits), and how they are described.
    pub calibration: Vec<ImageSet>,
    pub calibration_set: String,
    pub made_by: &'static str,
    pub sets: Vec<SetSummary>,
    pub metrics: Option<serde_json::Value>,
    pub false_alarm: Option<f64>,
    pub run: &'a RunArgs,
}

/// Calibrates and saves a searched method to `out`.
pub(crate) fn save_from_search(from: FromSearch, out: &Path) -> Result<()> {
    eprintln!(
        "oodscope: calibrating {} for the detector on {} ({} images)",
        from.settings.describe(),
        from.calibration_set,
        from.calibration.iter().map(ImageSet::len).sum::<usize>()
    );
    let (scores, skipped) = calibration_scores(from.model, from.fit, from.settings, &from.calibration, from.run)?;
    let calibration = calibrate(scores, from.false_alarm, None)?;
    let mut sets = vec![SetSummary {
        name: from.calibration_set.clone(),
        role: "calibration".into(),
        images: calibration.scores.len(),
    }];
    sets.extend(from.sets);
    let request = SaveRequest {
        name: default_name(from.model, from.settings),
        model: from.model,
        settings: from.settings,
        fit: from.fit,
        calibration: &calibration,
        calibration_set: from.calibration_set,
        calibration_skipped: skipped,
        embed_model: false,
        made_by: from.made_by.into(),
        sets,
        metrics: from.metrics,
    };
    let manifest = save(&request, out)?;
    write_output_note(out);
    eprint!("{}", describe(&manifest, out));
    Ok(())
}

/// The first `validation` images of each ID set (the validation split of `tune` and `compare`).
pub(crate) fn id_validation_splits(
    sets: &[ImageSet],
    splits: &[oodscope_engine::tune::split::SetSplit],
) -> Vec<ImageSet> {
    sets.iter()
        .zip(splits)
        .filter(|(set, split)| set.role == Role::Id && split.validation > 0)
        .map(|(set, split)| set.block(0..split.validation, true))
        .collect()
}

/// Per OOD set, the metrics a detector was chosen with (for its provenance).
pub(crate) fn metrics_seen<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a Result<oodscope_metrics::DetectionMetrics, String>)>,
) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = entries
        .into_iter()
        .map(|(name, metrics)| {
            let value = match metrics {
                Ok(m) => serde_json::json!({
                    "fpr_at_95_tpr": m.fpr_at_95_tpr,
                    "detection_error": m.detection_error,
                    "auroc": m.auroc,
                    "aupr_in": m.aupr_in,
                    "aupr_out": m.aupr_out,
                }),
                Err(e) => serde_json::json!({ "error": e }),
            };
            (name.to_string(), value)
        })
        .collect();
    serde_json::Value::Object(map)
}

/// The scores of calibration sets at `settings`, and how many of their files were skipped.
pub(crate) fn calibration_scores(
    model: &Model,
    fit: Option<&Fit>,
    settings: &ScoreSettings,
    sets: &[ImageSet],
    run_args: &RunArgs,
) -> Result<(Vec<f32>, usize)> {
    let plan = Plan::single(model, settings, fit)?;
    let total: usize = sets.iter().map(ImageSet::len).sum();
    let bar = progress_bar(total as u64, run_args.quiet);
    let run = run_scoring_into(
        &plan,
        sets,
        run_args.batch_size,
        DecodeSchedule::for_device(model.device),
        super::interrupt_flag(),
        &mut |p| bar.set_position(p.done as u64),
        Keep::SCORES,
        &mut [],
    )?;
    bar.finish_and_clear();
    report_skipped(&run, sets);
    let skipped = run.skipped.len() + sets.iter().map(|s| s.unreadable.len()).sum::<usize>();
    Ok((run.scores().to_vec(), skipped))
}

fn show_command(args: &ShowArgs) -> Result<()> {
    let (_, manifest) = open(&args.file)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&manifest)?);
    } else {
        print!("{}", describe(&manifest, &args.file));
    }
    Ok(())
}

/// The manifest as a person reads it.
pub(crate) fn describe(m: &Manifest, path: &Path) -> String {
    let d = &m.decision;
    let params: Vec<String> = m
        .method
        .params
        .iter()
        .map(|(k, v)| format!("{k}={}", oodscope_engine::detect::params::fmt_value(v)))
        .collect();
    let chosen = match d.false_alarm {
        Some(alpha) => format!(
            "chosen for a false-alarm rate ≤ {alpha} (conformal rule on {} held-out ID images)",
            d.calibration_images
        ),
        None => format!("given; p-values against {} calibration images", d.calibration_images),
    };
    let model = if m.model.embedded {
        format!(
            "{} (embedded: {}), sha256 {}",
            m.model.name,
            m.model.file_name,
            short(&m.model.sha256)
        )
    } else {
        format!(
            "{} at {} (relative to the detector), sha256 {}",
            m.model.name,
            m.model.path,
            short(&m.model.sha256)
        )
    };
    let mut out = format!(
        "detector {}: {}\n  method     {} {}\n  decision   score ≥ {} → ID, below → OOD; δ {chosen}\n  calibration {} ({} skipped)\n  model      {model}\n  classes    {}\n",
        path.display(),
        m.name,
        m.method.method.name(),
        if params.is_empty() {
            "(no parameters)".to_string()
        } else {
            params.join(" ")
        },
        d.threshold,
        d.calibration_set,
        d.calibration_skipped,
        m.model.classes.len(),
    );
    if let Some(fit) = &m.fit {
        out.push_str(&format!(
            "  fit        {} images of {}; kept: {}\n",
            fit.images,
            fit.train_root,
            fit.tensors.join(", ")
        ));
    }
    let p = &m.provenance;
    out.push_str(&format!(
        "  made       by oodscope {} ({}) on {}\n",
        p.oodscope_version, p.made_by, p.created
    ));
    for s in &p.sets {
        out.push_str(&format!("  set        {} ({}, {} images)\n", s.name, s.role, s.images));
    }
    if let Some(metrics) = &p.metrics {
        out.push_str(&format!("  metrics    {metrics}\n"));
    }
    out
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}
