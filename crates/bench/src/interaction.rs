//! Milliseconds per GUI interaction on synthetic scores: a threshold move, a change of T with ε = 0
//! (re-scoring cached logits, as the worker does) and a ROC/PR recompute; medians over repetitions.

use oodscope_data::rng::SplitMix64;
use std::hint::black_box;
use std::time::Instant;

use anyhow::{Result, bail};
use serde_json::json;

use super::{InteractionArgs, Report};
use oodscope_engine::detect::Context;
use oodscope_engine::detect::cache::{CachedOutputs, rescore};
use oodscope_engine::model::ModelCard;
use oodscope_engine::score::{Method, ScoreSettings};
use oodscope_metrics::{SortedScores, histogram, shared_range};

/// Histogram bins, as the GUI's default.
const BINS: usize = 60;
const CLASSES: usize = 10;

pub fn run(args: &InteractionArgs) -> Report {
    if args.scores < 10 || args.repeats == 0 {
        bail!("need at least 10 scores and one repetition");
    }
    let mut rng = SplitMix64(0x5eed);
    let n_id = args.scores * 2 / 5;
    let n_ood = (args.scores - n_id) / 3;
    let id: Vec<f32> = (0..n_id)
        .map(|_| (1.0 + 1.0 * rng.next_standard_normal()) as f32)
        .collect();
    let oods: Vec<Vec<f32>> = (0..3)
        .map(|k| {
            (0..n_ood)
                .map(|_| (-0.5 * k as f64 + 1.0 * rng.next_standard_normal()) as f32)
                .collect()
        })
        .collect();
    let logits: Vec<f32> = (0..args.scores * CLASSES)
        .map(|_| (0.0 + 3.0 * rng.next_standard_normal()) as f32)
        .collect();

    let sorted: Vec<SortedScores> = oods
        .iter()
        .map(|ood| SortedScores::new(&id, ood))
        .collect::<Result<_, _>>()?;
    let all: Vec<&[f32]> = std::iter::once(id.as_slice())
        .chain(oods.iter().map(Vec::as_slice))
        .collect();
    let Some((lo, hi)) = shared_range(&all) else {
        bail!("no finite scores");
    };

    let threshold_ms = median_ms(args.repeats, |rep| {
        let threshold = lo + (hi - lo) * (rep as f32 + 0.5) / args.repeats as f32;
        threshold_move(&sorted, &all, threshold, lo, hi)
    });
    let cached = CachedOutputs {
        rows: logits.len() / CLASSES,
        logits,
        logit_width: CLASSES,
        ..CachedOutputs::default()
    };
    let card = synthetic_card()?;
    let ctx = Context {
        card: &card,
        head: None,
        fit: None,
        device: tch::Device::Cpu,
    };
    let odin = Method::named("odin");
    let rescore_ms = median_ms(args.repeats, |rep| {
        let settings = ScoreSettings::default_for(odin, &Default::default())
            .with("temperature", 1.0 + rep as f64 * 10.0)
            .with("epsilon", 0.0);
        black_box(rescore(&ctx, &cached, &settings).map_or(0, |s| s.len()))
    });
    let curves_ms = median_ms(args.repeats, |_| {
        oods.iter()
            .filter_map(|ood| SortedScores::new(&id, ood).ok())
            .map(|s| black_box(s.curves()).roc.len())
            .sum()
    });
    Ok(json!({
        "kind": "interaction",
        "scores": n_id + 3 * n_ood,
        "sets": format!("{n_id} ID + 3 x {n_ood} OOD"),
        "repeats": args.repeats,
        "threshold_move_ms": threshold_ms,
        "t_rescore_ms": rescore_ms,
        "roc_pr_recompute_ms": curves_ms,
    }))
}

/// A card for the synthetic logits (the detectors read the class count from it).
fn synthetic_card() -> Result<ModelCard> {
    let classes: Vec<String> = (0..CLASSES).map(|c| format!("\"c{c}\"")).collect();
    let text = format!(
        "input = [1, 8, 8]\nmean = [0.5]\nstd = [0.25]\nclasses = [{}]\noutputs = \"logits\"\n",
        classes.join(", ")
    );
    Ok(ModelCard::parse(&text, std::path::Path::new("synthetic.toml"))?)
}

/// What a moved δ costs: an operating point per OOD set (binary search on the sorted scores), the
/// histogram bins of every set, and the ID/OOD verdict counts of every set.
fn threshold_move(sorted: &[SortedScores], all: &[&[f32]], threshold: f32, lo: f32, hi: f32) -> usize {
    let points: Vec<_> = sorted.iter().map(|s| s.operating_point(threshold)).collect();
    let bins: Vec<Vec<u32>> = all.iter().map(|set| histogram(set, lo, hi, BINS)).collect();
    let mut verdicts = vec![sorted[0].id().len() - sorted[0].id().partition_point(|&s| s <= threshold)];
    verdicts.extend(
        sorted
            .iter()
            .map(|s| s.ood().len() - s.ood().partition_point(|&v| v <= threshold)),
    );
    black_box(&points);
    black_box(&bins);
    black_box(verdicts).len()
}

/// Median wall time in milliseconds of `repeats` calls of `f(repetition)`.
fn median_ms(repeats: usize, mut f: impl FnMut(usize) -> usize) -> f64 {
    let mut times: Vec<f64> = (0..repeats)
        .map(|rep| {
            let start = Instant::now();
            black_box(f(rep));
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
