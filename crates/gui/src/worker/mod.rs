//! The background worker: one thread that owns the model and every tensor. The app sends jobs,
//! the worker sends plain results back and wakes the UI. Every task job carries the id the app's
//! task registry gave it and a cancel flag, and ends in exactly one event: done (with its
//! outcome), failed (with a typed cause) or cancelled. Dropped images take the priority lane
//! (`lane`), served between a running job's batches.

pub mod detector_jobs;
pub mod jobs;
pub mod lane;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use oodscope_data::{ImageSet, Role};
use oodscope_engine::detect::cache::CachedOutputs;
use oodscope_engine::model::DeviceChoice;
use oodscope_engine::pipeline::Progress;
use oodscope_engine::score::{ScoreRun, ScoreSettings};

pub use detector_jobs::{OpenedDetector, SaveJob};
pub use jobs::ModelInfo;
pub use lane::DropJob;

/// The id of one of the app's tasks (it only grows: also the generation of the task's events).
pub type TaskId = u64;

/// A method a comparison left out, and why (one line for the window).
#[derive(Debug, Clone, PartialEq)]
pub struct NotRun {
    pub method: oodscope_engine::score::Method,
    pub why: String,
}

impl NotRun {
    /// The model lacks what the method needs.
    pub fn unsupported(u: &oodscope_engine::compare::Unsupported) -> NotRun {
        NotRun {
            method: u.method,
            why: u.missing.short().to_string(),
        }
    }
}

/// Something for the worker to do.
#[derive(Debug)]
pub enum Job {
    /// A task of the app's registry: ends in one `Done`, `Failed` or `Cancelled` event.
    Task {
        id: TaskId,
        cancel: Arc<AtomicBool>,
        work: Work,
    },
    /// Forget the fit (the training folder was cleared).
    DropFit,
    /// Wakes an idle worker to serve the priority lane (a drop was sent on it).
    ServeDrops,
    Shutdown,
}

/// The work of a task.
#[derive(Debug)]
pub enum Work {
    LoadModel {
        path: PathBuf,
        device: DeviceChoice,
    },
    OpenSet {
        spec: String,
        role: Role,
        classes: Vec<String>,
    },
    Score {
        sets: Vec<ImageSet>,
        settings: ScoreSettings,
        batch_size: usize,
    },
    /// The fit of the loaded model on an ID training folder: from the cache, else computed (with
    /// progress) and cached. The worker keeps it for the methods that need one.
    Fit {
        train: PathBuf,
    },
    /// A fit file opened beside a results file (no model): the worker keeps it, and the head it
    /// keeps, for the methods that need them.
    LoadFit {
        path: PathBuf,
        /// The results file's outputs, which the fit must match.
        cache: Arc<CachedOutputs>,
    },
    /// Scores of a result's cached clean outputs under other settings (no input step): a new T,
    /// k, percentile, dim, or another such method; without a model, a results file's saved outputs.
    Rescore {
        cache: Arc<CachedOutputs>,
        settings: ScoreSettings,
    },
    /// A results file (`oodscope score --results`) read with everything it saved.
    OpenResults {
        path: PathBuf,
    },
    /// The honest parameter search of `oodscope_engine::tune` on the enabled sets.
    Tune {
        sets: Vec<ImageSet>,
        options: oodscope_engine::tune::TuneOptions,
    },
    /// A results file's comparison without the model: each method re-scored from its saved outputs
    /// (with the fit and head open beside it), or taken from its stored column.
    CompareStored(Box<StoredComparison>),
    /// A results file's tuning without the model (`oodscope_engine::tune::tune_stored`).
    TuneStored(Box<StoredTuning>),
    /// Every given method on the enabled sets in one pass (`oodscope_engine::compare`), features kept.
    Compare {
        sets: Vec<ImageSet>,
        settings: Vec<ScoreSettings>,
        /// The methods left out, passed back with the result.
        unsupported: Vec<oodscope_engine::compare::Unsupported>,
        batch_size: usize,
    },
    /// The first-order estimate of a method with a step at new settings, from the cached clean
    /// outputs and each image's `‖∇ₓ L‖₁` (computed once per step and result, then kept).
    Estimate {
        /// Identifies the images (their sets), which the norms are kept for.
        images: u64,
        sets: Vec<ImageSet>,
        items: Vec<(usize, usize)>,
        cache: Arc<CachedOutputs>,
        settings: ScoreSettings,
    },
    /// `x̃ − x` of one image (`key` identifies it to the app).
    Perturbation {
        key: (usize, usize),
        source: PixelSource,
        settings: ScoreSettings,
    },
    /// A detector file of the current method and δ, from the loaded model and fit.
    SaveDetector(Box<SaveJob>),
    /// A detector file read (its manifest reported first), loaded, and `sets` scored with it.
    OpenDetector {
        path: PathBuf,
        sets: Vec<ImageSet>,
        batch_size: usize,
    },
}

/// What a results file's comparison takes: its records and sets, the outputs to re-score, each
/// method's settings or stored column, and its own score columns.
#[derive(Debug)]
pub struct StoredComparison {
    pub sets: Vec<ImageSet>,
    /// The file's records and columns (its saved lists in `cache`).
    pub run: ScoreRun,
    pub cache: Arc<CachedOutputs>,
    pub settings: Vec<ScoreSettings>,
    pub not_run: Vec<NotRun>,
}

/// What a results file's tuning takes: its records and sets, the outputs, and the grid.
#[derive(Debug)]
pub struct StoredTuning {
    pub sets: Vec<ImageSet>,
    pub run: ScoreRun,
    pub cache: Arc<CachedOutputs>,
    pub options: oodscope_engine::tune::TuneOptions,
}

/// What a task's job reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskProgress {
    /// Images through a scoring run.
    Run(Progress),
    Fit(oodscope_engine::fit::FitProgress),
    Tune(oodscope_engine::tune::TuneProgress),
    Compare(oodscope_engine::compare::CompareProgress),
    /// Rows of a results file read.
    Rows(oodscope_engine::results::RowsRead),
    /// A detector file's manifest, read before its model loads.
    DetectorRead(Box<oodscope_engine::deploy::Manifest>),
}

impl TaskProgress {
    /// Done and total in the stage's units, for a progress bar.
    pub fn fraction(&self) -> (usize, usize) {
        match self {
            TaskProgress::Run(p) => (p.done, p.total),
            TaskProgress::Fit(p) => (p.done, p.total),
            TaskProgress::Tune(p) => (p.done, p.total),
            TaskProgress::Compare(p) => (p.done, p.total),
            TaskProgress::Rows(r) => (r.done as usize, r.total as usize),
            TaskProgress::DetectorRead(_) => (0, 0),
        }
    }
}

/// What a task's job gave.
#[derive(Debug)]
pub enum Outcome {
    ModelLoaded(Box<ModelInfo>),
    SetOpened(ImageSet),
    Scored {
        settings: ScoreSettings,
        run: Box<ScoreRun>,
    },
    Fitted {
        info: Box<oodscope_engine::stats::FitInfo>,
        /// The bank's size (for KNN's k), when the model has features.
        bank: Option<usize>,
        /// Whether the fit keeps the head `(W, b)` (a fit from arrays; beside a results file).
        head: bool,
    },
    Rescored {
        settings: ScoreSettings,
        scores: Vec<f32>,
    },
    ResultsOpened(Box<oodscope_engine::results::Results>),
    Tuned(Box<oodscope_engine::tune::TuneResult>),
    Compared {
        result: Box<oodscope_engine::compare::CompareResult>,
        not_run: Vec<NotRun>,
    },
    Estimated {
        settings: ScoreSettings,
        scores: Vec<f32>,
    },
    Perturbation {
        key: (usize, usize),
        settings: ScoreSettings,
        values: Vec<f32>,
        shape: [usize; 3],
    },
    DetectorSaved {
        path: PathBuf,
        manifest: Box<oodscope_engine::deploy::Manifest>,
    },
    DetectorOpened(Box<OpenedDetector>),
}

/// Why a task's job gave no outcome (a cancel is its own event).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A job that needs the model arrived before one was loaded (or after loading failed).
    #[error("no model loaded")]
    NoModel,
    #[error(transparent)]
    Engine(#[from] oodscope_engine::Error),
}

/// What the worker reports.
#[derive(Debug)]
pub enum Event {
    Progress {
        task: TaskId,
        progress: TaskProgress,
    },
    Done {
        task: TaskId,
        outcome: Outcome,
    },
    Failed {
        task: TaskId,
        cause: JobError,
    },
    Cancelled {
        task: TaskId,
    },
    /// A drop's images scored (`id`: the drop's, from its `DropJob`).
    FilesScored {
        id: u64,
        set: ImageSet,
        settings: ScoreSettings,
        run: Box<ScoreRun>,
    },
    /// A drop that could not be scored at all (no model, a method this model cannot run).
    DropFailed {
        id: u64,
        message: String,
    },
}

/// Where one image's pixels come from.
#[derive(Debug, Clone)]
pub enum PixelSource {
    File(PathBuf),
    Noise(oodscope_data::NoiseKind, usize),
}

/// The app's handle on the worker thread.
pub struct Worker {
    jobs: Sender<Job>,
    drops: Sender<DropJob>,
    pub events: Receiver<Event>,
    /// Jobs sent and not yet finished (their events all sent once it drops).
    pending: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Called by the worker after each event so the UI wakes up (egui's `request_repaint`).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

impl Worker {
    pub fn start(waker: Waker) -> Worker {
        let (jobs, job_rx) = channel::<Job>();
        let (drops, drop_rx) = channel::<DropJob>();
        let (event_tx, events) = channel::<Event>();
        let pending = Arc::new(AtomicUsize::new(0));
        let counter = pending.clone();
        let thread = std::thread::Builder::new()
            .name("oodscope-worker".into())
            .spawn(move || jobs::run_worker(job_rx, lane::Lane::new(drop_rx), event_tx, waker, counter))
            .ok();
        Worker {
            jobs,
            drops,
            events,
            pending,
            thread,
        }
    }

    /// How many jobs were sent and have not finished; when it reads 0, every event of the jobs
    /// sent so far is in `events`.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Sends dropped images on the priority lane: the worker scores them before its next job, or
    /// between the batches of the job it runs.
    pub fn score_drop(&self, job: DropJob) {
        let _ = self.drops.send(job);
        self.send(Job::ServeDrops);
    }

    /// Sends task `id`'s work (it watches `cancel`).
    pub fn run(&self, id: TaskId, cancel: Arc<AtomicBool>, work: Work) {
        self.send(Job::Task { id, cancel, work });
    }

    /// Queues a job; if the worker is gone the job is dropped (its absence shows as no result).
    pub fn send(&self, job: Job) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.jobs.send(job).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.send(Job::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
