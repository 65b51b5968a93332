//! The background worker: one thread that owns the model and every tensor. The app sends jobs,
//! the worker sends plain results back and wakes the UI. Every job carries a generation and a
//! cancel flag: the app cancels a superseded job and drops results of old generations. Dropped
//! images take the priority lane (`lane`), served between a running job's batches.

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

pub use jobs::ModelInfo;
pub use lane::DropJob;

/// Something for the worker to do.
#[derive(Debug)]
pub enum Job {
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
        generation: u64,
        sets: Vec<ImageSet>,
        settings: ScoreSettings,
        batch_size: usize,
        cancel: Arc<AtomicBool>,
    },
    /// Wakes an idle worker to serve the priority lane (a drop was sent on it).
    ServeDrops,
    /// The fit of the loaded model on an ID training folder: from the cache, else computed (with
    /// progress) and cached. The worker keeps it for the methods that need one.
    Fit {
        generation: u64,
        train: PathBuf,
        cancel: Arc<AtomicBool>,
    },
    /// Forget the fit (the training folder was cleared).
    DropFit,
    /// Scores of a result's cached clean outputs under other settings (no input step): a new T,
    /// k, percentile, dim, or another such method.
    Rescore {
        generation: u64,
        cache: Arc<CachedOutputs>,
        settings: ScoreSettings,
    },
    /// A results file (`oodscope score --results`) read with everything it saved.
    OpenResults {
        generation: u64,
        path: PathBuf,
    },
    /// The honest parameter search of `oodscope_engine::tune` on the enabled sets.
    Tune {
        generation: u64,
        sets: Vec<ImageSet>,
        options: oodscope_engine::tune::TuneOptions,
        cancel: Arc<AtomicBool>,
    },
    /// Every given method on the enabled sets in one pass (`oodscope_engine::compare`), features kept.
    Compare {
        generation: u64,
        sets: Vec<ImageSet>,
        settings: Vec<ScoreSettings>,
        /// The methods left out, passed back with the result.
        unsupported: Vec<oodscope_engine::compare::Unsupported>,
        batch_size: usize,
        cancel: Arc<AtomicBool>,
    },
    /// The first-order estimate of a method with a step at new settings, from the cached clean
    /// outputs and each image's `‖∇ₓ L‖₁` (computed once per step and result, then kept).
    Estimate {
        generation: u64,
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
    Shutdown,
}

/// What the worker reports.
#[derive(Debug)]
pub enum Event {
    ModelLoaded(ModelInfo),
    FitProgress {
        generation: u64,
        progress: oodscope_engine::fit::FitProgress,
    },
    Fitted {
        generation: u64,
        info: oodscope_engine::stats::FitInfo,
        /// The bank's size (for KNN's k), when the model has features.
        bank: Option<usize>,
    },
    FitFailed {
        generation: u64,
        message: String,
    },
    Rescored {
        generation: u64,
        settings: ScoreSettings,
        scores: Vec<f32>,
    },
    /// A results file read (`Job::OpenResults`).
    ResultsOpened {
        generation: u64,
        results: Box<oodscope_engine::results::Results>,
    },
    /// A results file that could not be read: one line naming it.
    ResultsFailed {
        generation: u64,
        message: String,
    },
    Estimated {
        generation: u64,
        settings: ScoreSettings,
        scores: Vec<f32>,
    },
    CompareProgress {
        generation: u64,
        progress: oodscope_engine::compare::CompareProgress,
    },
    Compared {
        generation: u64,
        result: Box<oodscope_engine::compare::CompareResult>,
        unsupported: Vec<oodscope_engine::compare::Unsupported>,
    },
    TuneProgress {
        generation: u64,
        progress: oodscope_engine::tune::TuneProgress,
    },
    Tuned {
        generation: u64,
        result: Box<oodscope_engine::tune::TuneResult>,
    },
    Perturbation {
        key: (usize, usize),
        settings: ScoreSettings,
        values: Vec<f32>,
        shape: [usize; 3],
    },
    SetOpened {
        spec: String,
        set: ImageSet,
    },
    Progress {
        generation: u64,
        progress: Progress,
    },
    Scored {
        generation: u64,
        settings: ScoreSettings,
        run: ScoreRun,
    },
    /// A drop's images scored (`id`: the drop's, from its `DropJob`).
    FilesScored {
        id: u64,
        set: ImageSet,
        settings: ScoreSettings,
        run: ScoreRun,
    },
    /// A drop that could not be scored at all (no model, a method this model cannot run).
    DropFailed {
        id: u64,
        message: String,
    },
    Cancelled {
        generation: u64,
    },
    Error(String),
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

/// A cancel flag that a newer job replaces.
#[derive(Debug, Default, Clone)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
