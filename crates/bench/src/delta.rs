//! Milliseconds per δ move in the window on a results file (`results-delta`): the file opened as
//! the window opens it (scores only), its first column made the app's result and derived view,
//! then per δ what a frame does that depends on δ: each OOD set's operating point and verdict
//! counts (binary searches on the sorted scores) and the gallery's verdict filter (a binary search
//! on its cached score order). For comparison, the full passes a frame made before: the gallery's
//! filter and sort, and the metrics table's ID accuracy.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use serde_json::json;

use super::Report;
use oodscope_engine::results::{Load, open_with};
use oodscope_engine::score::ScoreRun;
use oodscope_gui::app::shown::ShownResult;
use oodscope_gui::app::view::Derived;
use oodscope_gui::ui::gallery::{SortOrder, VerdictFilter, at_threshold, ordered};

#[derive(Debug, clap::Args)]
pub struct DeltaArgs {
    /// The results file (e.g. from `results-write --rows 1000000`).
    #[arg(long)]
    pub file: PathBuf,
    /// δ positions timed (spread over the score range).
    #[arg(long, default_value_t = 200)]
    pub repeats: usize,
}

pub fn run(args: &DeltaArgs) -> Report {
    if args.repeats == 0 {
        bail!("need at least one repetition");
    }
    let start = Instant::now();
    let results = open_with(&args.file, Load::SCORES).map_err(anyhow::Error::msg)?;
    let open_s = start.elapsed().as_secs_f64();
    let Some(settings) = results.run.methods.first().cloned() else {
        bail!("{}: no score column", args.file.display());
    };
    let run = ScoreRun {
        images: results.run.images.clone(),
        methods: vec![settings.clone()],
        columns: vec![results.run.columns[0].clone()],
        ..ScoreRun::default()
    };
    let rows = run.images.len();
    let result = ShownResult::new(settings, results.sets.clone(), run, Vec::new());
    let start = Instant::now();
    let derived = Derived::new(&result.set_scores(), 60);
    let derive_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let sets_of: Vec<usize> = result.run.images.iter().map(|e| e.set).collect();
    let order = ordered(&result.scores, &sets_of, None, SortOrder::ScoreDescending);
    let gallery_sort_ms = start.elapsed().as_secs_f64() * 1e3;
    let (lo, hi) = derived.range;
    let id_sets = oodscope_engine::score::run::sets_with_role(&result.sets, oodscope_data::Role::Id);

    let mut delta_ms = Vec::with_capacity(args.repeats);
    let mut accuracy_ms = Vec::with_capacity(args.repeats);
    let mut full_pass_ms = Vec::with_capacity(args.repeats.min(20));
    for rep in 0..args.repeats {
        let threshold = lo + (hi - lo) * (rep as f32 + 0.5) / args.repeats as f32;
        let start = Instant::now();
        let points: Vec<_> = derived.ood.iter().map(|o| o.operating_point(threshold)).collect();
        let kept = derived.id_scores.len();
        let shown_id = at_threshold(
            &order,
            &result.scores,
            SortOrder::ScoreDescending,
            VerdictFilter::CalledId,
            threshold,
        );
        let shown_ood = at_threshold(
            &order,
            &result.scores,
            SortOrder::ScoreDescending,
            VerdictFilter::CalledOod,
            threshold,
        );
        black_box((&points, kept, shown_id.len(), shown_ood.len()));
        delta_ms.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        black_box(result.run.accuracy(&id_sets));
        accuracy_ms.push(start.elapsed().as_secs_f64() * 1e3);
        if rep % (args.repeats / 20).max(1) == 0 {
            // The gallery as it was: filter every image at δ, then sort, every frame.
            let start = Instant::now();
            let mut shown: Vec<usize> = (0..rows).filter(|&i| result.scores[i] > threshold).collect();
            shown.sort_by(|&a, &b| result.scores[b].total_cmp(&result.scores[a]));
            black_box(shown.len());
            full_pass_ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let stats = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        json!({"median": v[v.len() / 2], "p95": v[(v.len() * 95 / 100).min(v.len() - 1)], "max": v[v.len() - 1]})
    };
    Ok(json!({
        "measure": "results-delta",
        "rows": rows,
        "ood_sets": derived.ood.len(),
        "open_s": open_s,
        "derive_ms": derive_ms,
        "gallery_sort_ms": gallery_sort_ms,
        "delta_move_ms": stats(delta_ms),
        "before_accuracy_pass_per_frame_ms": stats(accuracy_ms),
        "before_gallery_filter_sort_per_frame_ms": stats(full_pass_ms),
    }))
}
