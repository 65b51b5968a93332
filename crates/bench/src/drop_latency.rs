//! Milliseconds from a drop to its scored cards, in the window's app with no display: the same few
//! images dropped on an idle worker (the baseline), then while a long scoring job runs (they take
//! the worker's priority lane, between the job's batches). Also how long the job still ran after
//! each drop: what the drop waited for when drops queued behind the job.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;

use super::{DropArgs, Report};
use oodscope_engine::detect::Params;
use oodscope_gui::app::{Command, OodscopeApp, SavedSet, Settings};

/// Gives up on any wait after this long.
const PATIENCE: Duration = Duration::from_secs(900);

pub fn run(args: &DropArgs) -> Report {
    if args.images.is_empty() || args.repeats == 0 {
        bail!("need at least one image and one repetition");
    }
    let ctx = egui::Context::default();
    let set = |spec: String, ood: bool| SavedSet {
        spec,
        ood,
        enabled: true,
    };
    let settings = Settings {
        model: Some(args.model.display().to_string()),
        sets: vec![set(args.id.clone(), false), set(args.ood.clone(), true)],
        method: oodscope_engine::score::Method::named("odin"),
        params: [(
            "odin".to_string(),
            Params::new().with("temperature", 1000.0).with("epsilon", args.epsilon),
        )]
        .into(),
        batch_size: args.batch_size,
        ..Settings::default()
    };
    let mut app = OodscopeApp::new(&ctx, settings);
    let first = Instant::now();
    wait(&mut app, &ctx, "the first scoring", |a| {
        a.derived.is_some() && !a.is_scoring()
    })?;
    let job_ms = first.elapsed().as_secs_f64() * 1e3;
    let images = app.result.as_ref().map_or(0, |r| r.run.images.len());

    let idle: Vec<f64> = (0..args.repeats)
        .map(|_| drop_ms(&mut app, &ctx, &args.images))
        .collect::<Result<_>>()?;

    // The long job: the same sets scored again from scratch.
    let mut busy = Vec::new();
    let mut waited_before = Vec::new();
    let mut during = 0;
    for _ in 0..args.repeats {
        app.apply_drawn(vec![Command::Rescore], &ctx);
        wait(&mut app, &ctx, "the long job's first batches", |a| {
            a.scoring_progress()
                .and_then(|(_, p)| p)
                .is_some_and(|p| p.done >= 4 * args.batch_size)
        })?;
        busy.push(drop_ms(&mut app, &ctx, &args.images)?);
        if app.is_scoring() {
            during += 1;
        }
        let clock = Instant::now();
        wait(&mut app, &ctx, "the long job", |a| !a.is_scoring())?;
        waited_before.push(clock.elapsed().as_secs_f64() * 1e3);
    }
    Ok(json!({
        "kind": "drop",
        "images_dropped": args.images.len(),
        "long_job": format!("ODIN eps={} on {} images, batch {}", args.epsilon, images, args.batch_size),
        "long_job_ms": job_ms,
        "repeats": args.repeats,
        "idle_drop_ms": summary(&idle),
        "busy_drop_ms": summary(&busy),
        "scored_while_job_ran": during,
        "job_left_after_drop_ms": summary(&waited_before),
    }))
}

/// Drops `images` and returns the milliseconds until every card is scored (or says why not).
fn drop_ms(app: &mut OodscopeApp, ctx: &egui::Context, images: &[PathBuf]) -> Result<f64> {
    app.drops.clear();
    let clock = Instant::now();
    app.apply_drawn(vec![Command::ScoreFiles(images.to_vec())], ctx);
    wait(app, ctx, "the dropped images", |a| !a.drops_pending())?;
    let ms = clock.elapsed().as_secs_f64() * 1e3;
    if let Some(reason) = app.drops.iter().find_map(|c| c.outcome.failure()) {
        bail!("a dropped image was not scored: {reason}");
    }
    Ok(ms)
}

/// Drains the worker's events until `done` holds.
fn wait(app: &mut OodscopeApp, ctx: &egui::Context, what: &str, done: impl Fn(&OodscopeApp) -> bool) -> Result<()> {
    let start = Instant::now();
    loop {
        app.drain_events(ctx);
        if done(app) {
            return Ok(());
        }
        if start.elapsed() > PATIENCE {
            bail!("timed out waiting for {what}; messages: {:?}", app.messages);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Median, minimum and maximum.
fn summary(values: &[f64]) -> serde_json::Value {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    json!({
        "median": sorted[sorted.len() / 2],
        "min": sorted[0],
        "max": sorted[sorted.len() - 1],
    })
}
