//! The worker's priority lane: dropped images, scored at once — before the next queued job, and
//! between the batches of a running one (scoring, fit, tuning, comparison) — instead of waiting
//! behind them in the job queue.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;

use super::Event;
use oodscope_data::{ImageSet, Role};
use oodscope_engine::detect::plan::Plan;
use oodscope_engine::model::Model;
use oodscope_engine::score::{ScoreSettings, run_scoring};
use oodscope_engine::stats::Fit;

/// Dropped images to score, and the drop they came in (`id`, for the app's cards).
#[derive(Debug)]
pub struct DropJob {
    pub id: u64,
    pub paths: Vec<PathBuf>,
    pub settings: ScoreSettings,
}

/// The worker's end of the lane: the drops sent, and those held back until a fit is ready.
pub(super) struct Lane {
    drops: Receiver<DropJob>,
    waiting: VecDeque<DropJob>,
}

/// Images per batch of a drop (a drop is a few images: one batch).
const DROP_BATCH: usize = 16;

impl Lane {
    pub(super) fn new(drops: Receiver<DropJob>) -> Lane {
        Lane {
            drops,
            waiting: VecDeque::new(),
        }
    }

    /// Scores every drop waiting with `model` and `fit`, and reports each (`FilesScored` or
    /// `DropFailed`). While a fit is being made (`fitting`), a drop whose method needs one waits.
    pub(super) fn serve(&mut self, model: Option<&Model>, fit: Option<&Fit>, fitting: bool, send: &dyn Fn(Event)) {
        self.waiting.extend(self.drops.try_iter());
        let mut held = VecDeque::new();
        while let Some(job) = self.waiting.pop_front() {
            if fitting && fit.is_none() && job.settings.method.detector().needs().fit {
                held.push_back(job);
                continue;
            }
            send(score_drop(model, fit, job));
        }
        self.waiting = held;
    }
}

/// One drop's images scored as a set of their own (files that do not decode are skipped with
/// their reason, as in any set).
fn score_drop(model: Option<&Model>, fit: Option<&Fit>, job: DropJob) -> Event {
    let DropJob { id, paths, settings } = job;
    let Some(model) = model else {
        return Event::DropFailed {
            id,
            message: "load a model before dropping images".into(),
        };
    };
    let set = ImageSet::from_files("dropped", Role::Ood, &paths);
    let never = AtomicBool::new(false);
    let run = Plan::single(model, &settings, fit)
        .and_then(|plan| run_scoring(&plan, std::slice::from_ref(&set), DROP_BATCH, &never, &mut |_| {}));
    match run {
        Ok(run) => Event::FilesScored {
            id,
            set,
            settings,
            run: Box::new(run),
        },
        Err(e) => Event::DropFailed {
            id,
            message: e.to_string(),
        },
    }
}
