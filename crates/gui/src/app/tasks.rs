//! The registry of background tasks in flight: every job the app sends the worker is a task with an
//! id (also the generation that tags its events), a cancel flag and its latest progress. Events of
//! a task that is no longer here (finished, superseded, cancelled) are dropped; cancelling clears
//! every task at once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use oodscope_data::ImageSet;
use oodscope_engine::score::ScoreSettings;

pub use crate::worker::{TaskId, TaskProgress};

/// What a task does, with what the app needs when its result arrives.
#[derive(Debug, Clone)]
pub enum TaskKind {
    /// Loading the model.
    LoadModel,
    /// Opening (scanning) the set of the side panel with this spec.
    OpenSet { spec: String },
    /// Scoring the enabled sets with one method.
    Score {
        settings: ScoreSettings,
        sets: Vec<ImageSet>,
    },
    /// Reading or computing the fit on the ID training folder.
    Fit { train: PathBuf },
    /// Re-scoring the displayed result's cached outputs (no model pass).
    Rescore { settings: ScoreSettings },
    /// The first-order estimate shown while exact scores with a new ε are computed.
    Estimate { settings: ScoreSettings },
    /// One image's input perturbation, for the detail view.
    Perturbation,
    /// Reading a results file.
    OpenResults { path: PathBuf },
    /// The parameter search of the current method.
    Tune,
    /// Every method in one pass (the Compare view).
    Compare,
    /// Writing a detector file.
    SaveDetector { path: PathBuf },
    /// Reading a detector file, loading it and scoring the open sets with it.
    OpenDetector { path: PathBuf },
}

impl TaskKind {
    /// What the task is doing, for progress lines and messages.
    pub fn describe(&self) -> String {
        match self {
            TaskKind::LoadModel => "loading the model".into(),
            TaskKind::OpenSet { spec } => format!("opening {spec}"),
            TaskKind::Score { settings, .. } => format!("scoring {}", settings.describe()),
            TaskKind::Fit { train } => format!("fitting on {}", train.display()),
            TaskKind::Rescore { settings } => format!("re-scoring {}", settings.describe()),
            TaskKind::Estimate { settings } => format!("estimating {}", settings.describe()),
            TaskKind::Perturbation => "computing the perturbation".into(),
            TaskKind::OpenResults { path } => format!("reading {}", path.display()),
            TaskKind::Tune => "tuning".into(),
            TaskKind::Compare => "comparing every method".into(),
            TaskKind::SaveDetector { path } => format!("saving the detector {}", path.display()),
            TaskKind::OpenDetector { path } => format!("opening the detector {}", path.display()),
        }
    }

    /// Whether the user's Cancel stops it (everything but loading the model and opening its sets,
    /// which the rest waits for).
    pub fn is_cancellable(&self) -> bool {
        !matches!(self, TaskKind::LoadModel | TaskKind::OpenSet { .. })
    }

    /// Whether this kind of task shows a progress bar and can be cancelled by the user (the short
    /// ones — opening a set, re-scoring, an estimate — finish before a bar would help).
    pub fn is_long(&self) -> bool {
        matches!(
            self,
            TaskKind::Score { .. }
                | TaskKind::Fit { .. }
                | TaskKind::Tune
                | TaskKind::Compare
                | TaskKind::OpenResults { .. }
                | TaskKind::SaveDetector { .. }
                | TaskKind::OpenDetector { .. }
        )
    }
}

/// One task in flight.
#[derive(Debug)]
pub struct Task {
    pub kind: TaskKind,
    pub progress: Option<TaskProgress>,
    pub started: Instant,
    /// When the stage of the latest progress began (a new stage restarts the time estimate).
    pub stage_started: Instant,
    cancel: Arc<AtomicBool>,
}

impl Task {
    /// Time left in the current stage, at the stage's pace so far; `None` until something is done.
    pub fn eta(&self) -> Option<Duration> {
        let (done, total) = self.progress.as_ref()?.fraction();
        eta(done, total, self.stage_started.elapsed())
    }
}

/// Time left for `total - done` units at the pace of `done` units in `elapsed`.
pub fn eta(done: usize, total: usize, elapsed: Duration) -> Option<Duration> {
    if done == 0 || done > total {
        return None;
    }
    Some(elapsed.mul_f64((total - done) as f64 / done as f64))
}

/// What tells one stage of a job from the next: the kind of progress, its stage and its total.
fn stage_of(progress: &TaskProgress) -> (std::mem::Discriminant<TaskProgress>, u8, usize) {
    let stage = match progress {
        TaskProgress::Fit(p) => p.stage as u8,
        TaskProgress::Tune(p) => p.stage as u8,
        TaskProgress::Compare(p) => p.stage as u8,
        TaskProgress::Run(_) | TaskProgress::Rows(_) | TaskProgress::DetectorRead(_) => 0,
    };
    (std::mem::discriminant(progress), stage, progress.fraction().1)
}

/// Every task in flight, by id (ids only grow: a newer task has a larger id).
#[derive(Debug)]
pub struct Tasks {
    next: TaskId,
    running: BTreeMap<TaskId, Task>,
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks {
            next: 1,
            running: BTreeMap::new(),
        }
    }
}

impl Tasks {
    /// Registers a task; returns its id and the cancel flag its job watches.
    pub fn start(&mut self, kind: TaskKind) -> (TaskId, Arc<AtomicBool>) {
        let id = self.next_id();
        let cancel = Arc::new(AtomicBool::new(false));
        self.running.insert(
            id,
            Task {
                kind,
                progress: None,
                started: Instant::now(),
                stage_started: Instant::now(),
                cancel: cancel.clone(),
            },
        );
        (id, cancel)
    }

    /// A fresh id for work that is not a task of its own (a drop's cards).
    pub fn next_id(&mut self) -> TaskId {
        let id = self.next;
        self.next += 1;
        id
    }

    /// The task `id`, if it is still in flight.
    pub fn get(&self, id: TaskId) -> Option<&Task> {
        self.running.get(&id)
    }

    /// Records a task's progress (ignored when the task is gone).
    pub fn set_progress(&mut self, id: TaskId, progress: TaskProgress) {
        if let Some(task) = self.running.get_mut(&id) {
            let new_stage = task
                .progress
                .as_ref()
                .is_none_or(|p| stage_of(p) != stage_of(&progress));
            if new_stage {
                task.stage_started = Instant::now();
            }
            task.progress = Some(progress);
        }
    }

    /// Removes task `id` as its job ended (a result, a failure or a cancel); `None` when it was no
    /// longer in flight, and its event is then stale.
    pub fn finish(&mut self, id: TaskId) -> Option<Task> {
        self.running.remove(&id)
    }

    /// Cancels and forgets every task that `matches` (their later events are dropped).
    pub fn cancel_where(&mut self, matches: impl Fn(&TaskKind) -> bool) {
        self.running.retain(|_, task| {
            let hit = matches(&task.kind);
            if hit {
                task.cancel.store(true, Ordering::Relaxed);
            }
            !hit
        });
    }

    /// Cancels and forgets every task.
    pub fn cancel_all(&mut self) {
        self.cancel_where(|_| true);
    }

    /// The tasks in flight, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (TaskId, &Task)> {
        self.running.iter().map(|(id, task)| (*id, task))
    }

    /// The newest task in flight that `matches`.
    pub fn find(&self, matches: impl Fn(&TaskKind) -> bool) -> Option<(TaskId, &Task)> {
        self.iter().filter(|(_, t)| matches(&t.kind)).last()
    }

    /// Whether any task in flight `matches`.
    pub fn any(&self, matches: impl Fn(&TaskKind) -> bool) -> bool {
        self.find(matches).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }
}

/// Matchers for [`Tasks::find`] and friends.
/// A job a view shows with its own progress bar and Cancel, which stops that job only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewJob {
    Fit,
    Tune,
    Compare,
    OpenDetector,
}

impl ViewJob {
    pub fn is(self, k: &TaskKind) -> bool {
        match self {
            ViewJob::Fit => kind::fit(k),
            ViewJob::Tune => kind::tune(k),
            ViewJob::Compare => kind::compare(k),
            ViewJob::OpenDetector => kind::open_detector(k),
        }
    }
}

pub mod kind {
    use super::TaskKind;

    pub fn score(k: &TaskKind) -> bool {
        matches!(k, TaskKind::Score { .. })
    }
    pub fn fit(k: &TaskKind) -> bool {
        matches!(k, TaskKind::Fit { .. })
    }
    pub fn rescore(k: &TaskKind) -> bool {
        matches!(k, TaskKind::Rescore { .. })
    }
    pub fn estimate(k: &TaskKind) -> bool {
        matches!(k, TaskKind::Estimate { .. })
    }
    pub fn tune(k: &TaskKind) -> bool {
        matches!(k, TaskKind::Tune)
    }
    pub fn compare(k: &TaskKind) -> bool {
        matches!(k, TaskKind::Compare)
    }
    pub fn open_results(k: &TaskKind) -> bool {
        matches!(k, TaskKind::OpenResults { .. })
    }
    pub fn load_model(k: &TaskKind) -> bool {
        matches!(k, TaskKind::LoadModel)
    }
    pub fn open_set(k: &TaskKind) -> bool {
        matches!(k, TaskKind::OpenSet { .. })
    }
    pub fn save_detector(k: &TaskKind) -> bool {
        matches!(k, TaskKind::SaveDetector { .. })
    }
    pub fn open_detector(k: &TaskKind) -> bool {
        matches!(k, TaskKind::OpenDetector { .. })
    }
    /// The tasks whose results a new model makes stale (everything but opening sets and results
    /// files, which do not depend on the model).
    pub fn depends_on_model(k: &TaskKind) -> bool {
        !matches!(
            k,
            TaskKind::OpenSet { .. } | TaskKind::OpenResults { .. } | TaskKind::LoadModel
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_grow_finish_removes_and_a_stale_event_finds_nothing() {
        let mut tasks = Tasks::default();
        let (a, _) = tasks.start(TaskKind::Fit {
            train: PathBuf::from("train"),
        });
        let (b, _) = tasks.start(TaskKind::Tune);
        assert!(b > a);
        assert!(tasks.finish(a).is_some());
        assert!(tasks.finish(a).is_none(), "a second end of the same task is stale");
        assert!(tasks.any(kind::tune));
        assert!(!tasks.any(kind::fit));
    }

    #[test]
    fn cancel_all_raises_every_flag_and_clears_the_registry() {
        let mut tasks = Tasks::default();
        let flags: Vec<_> = [
            TaskKind::Fit {
                train: PathBuf::from("train"),
            },
            TaskKind::Tune,
            TaskKind::Compare,
            TaskKind::LoadModel,
        ]
        .into_iter()
        .map(|k| tasks.start(k).1)
        .collect();
        tasks.cancel_all();
        assert!(tasks.is_empty());
        assert!(flags.iter().all(|f| f.load(Ordering::Relaxed)));
    }

    #[test]
    fn cancel_where_leaves_the_others_running() {
        let mut tasks = Tasks::default();
        let (_, fit) = tasks.start(TaskKind::Fit {
            train: PathBuf::from("train"),
        });
        let (tune_id, tune) = tasks.start(TaskKind::Tune);
        tasks.cancel_where(kind::fit);
        assert!(fit.load(Ordering::Relaxed));
        assert!(!tune.load(Ordering::Relaxed));
        assert_eq!(tasks.find(kind::tune).map(|(id, _)| id), Some(tune_id));
    }

    #[test]
    fn the_time_left_follows_the_pace_so_far_and_a_new_stage_restarts_it() {
        assert_eq!(eta(0, 10, Duration::from_secs(5)), None, "nothing done: no estimate");
        assert_eq!(eta(25, 100, Duration::from_secs(10)), Some(Duration::from_secs(30)));
        assert_eq!(eta(100, 100, Duration::from_secs(10)), Some(Duration::ZERO));
        let mut tasks = Tasks::default();
        let (id, _) = tasks.start(TaskKind::Fit {
            train: PathBuf::from("train"),
        });
        let fit = |stage, done| {
            TaskProgress::Fit(oodscope_engine::fit::FitProgress {
                stage,
                done,
                total: 10,
                elapsed: Duration::ZERO,
            })
        };
        tasks.set_progress(id, fit(oodscope_engine::fit::FitStage::Images, 1));
        let first = tasks.get(id).unwrap().stage_started;
        std::thread::sleep(Duration::from_millis(5));
        tasks.set_progress(id, fit(oodscope_engine::fit::FitStage::Images, 2));
        assert_eq!(tasks.get(id).unwrap().stage_started, first, "the same stage goes on");
        tasks.set_progress(id, fit(oodscope_engine::fit::FitStage::Statistics, 1));
        assert!(
            tasks.get(id).unwrap().stage_started > first,
            "a new stage starts its own clock"
        );
        assert!(tasks.get(id).unwrap().eta().is_some());
    }

    #[test]
    fn progress_goes_to_its_task_and_is_ignored_once_it_ended() {
        let mut tasks = Tasks::default();
        let (id, _) = tasks.start(TaskKind::Fit {
            train: PathBuf::from("train"),
        });
        let progress = TaskProgress::Run(oodscope_engine::pipeline::Progress {
            done: 1,
            total: 2,
            skipped: 0,
            elapsed: Duration::from_secs(1),
        });
        tasks.set_progress(id, progress.clone());
        assert!(tasks.get(id).is_some_and(|t| t.progress.is_some()));
        tasks.finish(id);
        tasks.set_progress(id, progress);
        assert!(tasks.get(id).is_none());
    }
}
