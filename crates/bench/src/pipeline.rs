//! Throughput of `run_scoring` end to end, and of the plan's `score_batch` over preloaded tensors
//! (the ceiling); of one method, or of several in one plan (`--methods`, with a fit made beforehand).

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use rayon::prelude::*;
use serde_json::json;
use tch::{Kind, Tensor};

use super::{PipelineArgs, Report};
use oodscope_data::{ImageSet, Role, SetSource, decode_file};
use oodscope_engine::detect::plan::{Plan, dims_of, dims_with_fit};
use oodscope_engine::fit::cache::bank_budget;
use oodscope_engine::model::{Model, device_name, set_model_threads};
use oodscope_engine::pipeline::{DecodeSchedule, StageTimes};
use oodscope_engine::score::{Method, ScoreSettings, run_scoring_with};
use oodscope_engine::stats::Fit;

/// The settings of a benchmarked method at its defaults (ODIN: T = 1000, ε = 0.0014).
pub fn settings_for(method: Method, model: &Model) -> ScoreSettings {
    ScoreSettings::default_for(method, &dims_of(model))
}

/// The methods `spec` names at their defaults: a comma-separated list, or `all-posthoc`: every
/// registered method the model supports (with the fit, when there is one) that takes no input step
/// at its defaults, in menu order.
pub fn methods_for(spec: &str, model: &Model, fit: Option<&Fit>) -> Result<Vec<ScoreSettings>> {
    let dims = dims_with_fit(model, fit);
    if spec == "all-posthoc" {
        if fit.is_none() {
            bail!("--methods all-posthoc needs --fit FILE (the feature methods need a fit)");
        }
        return Ok(Method::supported_by(&model.capabilities(), true)
            .into_iter()
            .map(|m| ScoreSettings::default_for(m, &dims))
            .filter(|s| !s.needs_gradient())
            .collect());
    }
    spec.split(',')
        .map(|name| {
            let method: Method = name.trim().parse().map_err(anyhow::Error::msg)?;
            Ok(ScoreSettings::default_for(method, &dims))
        })
        .collect()
}

pub fn run(args: &PipelineArgs) -> Report {
    let model = Model::load(&args.model, args.device)?;
    let fit = args
        .fit
        .as_ref()
        .map(|path| Fit::load(path, &model, bank_budget()))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let methods = match &args.methods {
        Some(spec) => methods_for(spec, &model, fit.as_ref())?,
        None => vec![settings_for(args.method, &model)],
    };
    if methods.is_empty() {
        bail!("no methods to score");
    }
    let plan = Plan::new(&model, methods.clone(), fit.as_ref()).map_err(anyhow::Error::msg)?;
    set_model_threads(args.threads, model.device);
    let mut sets = Vec::new();
    for (specs, role) in [(&args.id, Role::Id), (&args.ood, Role::Ood)] {
        for spec in specs {
            sets.push(ImageSet::open(spec, role, &model.card.classes)?);
        }
    }
    let images: usize = sets.iter().map(ImageSet::len).sum();
    warm_up(&plan, args.batch_size)?;
    let schedule = match args.schedule.as_deref() {
        Some("in-turn") => DecodeSchedule::InTurn,
        Some(_) => DecodeSchedule::Overlapped,
        None => DecodeSchedule::for_device(model.device),
    };
    let mut stages = None;
    let mut mean_scores = None;
    let (seconds, decode_seconds, scores) = if args.preloaded {
        let start = Instant::now();
        let pixels = decode_all(&model, &sets)?;
        let decode_seconds = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let scores = score_preloaded(&plan, &pixels, args.batch_size)?;
        (start.elapsed().as_secs_f64(), Some(decode_seconds), scores)
    } else {
        let start = Instant::now();
        let run = run_scoring_with(
            &plan,
            &sets,
            args.batch_size,
            schedule,
            &AtomicBool::new(false),
            &mut |_| {},
        )?;
        if !run.skipped.is_empty() {
            bail!(
                "{} files were skipped (first: {})",
                run.skipped.len(),
                run.skipped[0].path
            );
        }
        let seconds = start.elapsed().as_secs_f64();
        stages = Some(stage_seconds(&run.stages));
        mean_scores = Some(run.columns.iter().map(|c| mean(c)).collect::<Vec<f64>>());
        (seconds, None, run.scores().to_vec())
    };
    let mean_score = mean(&scores);
    Ok(json!({
        "kind": if args.preloaded { "preloaded" } else { "end_to_end" },
        "method": args.methods.clone().unwrap_or_else(|| args.method.name().to_string()),
        "methods": methods.iter().map(|s| s.method.name()).collect::<Vec<_>>(),
        "settings": methods.iter().map(ScoreSettings::describe).collect::<Vec<_>>().join("; "),
        "fit": args.fit.as_ref().map(|p| p.display().to_string()),
        "bank_on_disk": fit.as_ref().and_then(|f| f.bank.as_ref()).map(oodscope_engine::stats::Bank::on_disk),
        "images": images,
        "batch_size": args.batch_size,
        "seconds": seconds,
        "images_per_s": images as f64 / seconds,
        "decode_all_seconds": decode_seconds,
        "malloc_defaults": args.malloc_defaults,
        "schedule": if args.preloaded { None } else { Some(format!("{schedule:?}")) },
        "stage_seconds": stages,
        "mean_score": mean_score,
        "mean_scores": mean_scores,
        "model_threads": tch::get_num_threads(),
        "decode_threads": schedule.decode_threads(),
        "device": device_name(model.device),
    }))
}

fn mean(scores: &[f32]) -> f64 {
    scores.iter().map(|&s| f64::from(s)).sum::<f64>() / scores.len().max(1) as f64
}

/// The run's stage times in seconds.
fn stage_seconds(stages: &StageTimes) -> serde_json::Value {
    json!({
        "decode": stages.decode.as_secs_f64(),
        "to_device": stages.to_device.as_secs_f64(),
        "model": stages.model.as_secs_f64(),
    })
}

/// Two batches of zeros through the model, so that TorchScript's first-call work is not timed.
pub fn warm_up(plan: &Plan, batch_size: usize) -> Result<()> {
    let [c, h, w] = plan.model.card.input_shape();
    let x = Tensor::zeros([batch_size as i64, c, h, w], (Kind::Float, plan.model.device));
    for _ in 0..2 {
        plan.score_batch(&x)?;
    }
    Ok(())
}

/// Every image of every set decoded and preprocessed (rayon), concatenated in run order.
pub fn decode_all(model: &Model, sets: &[ImageSet]) -> Result<Vec<f32>> {
    let pre = model.card.preprocess();
    let mut pixels = Vec::new();
    for set in sets {
        let SetSource::Folder { files, .. } = &set.source else {
            bail!("{}: the preloaded benchmark takes folders only", set.name);
        };
        let decoded: Vec<Result<Vec<f32>>> = files
            .par_iter()
            .map(|f| decode_file(&f.path, &pre).map_err(|e| anyhow!("{}: {}", f.path.display(), e.0)))
            .collect();
        for image in decoded {
            pixels.extend_from_slice(&image?);
        }
    }
    Ok(pixels)
}

/// Scores preloaded pixels in batches exactly as `run_scoring` does; returns the scores.
pub fn score_preloaded(plan: &Plan, pixels: &[f32], batch_size: usize) -> Result<Vec<f32>> {
    let model = plan.model;
    let [c, h, w] = model.card.input_shape();
    let per_image = (c * h * w) as usize;
    let mut scores = Vec::with_capacity(pixels.len() / per_image);
    for chunk in pixels.chunks(batch_size.max(1) * per_image) {
        let x = Tensor::from_slice(chunk)
            .view([(chunk.len() / per_image) as i64, c, h, w])
            .to_kind(Kind::Float)
            .to_device(model.device);
        let batch = plan.score_batch(&x)?;
        scores.extend(batch.scores.into_iter().next().unwrap_or_default());
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oodscope_engine::model::DeviceChoice;

    /// The preloaded path scores exactly what the streaming pipeline scores.
    #[test]
    fn preloaded_scores_equal_run_scoring() {
        let root = oodscope_engine::assets_root();
        let model = Model::load(&root.join("models/fmnist-resnet.pt"), DeviceChoice::Cpu).unwrap();
        let files = |dir: &str| {
            let mut paths: Vec<_> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            paths.sort();
            paths.truncate(70);
            paths
        };
        let sets = vec![
            ImageSet::from_files("id", Role::Id, &files("assets/demo/fmnist-test/bag")),
            ImageSet::from_files("ood", Role::Ood, &files("assets/demo/mnist")),
        ];
        let pixels = decode_all(&model, &sets).unwrap();
        for method in ["msp", "odin"] {
            let settings = settings_for(Method::named(method), &model);
            let plan = Plan::single(&model, &settings, None).unwrap();
            let run =
                oodscope_engine::score::run_scoring(&plan, &sets, 32, &AtomicBool::new(false), &mut |_| {}).unwrap();
            let streamed = run.scores().to_vec();
            let preloaded = score_preloaded(&plan, &pixels, 32).unwrap();
            assert_eq!(streamed.len(), 140);
            assert_eq!(streamed, preloaded, "{method:?}");
        }
    }
}
