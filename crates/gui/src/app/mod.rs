//! The app's state, the commands panels emit, and the logic that applies them and the worker's
//! events. Drawing lives in `crate::ui` (which reads this state), the frame that joins them in
//! `crate::window`; nothing here touches a tensor or imports `ui`.

pub mod command;
pub mod comparison;
pub mod export;
pub mod opened;
pub mod result;
pub mod settings;
pub mod tour;
pub mod view;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::worker::{CancelToken, Event, Job, ModelInfo, Worker};
use oodscope_data::{ImageSet, Role};
use oodscope_engine::model::DeviceChoice;
use oodscope_engine::pipeline::Progress;
use oodscope_engine::score::{ScoreRun, ScoreSettings};

pub use command::{Command, ExportKind};
use result::ScoredResult;
pub use settings::{SavedSet, Settings, Tab};
use view::Derived;

/// One image set in the side panel.
pub struct SetEntry {
    pub spec: String,
    pub role: Role,
    pub enabled: bool,
    /// Scanned set, once the worker has opened it.
    pub set: Option<ImageSet>,
}

/// The scoring job in flight.
pub struct RunningJob {
    pub generation: u64,
    pub settings: ScoreSettings,
    /// The sets the job scores (the run's set indices point into these).
    pub sets: Vec<ImageSet>,
    pub progress: Option<Progress>,
    pub cancel: CancelToken,
    pub started: Instant,
}

/// Where the fit of the methods that need one stands.
pub enum FitState {
    /// The worker reads it from the cache or computes it.
    Fitting {
        generation: u64,
        progress: Option<oodscope_engine::fit::FitProgress>,
        cancel: CancelToken,
    },
    /// Loaded in the worker; `bank` is the KNN bank's size.
    Ready {
        info: Box<oodscope_engine::stats::FitInfo>,
        bank: Option<usize>,
    },
    Failed(String),
}

/// The T / ε search in flight.
pub struct TuningJob {
    pub generation: u64,
    pub progress: Option<oodscope_engine::tune::TuneProgress>,
    pub cancel: CancelToken,
}

/// The grid the window searches: each parameter's default grid (the CLI's), but ε in steps of
/// 0.0004 up to 0.004, on the first quarter of every set (the rest is the test split).
pub fn gui_tune_options(
    method: oodscope_engine::score::Method,
    dims: &oodscope_engine::detect::Dims,
    batch_size: usize,
) -> Result<oodscope_engine::tune::TuneOptions, String> {
    let has_epsilon = method.params(dims).iter().any(|s| s.name == "epsilon");
    let overrides = if has_epsilon {
        vec![(
            "epsilon".to_string(),
            oodscope_engine::detect::params::evenly_spaced(0.004, 11),
        )]
    } else {
        Vec::new()
    };
    Ok(oodscope_engine::tune::TuneOptions {
        grid: oodscope_engine::tune::ParamGrid::for_method(method, dims, &overrides)?,
        objective: oodscope_engine::tune::Objective::Fpr95,
        validation: oodscope_engine::tune::ValidationSplit::Fraction(0.25),
        tune_on: None,
        batch_size,
    })
}

/// An image's input perturbation, for the detail view.
pub struct Perturbation {
    pub key: (usize, usize),
    pub settings: ScoreSettings,
    pub values: Vec<f32>,
    pub shape: [usize; 3],
}

/// One dropped image: a result card, shown at once and filled in when the worker has scored it.
pub struct DropCard {
    pub path: PathBuf,
    pub settings: ScoreSettings,
    /// The drop it came in (the worker's `DropJob::id`).
    pub drop: u64,
    pub outcome: DropOutcome,
}

/// Where a dropped image's card stands.
#[derive(Debug, Clone)]
pub enum DropOutcome {
    /// On the worker's priority lane ("scoring…").
    Scoring,
    Scored(DropScore),
    /// Not scored, and why (not an image, no model, …).
    Failed(String),
}

impl DropOutcome {
    pub fn scored(&self) -> Option<&DropScore> {
        match self {
            DropOutcome::Scored(s) => Some(s),
            _ => None,
        }
    }

    pub fn failure(&self) -> Option<&str> {
        match self {
            DropOutcome::Failed(reason) => Some(reason),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DropScore {
    pub score: f32,
    pub pred: usize,
    pub pred_prob: f32,
    pub top5: Vec<(usize, f64)>,
}

pub struct OodscopeApp {
    pub settings: Settings,
    pub model: Option<ModelInfo>,
    pub sets: Vec<SetEntry>,
    pub result: Option<ScoredResult>,
    pub derived: Option<Derived>,
    pub threshold: Option<f32>,
    pub job: Option<RunningJob>,
    pub drops: Vec<DropCard>,
    pub pending_folder: Option<PathBuf>,
    pub selected: Option<usize>,
    pub messages: Vec<String>,
    /// Counts the results received (views that cache per result, as the gallery's thumbnails,
    /// start afresh when it changes).
    pub result_serial: u64,
    /// The re-score in flight (from the cached outputs, no model pass): its generation and settings.
    pub rescoring: Option<(u64, ScoreSettings)>,
    /// The first-order estimate asked for: its generation.
    pub estimating: Option<u64>,
    /// How far the last first-order estimate was from the exact scores, once they arrived.
    pub estimate_error: Option<String>,
    /// The fit on the ID training folder, when one is set.
    pub fit: Option<FitState>,
    /// The tuning job in flight, and the last tuning result.
    pub tuning: Option<TuningJob>,
    pub tune_result: Option<Box<oodscope_engine::tune::TuneResult>>,
    /// The comparison in flight, and the last one (every method's scores, kept).
    pub comparing: Option<comparison::CompareJob>,
    pub comparison: Option<comparison::Comparison>,
    /// `x̃ − x` of the selected image under the shown settings, once the worker has computed it.
    pub perturbation: Option<Perturbation>,
    /// The screenshot tour, when asked for on the command line.
    pub tour: Option<tour::Tour>,
    /// The results file being read by the worker: its generation and path.
    pub opening: Option<(u64, PathBuf)>,
    /// The results file on display (its stored columns are methods shown without the model).
    pub opened: Option<opened::OpenedResults>,
    /// Settings whose re-score of the open file's saved outputs failed (not asked for again).
    stored_failure: Option<ScoreSettings>,
    next_generation: u64,
    loading_model: bool,
    worker: Worker,
    commands: Vec<Command>,
}

impl OodscopeApp {
    /// Starts the app with `settings` (the persisted ones, the demo, or the command line's).
    pub fn new(ctx: &egui::Context, settings: Settings) -> Self {
        let waker_ctx = ctx.clone();
        let worker = Worker::start(std::sync::Arc::new(move || waker_ctx.request_repaint()));
        let mut app = OodscopeApp {
            sets: settings
                .sets
                .iter()
                .map(|s| SetEntry {
                    spec: s.spec.clone(),
                    role: s.role(),
                    enabled: s.enabled,
                    set: None,
                })
                .collect(),
            settings,
            model: None,
            result: None,
            derived: None,
            threshold: None,
            job: None,
            drops: Vec::new(),
            pending_folder: None,
            selected: None,
            messages: Vec::new(),
            result_serial: 0,
            perturbation: None,
            rescoring: None,
            estimating: None,
            estimate_error: None,
            fit: None,
            tuning: None,
            tune_result: None,
            comparing: None,
            comparison: None,
            tour: None,
            opening: None,
            opened: None,
            stored_failure: None,
            next_generation: 1,
            loading_model: false,
            worker,
            commands: Vec::new(),
        };
        if let Some(model) = app.settings.model.clone() {
            app.load_model(PathBuf::from(model));
        }
        if let Some(results) = app.settings.results.clone() {
            app.open_results(PathBuf::from(results));
        }
        app
    }

    /// Creates the app inside eframe: persisted settings if any, else the bundled demo.
    pub fn from_creation_context(cc: &eframe::CreationContext<'_>, startup: Option<Settings>) -> Self {
        let settings = startup
            .or_else(|| {
                cc.storage
                    .and_then(|s| eframe::get_value::<Settings>(s, eframe::APP_KEY))
            })
            .filter(|s| s.model.is_some() || s.results.is_some())
            .unwrap_or_else(|| Settings::demo(&oodscope_engine::assets_root()));
        Self::new(&cc.egui_ctx, settings)
    }

    pub fn push(&mut self, command: Command) {
        self.commands.push(command);
    }

    /// Whether a dropped image's card still waits for its score.
    pub fn drops_pending(&self) -> bool {
        self.drops.iter().any(|c| matches!(c.outcome, DropOutcome::Scoring))
    }

    /// Whether nothing is left in flight: every job sent to the worker has finished and its events
    /// are applied (as of the last frame), and no dropped image waits for its score. Tests wait for
    /// this, not for a clock.
    pub fn is_quiet(&self) -> bool {
        self.worker.pending() == 0 && !self.drops_pending()
    }

    pub fn is_busy(&self) -> bool {
        self.job.is_some()
            || self.opening.is_some()
            || self.rescoring.is_some()
            || self.loading_model
            || self.sets.iter().any(|s| s.set.is_none())
    }

    /// The current method with the sliders' values, checked against the model (defaults for the
    /// parameters never set); `None` before a model is loaded or when a value is out of range.
    pub fn current_settings(&self) -> Option<ScoreSettings> {
        ScoreSettings::new(self.settings.method, &self.settings.current_params(), &self.dims()?).ok()
    }

    /// Whether the displayed result is for other settings than those on the sliders.
    pub fn result_is_stale(&self) -> bool {
        match (&self.result, self.current_settings()) {
            (Some(r), Some(s)) if r.estimate.as_ref() == Some(&s) => false,
            (Some(r), Some(s)) => r.shown != s,
            _ => false,
        }
    }

    /// Whether the app has a fit for the methods that need one.
    pub fn has_fit(&self) -> bool {
        matches!(self.fit, Some(FitState::Ready { .. }))
    }

    /// Whether a fit is being made or read.
    pub fn is_fitting(&self) -> bool {
        matches!(self.fit, Some(FitState::Fitting { .. }))
    }

    /// The model's dimensions, with the fit's bank size (KNN's k is at most that).
    pub fn dims(&self) -> Option<oodscope_engine::detect::Dims> {
        let Some(model) = self.model.as_ref() else {
            return self.opened.as_ref().map(opened::OpenedResults::dims);
        };
        let bank = match &self.fit {
            Some(FitState::Ready { bank, .. }) => *bank,
            _ => None,
        };
        Some(oodscope_engine::detect::Dims { bank, ..model.dims })
    }

    /// Starts the fit on the training folder in the settings (or forgets the fit if there is none).
    fn start_fit(&mut self) {
        if let Some(FitState::Fitting { cancel, .. }) = self.fit.take() {
            cancel.cancel();
        }
        let Some(train) = self.settings.train.clone() else {
            self.worker.send(Job::DropFit);
            return;
        };
        if self.model.is_none() {
            return; // the fit starts once the model has loaded
        }
        let generation = self.next_generation();
        let cancel = CancelToken::default();
        self.worker.send(Job::Fit {
            generation,
            train: PathBuf::from(train),
            cancel: cancel.flag(),
        });
        self.fit = Some(FitState::Fitting {
            generation,
            progress: None,
            cancel,
        });
    }

    /// The scanned sets that are switched on, in panel order.
    fn enabled_sets(&self) -> Vec<ImageSet> {
        self.sets
            .iter()
            .filter(|s| s.enabled)
            .filter_map(|s| s.set.clone())
            .collect()
    }

    fn load_model(&mut self, path: PathBuf) {
        self.loading_model = true;
        self.cancel_job();
        self.worker.send(Job::LoadModel {
            path,
            device: DeviceChoice::Auto,
        });
    }

    fn open_sets(&mut self) {
        let Some(model) = &self.model else { return };
        for entry in &mut self.sets {
            entry.set = None;
            self.worker.send(Job::OpenSet {
                spec: entry.spec.clone(),
                role: entry.role,
                classes: model.card.classes.clone(),
            });
        }
    }

    fn cancel_job(&mut self) {
        if let Some(job) = self.job.take() {
            job.cancel.cancel();
        }
    }

    /// Brings the display in line with the sliders: the computed scores, a re-score of the cached
    /// outputs (no model pass), or a new scoring job.
    fn refresh(&mut self) {
        if self.model.is_none() {
            self.refresh_opened();
            return;
        }
        let Some(wanted) = self.current_settings() else {
            return;
        };
        if self.sets.iter().any(|s| s.set.is_none()) {
            return; // scoring starts once every set is open
        }
        if wanted.method.detector().needs().fit && !self.has_fit() {
            if !self.is_fitting() {
                self.note(format!(
                    "{} needs a fit: choose an ID training folder in the side panel",
                    wanted.method.title()
                ));
            }
            return; // scoring starts once the fit is ready
        }
        let sets: Vec<ImageSet> = self.enabled_sets();
        let same_sets = self.result.as_ref().is_some_and(|r| same_sets(&r.sets, &sets));
        let showable = same_sets && self.result.as_ref().is_some_and(|r| r.can_show(&wanted));
        let on_display = same_sets
            && self
                .result
                .as_ref()
                .is_some_and(|r| r.shown == wanted && r.estimate.is_none());
        if !on_display
            && let Some(opened) = self.opened.as_ref().filter(|o| self::same_sets(&o.sets, &sets))
            && let Some(column) = opened.column_of(&wanted)
        {
            // A stored column of the results file on display: at once.
            self.cancel_job();
            self.rescoring = None;
            self.install_opened(column);
            return;
        }
        if !on_display
            && let Some(comparison) = self.comparison.as_ref().filter(|c| self::same_sets(&c.sets, &sets))
            && let Some(column) = comparison.column_of(&wanted)
        {
            // A compared method: its kept scores, at once.
            let (sets, run) = (comparison.sets.clone(), comparison.run_of(column));
            self.cancel_job();
            self.rescoring = None;
            self.install_result(wanted, sets, run);
            return;
        }
        if showable {
            self.cancel_job();
            let Some(result) = &mut self.result else { return };
            if result.shown == wanted && result.estimate.is_none() {
                self.rescoring = None;
            } else if result.computed == wanted {
                result.show_computed();
                self.rescoring = None;
                self.rederive();
            } else if self.rescoring.as_ref().is_none_or(|(_, s)| *s != wanted) {
                let cache = result.cache.clone();
                let generation = self.next_generation();
                self.worker.send(Job::Rescore {
                    generation,
                    cache,
                    settings: wanted.clone(),
                });
                self.rescoring = Some((generation, wanted));
            }
            return;
        }
        self.rescoring = None;
        if self.job.as_ref().is_some_and(|j| j.settings == wanted) && same_sets {
            return; // already computing exactly this
        }
        if sets.iter().all(|s| s.role != Role::Id) || sets.iter().all(|s| s.role != Role::Ood) {
            self.messages.push("enable at least one ID and one OOD set".into());
            return;
        }
        self.cancel_job();
        if same_sets {
            self.request_estimate(&wanted);
        }
        let generation = self.next_generation();
        let cancel = CancelToken::default();
        self.worker.send(Job::Score {
            generation,
            sets: sets.clone(),
            settings: wanted.clone(),
            batch_size: self.settings.batch_size.max(1),
            cancel: cancel.flag(),
        });
        self.job = Some(RunningJob {
            generation,
            sets,
            settings: wanted,
            progress: None,
            cancel,
            started: Instant::now(),
        });
    }

    /// Shows a message, once (not again while it is the latest).
    fn note(&mut self, message: String) {
        if self.messages.last() != Some(&message) {
            self.messages.push(message);
        }
    }

    fn next_generation(&mut self) -> u64 {
        let generation = self.next_generation;
        self.next_generation += 1;
        generation
    }

    /// While the exact scores of a method with an input step are computed, asks the worker for
    /// the first-order estimate (instant once the gradient norms of this step are known).
    fn request_estimate(&mut self, wanted: &ScoreSettings) {
        let Some(result) = &self.result else { return };
        let has_estimate = wanted.method.detector().first_order(0.5, 0.0).is_some();
        if !has_estimate || wanted.epsilon() == 0.0 || result.shown.method != wanted.method {
            return;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.worker.send(Job::Estimate {
            generation,
            images: sets_key(&result.sets),
            sets: result.sets.clone(),
            items: result.run.images.iter().map(|s| (s.set, s.index)).collect(),
            cache: result.cache.clone(),
            settings: wanted.clone(),
        });
        self.estimating = Some(generation);
    }

    /// Compares the estimate on display with the exact scores that replace it.
    fn measure_estimate(&mut self, settings: &ScoreSettings, run: &ScoreRun) {
        let Some(old) = &self.result else { return };
        if old.estimate.as_ref() != Some(settings) || old.scores.len() != run.images.len() {
            return;
        }
        let exact = run.scores();
        let diffs: Vec<f64> = old
            .scores
            .iter()
            .zip(exact)
            .map(|(e, s)| (*e as f64 - *s as f64).abs())
            .collect();
        let mean = diffs.iter().sum::<f64>() / diffs.len().max(1) as f64;
        let max = diffs.iter().copied().fold(0.0, f64::max);
        let exact_sets = {
            let mut sets: Vec<(String, Role, Vec<f32>)> =
                old.sets.iter().map(|s| (s.name.clone(), s.role, Vec::new())).collect();
            for (entry, score) in run.images.iter().zip(exact) {
                sets[entry.set].2.push(*score);
            }
            sets
        };
        let estimated = old.set_scores();
        let auroc = |sets: &[(String, Role, Vec<f32>)]| {
            Derived::new(sets, 10)
                .ood
                .iter()
                .map(|o| o.metrics.map_or(f64::NAN, |m| m.auroc))
                .collect::<Vec<_>>()
        };
        let auroc_gap = auroc(&estimated)
            .iter()
            .zip(auroc(&exact_sets))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let text = format!(
            "first-order estimate vs exact at ε = {}: mean |Δscore| {mean:.2e}, max {max:.2e}, AUROC off by ≤ {:.2} points",
            settings.epsilon(),
            100.0 * auroc_gap
        );
        eprintln!("oodscope: {text}");
        self.estimate_error = Some(text);
    }

    fn rederive(&mut self) {
        let Some(result) = &self.result else {
            self.derived = None;
            return;
        };
        let derived = Derived::new(&result.set_scores(), self.settings.bins);
        let (lo, hi) = derived.range;
        if self.threshold.is_none_or(|t| !(lo..=hi).contains(&t)) {
            self.threshold = derived.threshold_95.or(Some(lo));
        }
        self.derived = Some(derived);
    }

    /// Applies one worker event.
    fn on_event(&mut self, event: Event) {
        match event {
            Event::ModelLoaded(info) => {
                self.loading_model = false;
                self.settings.model = Some(info.path.display().to_string());
                // A method this model cannot run gives way to the first it can (one that needs the
                // fit waits for it when a training folder is set).
                let will_fit = self.settings.train.is_some();
                if info.missing(self.settings.method, will_fit).is_some() {
                    let usable = oodscope_engine::score::Method::all().find(|m| info.missing(*m, false).is_none());
                    if let Some(method) = usable {
                        self.settings.method = method;
                    }
                }
                self.model = Some(info);
                if self.opened.is_some() {
                    // The results file's sets and scores stay; the model re-scores what they lack.
                    self.start_fit();
                    self.refresh();
                    return;
                }
                self.result = None;
                self.derived = None;
                self.start_fit();
                self.open_sets();
            }
            Event::SetOpened { spec, set } => {
                if let Some(entry) = self.sets.iter_mut().find(|e| e.spec == spec && e.set.is_none()) {
                    entry.set = Some(set);
                }
                self.refresh();
            }
            Event::Progress { generation, progress } => {
                if let Some(job) = self.job.as_mut().filter(|j| j.generation == generation) {
                    job.progress = Some(progress);
                }
            }
            Event::Scored {
                generation,
                settings,
                run,
            } => {
                if self.job.as_ref().is_some_and(|j| j.generation == generation)
                    && let Some(job) = self.job.take()
                {
                    self.on_scored(settings, job.sets, run);
                }
            }
            Event::FilesScored { id, set, run, .. } => self.on_files_scored(id, &set, &run),
            Event::ResultsOpened { generation, results } => {
                if self.opening.as_ref().is_some_and(|(g, _)| *g == generation) {
                    self.opening = None;
                    self.on_results_opened(*results);
                }
            }
            Event::ResultsFailed { generation, message } => {
                if self.opening.as_ref().is_some_and(|(g, _)| *g == generation) {
                    self.opening = None;
                    self.messages.push(message);
                }
            }
            Event::DropFailed { id, message } => {
                for card in self.drops.iter_mut().filter(|c| c.drop == id) {
                    if matches!(card.outcome, DropOutcome::Scoring) {
                        card.outcome = DropOutcome::Failed(message.clone());
                    }
                }
            }
            Event::FitProgress { generation, progress } => {
                if let Some(FitState::Fitting {
                    generation: g,
                    progress: p,
                    ..
                }) = &mut self.fit
                    && *g == generation
                {
                    *p = Some(progress);
                }
            }
            Event::Fitted { generation, info, bank } => {
                if matches!(&self.fit, Some(FitState::Fitting { generation: g, .. }) if *g == generation) {
                    self.fit = Some(FitState::Ready {
                        info: Box::new(info),
                        bank,
                    });
                    self.refresh();
                }
            }
            Event::FitFailed { generation, message } => {
                if matches!(&self.fit, Some(FitState::Fitting { generation: g, .. }) if *g == generation) {
                    self.messages.push(message.clone());
                    self.fit = Some(FitState::Failed(message));
                }
            }
            Event::Rescored {
                generation,
                settings,
                scores,
            } => {
                if self.rescoring.as_ref().is_some_and(|(g, _)| *g == generation)
                    && let Some(result) = &mut self.result
                    && scores.len() == result.run.images.len()
                {
                    self.rescoring = None;
                    result.show_rescored(settings, scores);
                    self.rederive();
                    self.refresh(); // the sliders may have moved on meanwhile
                }
            }
            Event::Estimated {
                generation,
                settings,
                scores,
            } => {
                let current = self.job.as_ref().map(|j| j.settings.clone());
                if self.estimating == Some(generation)
                    && current.as_ref() == Some(&settings)
                    && let Some(result) = &mut self.result
                    && scores.len() == result.run.images.len()
                {
                    result.scores = scores;
                    result.estimate = Some(settings);
                    self.estimating = None;
                    self.rederive();
                }
            }
            Event::Perturbation {
                key,
                settings,
                values,
                shape,
            } => {
                self.perturbation = Some(Perturbation {
                    key,
                    settings,
                    values,
                    shape,
                });
            }
            Event::Cancelled { generation } => {
                if self.job.as_ref().is_some_and(|j| j.generation == generation) {
                    self.job = None;
                }
                if matches!(&self.fit, Some(FitState::Fitting { generation: g, .. }) if *g == generation) {
                    self.fit = None;
                }
                if self.tuning.as_ref().is_some_and(|j| j.generation == generation) {
                    self.tuning = None;
                }
                if self.comparing.as_ref().is_some_and(|j| j.generation == generation) {
                    self.comparing = None;
                }
            }
            Event::CompareProgress { generation, progress } => {
                if let Some(job) = self.comparing.as_mut().filter(|j| j.generation == generation) {
                    job.progress = Some(progress);
                }
            }
            Event::Compared {
                generation,
                result,
                unsupported,
            } => {
                if self.comparing.as_ref().is_some_and(|j| j.generation == generation) {
                    self.comparing = None;
                    self.comparison = Some(comparison::Comparison::new(generation, *result, unsupported));
                    self.refresh(); // the current method's column becomes the result
                }
            }
            Event::TuneProgress { generation, progress } => {
                if let Some(job) = self.tuning.as_mut().filter(|j| j.generation == generation) {
                    job.progress = Some(progress);
                }
            }
            Event::Tuned { generation, result } => {
                if self.tuning.as_ref().is_some_and(|j| j.generation == generation) {
                    self.tuning = None;
                    self.tune_result = Some(result);
                    self.settings.tab = Tab::Tuning;
                }
            }
            Event::Error(message) => {
                self.loading_model = false;
                if self.model.is_none()
                    && let Some((_, settings)) = self.rescoring.take()
                {
                    self.stored_failure = Some(settings);
                }
                if message.contains("no images found") || message.contains("no such folder") {
                    self.sets.retain(|s| s.set.is_some());
                }
                self.job = None;
                self.rescoring = None;
                self.messages.push(message);
                self.refresh();
            }
        }
    }

    fn on_scored(&mut self, settings: ScoreSettings, sets: Vec<ImageSet>, run: ScoreRun) {
        self.measure_estimate(&settings, &run);
        let skipped = run.skipped.len();
        if skipped > 0 {
            self.messages
                .push(format!("{skipped} files skipped (see the Sets panel)"));
        }
        self.install_result(settings, sets, run);
        self.refresh(); // the sliders may have moved on meanwhile
    }

    /// Asks the worker to read a results file (the view on display stays until it has).
    fn open_results(&mut self, path: PathBuf) {
        let generation = self.next_generation();
        self.worker.send(Job::OpenResults {
            generation,
            path: path.clone(),
        });
        self.opening = Some((generation, path));
    }

    /// Shows a results file that the worker read: its sets replace the panel's, its first stored
    /// column becomes the result.
    fn on_results_opened(&mut self, results: oodscope_engine::results::Results) {
        let missing = missing_images(&results.sets);
        let opened = opened::OpenedResults::new(results);
        let Some(first) = opened.run.methods.first().cloned() else {
            self.messages
                .push(format!("{}: no score column", opened.path.display()));
            return;
        };
        if let Some((missing, checked)) = missing.filter(|(m, _)| *m > 0) {
            self.messages.push(format!(
                "{}: {missing} of {checked} image paths no longer exist (moved?): the gallery shows placeholders",
                opened.path.display()
            ));
        }
        self.cancel_job();
        self.rescoring = None;
        self.sets = opened
            .meta
            .sets
            .iter()
            .zip(&opened.sets)
            .map(|(meta, set)| SetEntry {
                spec: meta.source.clone(),
                role: set.role,
                enabled: true,
                set: Some(set.clone()),
            })
            .collect();
        self.settings.method = first.method;
        self.settings
            .params
            .insert(first.method.name().to_string(), first.params.clone());
        self.threshold = None;
        self.opened = Some(opened);
        self.install_opened(0);
    }

    /// Switching to a method the open results file stores: its stored parameters.
    fn adopt_stored_params(&mut self, method: oodscope_engine::score::Method) {
        if let Some(opened) = &self.opened
            && let Some(column) = opened.column_of_method(method)
        {
            let params = opened.run.methods[column].params.clone();
            self.settings.params.insert(method.name().to_string(), params);
        }
    }

    /// Shows stored column `column` of the open results file.
    fn install_opened(&mut self, column: usize) {
        let Some(opened) = &self.opened else { return };
        let (settings, sets, run) = (
            opened.run.methods[column].clone(),
            opened.sets.clone(),
            opened.run_of(column),
        );
        let cache = opened.cache.clone();
        self.install_result(settings, sets, run);
        if let Some(result) = &mut self.result {
            result.cache = cache;
        }
    }

    /// Brings the display in line with the sliders when a results file is open without a model:
    /// a stored column, a re-score of the saved logits / features, or a line saying what it needs.
    fn refresh_opened(&mut self) {
        let (Some(wanted), Some(opened)) = (self.current_settings(), &self.opened) else {
            return;
        };
        if self.result.as_ref().is_some_and(|r| r.shown == wanted) {
            self.rescoring = None;
            return;
        }
        if let Some(column) = opened.column_of(&wanted) {
            self.rescoring = None;
            self.install_opened(column);
            return;
        }
        if self.stored_failure.as_ref() == Some(&wanted) {
            return; // it failed, and said why
        }
        match opened.missing(&wanted) {
            None => {
                if self.rescoring.as_ref().is_none_or(|(_, s)| *s != wanted) {
                    let cache = opened.cache.clone();
                    let generation = self.next_generation();
                    self.worker.send(Job::Rescore {
                        generation,
                        cache,
                        settings: wanted.clone(),
                    });
                    self.rescoring = Some((generation, wanted));
                }
            }
            Some(why) => {
                self.rescoring = None;
                self.note(why);
            }
        }
    }

    /// Shows a run of one method as the current result.
    fn install_result(&mut self, settings: ScoreSettings, sets: Vec<ImageSet>, run: ScoreRun) {
        let widths = self.model.as_ref().map(ModelInfo::member_widths).unwrap_or_default();
        self.result = Some(ScoredResult::new(settings, sets, run, widths));
        self.selected = None;
        self.result_serial += 1;
        self.rederive();
    }

    /// Fills in the cards of drop `id` from the worker's run over its images.
    fn on_files_scored(&mut self, id: u64, set: &ImageSet, run: &ScoreRun) {
        let Some(model) = &self.model else { return };
        let oodscope_data::SetSource::Folder { files, .. } = &set.source else {
            return;
        };
        let mut results: Vec<Option<usize>> = vec![None; files.len()];
        for (i, s) in run.images.iter().enumerate() {
            if let Some(slot) = results.get_mut(s.index) {
                *slot = Some(i);
            }
        }
        for (file, found) in files.iter().zip(results) {
            let outcome = match found {
                Some(i) => {
                    let s = &run.images[i];
                    let probabilities = oodscope_engine::score::classes::class_probabilities(
                        run.logits_of(i),
                        &model.layout,
                        model.card.num_classes(),
                    );
                    DropOutcome::Scored(DropScore {
                        score: run.scores()[i],
                        pred: s.pred as usize,
                        pred_prob: s.pred_prob,
                        top5: oodscope_engine::score::classes::top_classes(&probabilities, 5),
                    })
                }
                None => DropOutcome::Failed(
                    run.skipped
                        .iter()
                        .find(|k| Path::new(&k.path) == file.path)
                        .map_or("skipped".into(), |k| k.reason.clone()),
                ),
            };
            let card = self
                .drops
                .iter_mut()
                .find(|c| c.drop == id && c.path == file.path && matches!(c.outcome, DropOutcome::Scoring));
            if let Some(card) = card {
                card.outcome = outcome;
            }
        }
    }

    /// Applies the commands the panels emitted this frame; returns whether there were any.
    fn apply_commands(&mut self, ctx: &egui::Context) -> bool {
        let commands = std::mem::take(&mut self.commands);
        let any = !commands.is_empty();
        for command in commands {
            self.apply(command, ctx);
        }
        any
    }

    fn apply(&mut self, command: Command, ctx: &egui::Context) {
        match command {
            Command::LoadModel(path) => self.load_model(path),
            Command::OpenResults(path) => self.open_results(path),
            Command::AddSet { spec, role } => {
                // The same folder (however written) or the same noise spec is refused: it would
                // show twice in the metrics and once in the legend.
                let key = |s: &str| std::fs::canonicalize(s).unwrap_or_else(|_| PathBuf::from(s));
                if let Some(existing) = self.sets.iter().find(|e| key(&e.spec) == key(&spec)) {
                    self.messages.push(format!(
                        "{spec} is already an {} set: not added again",
                        existing.role.name().to_uppercase()
                    ));
                    return;
                }
                self.sets.push(SetEntry {
                    spec: spec.clone(),
                    role,
                    enabled: true,
                    set: None,
                });
                if let Some(model) = &self.model {
                    self.worker.send(Job::OpenSet {
                        spec,
                        role,
                        classes: model.card.classes.clone(),
                    });
                }
            }
            Command::RemoveSet(i) if i < self.sets.len() => {
                self.sets.remove(i);
                self.refresh();
            }
            Command::ToggleSet(i) if i < self.sets.len() => {
                self.sets[i].enabled = !self.sets[i].enabled;
                self.refresh();
            }
            Command::SetMethod(m) => {
                self.settings.method = m;
                self.adopt_stored_params(m);
                self.threshold = None;
                self.refresh();
            }
            Command::SetParam(name, value) => {
                self.settings.set_param(&name, value);
                self.refresh();
            }
            Command::SetThreshold(t) => self.threshold = Some(t),
            Command::ThresholdAt95Tpr => {
                self.threshold = self.derived.as_ref().and_then(|d| d.threshold_95).or(self.threshold);
            }
            Command::SetBins(b) => {
                self.settings.bins = b.clamp(5, 400);
                if let (Some(d), Some(r)) = (&mut self.derived, &self.result) {
                    d.rebin(&r.set_scores(), self.settings.bins);
                }
            }
            Command::SetTab(tab) => self.settings.tab = tab,
            Command::Rescore => {
                self.result = None;
                self.refresh();
            }
            Command::Cancel => {
                self.cancel_job();
                if let Some(FitState::Fitting { cancel, .. }) = &self.fit {
                    cancel.cancel();
                }
                if let Some(t) = self.tuning.take() {
                    t.cancel.cancel();
                }
                if let Some(c) = self.comparing.take() {
                    c.cancel.cancel();
                }
            }
            Command::Tune => self.start_tuning(),
            Command::Compare => self.start_compare(),
            Command::SetParams(params) => {
                for (name, value) in params.iter() {
                    self.settings.set_param(name, value);
                }
                self.refresh();
            }
            Command::ScoreFiles(paths) => match self.current_settings() {
                Some(settings) => self.score_drop(paths, settings),
                _ => self.messages.push("load a model before dropping images".into()),
            },
            Command::AskFolderRole(path) => self.pending_folder = Some(path),
            Command::ResolveFolderAsTrain => {
                if let Some(path) = self.pending_folder.take() {
                    self.apply(Command::SetTrain(Some(path.display().to_string())), ctx);
                }
            }
            Command::SetTrain(train) => {
                self.settings.train = train;
                self.start_fit();
                self.refresh();
            }
            Command::ResolveFolder(role) => {
                if let (Some(path), Some(role)) = (self.pending_folder.take(), role) {
                    self.apply(
                        Command::AddSet {
                            spec: path.display().to_string(),
                            role,
                        },
                        ctx,
                    );
                }
            }
            Command::Export { kind, path } => {
                let path = path.unwrap_or_else(|| Path::new(&self.settings.export_dir).join(kind.default_name()));
                match export::export(self, kind, &path) {
                    Ok(()) => self.messages.push(format!("wrote {}", path.display())),
                    Err(e) => self.messages.push(format!("export failed: {e:#}")),
                }
            }
            Command::Select(i) => {
                self.selected = i;
                self.request_perturbation();
            }
            Command::DismissMessage => {
                self.messages.clear();
            }
            Command::Message(text) => self.messages.push(text),
            Command::SetLogY(on) => self.settings.log_y = on,
            Command::SetDensity(on) => self.settings.density = on,
            Command::SetExportDir(dir) => self.settings.export_dir = dir,
            Command::RemoveSet(_) | Command::ToggleSet(_) => {}
        }
        ctx.request_repaint();
    }

    /// Shows a card per dropped image at once ("scoring…") and sends the images on the worker's
    /// priority lane, which scores them between the batches of any running job.
    fn score_drop(&mut self, paths: Vec<PathBuf>, settings: ScoreSettings) {
        let id = self.next_generation();
        for path in &paths {
            self.drops.insert(
                0,
                DropCard {
                    path: path.clone(),
                    settings: settings.clone(),
                    drop: id,
                    outcome: DropOutcome::Scoring,
                },
            );
        }
        self.worker.score_drop(crate::worker::DropJob { id, paths, settings });
        self.settings.tab = Tab::Dropped;
    }

    fn start_tuning(&mut self) {
        let Some(model) = self
            .model
            .as_ref()
            .filter(|_| !self.sets.iter().any(|s| s.set.is_none()))
        else {
            self.messages
                .push("wait for the model and sets to load before tuning".into());
            return;
        };
        let options = match gui_tune_options(self.settings.method, &model.dims, self.settings.batch_size.max(1)) {
            Ok(options) => options,
            Err(e) => {
                self.messages.push(e);
                return;
            }
        };
        if let Some(t) = self.tuning.take() {
            t.cancel.cancel();
        }
        let sets: Vec<ImageSet> = self.enabled_sets();
        let generation = self.next_generation;
        self.next_generation += 1;
        let cancel = CancelToken::default();
        self.worker.send(Job::Tune {
            generation,
            sets,
            options,
            cancel: cancel.flag(),
        });
        self.tuning = Some(TuningJob {
            generation,
            progress: None,
            cancel,
        });
        self.settings.tab = Tab::Tuning;
    }

    /// Starts the comparison of every method the model (and the fit, if ready) supports, each at its
    /// sliders' values, on the enabled sets, in one pass.
    fn start_compare(&mut self) {
        let (Some(model), Some(dims)) = (
            self.model
                .as_ref()
                .filter(|_| !self.sets.iter().any(|s| s.set.is_none())),
            self.dims(),
        ) else {
            self.messages
                .push("wait for the model and sets to load before comparing".into());
            return;
        };
        let sets = self.enabled_sets();
        if sets.iter().all(|s| s.role != Role::Id) || sets.iter().all(|s| s.role != Role::Ood) {
            self.messages.push("enable at least one ID and one OOD set".into());
            return;
        }
        let requested: Vec<oodscope_engine::score::Method> = oodscope_engine::score::Method::all().collect();
        let selection = oodscope_engine::compare::select(&requested, &model.capabilities, self.has_fit());
        let settings: Vec<ScoreSettings> = selection
            .supported
            .iter()
            .map(|&m| {
                let given = self.settings.params.get(m.name()).cloned().unwrap_or_default();
                ScoreSettings::new(m, &given, &dims).unwrap_or_else(|_| ScoreSettings::default_for(m, &dims))
            })
            .collect();
        if let Some(c) = self.comparing.take() {
            c.cancel.cancel();
        }
        let generation = self.next_generation();
        let cancel = CancelToken::default();
        self.worker.send(Job::Compare {
            generation,
            sets,
            settings,
            unsupported: selection.unsupported,
            batch_size: self.settings.batch_size.max(1),
            cancel: cancel.flag(),
        });
        self.comparing = Some(comparison::CompareJob {
            generation,
            progress: None,
            cancel,
        });
        self.settings.tab = Tab::Compare;
    }

    /// Asks the worker for the selected image's perturbation when ε > 0 (and not already there).
    fn request_perturbation(&mut self) {
        let (Some(i), Some(result)) = (self.selected, &self.result) else {
            return;
        };
        let Some(entry) = result.run.images.get(i) else { return };
        let settings = result.shown.clone();
        let key = (entry.set, entry.index);
        if settings.epsilon() == 0.0
            || self
                .perturbation
                .as_ref()
                .is_some_and(|p| p.key == key && p.settings == settings)
        {
            return;
        }
        let source = match &result.sets[entry.set].source {
            oodscope_data::SetSource::Folder { files, .. } => {
                crate::worker::PixelSource::File(files[entry.index].path.clone())
            }
            oodscope_data::SetSource::Noise { kind, first, .. } => {
                crate::worker::PixelSource::Noise(*kind, first + entry.index)
            }
        };
        self.worker.send(Job::Perturbation { key, source, settings });
    }

    /// The settings to persist: current sliders, model and sets.
    pub fn settings_to_save(&self) -> Settings {
        let mut s = self.settings.clone();
        s.sets = self
            .sets
            .iter()
            .map(|e| SavedSet {
                spec: e.spec.clone(),
                ood: e.role == Role::Ood,
                enabled: e.enabled,
            })
            .collect();
        s
    }
}

/// Identifies a list of sets (names, roles, sizes) for the worker's cache of gradient norms.
fn sets_key(sets: &[ImageSet]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for s in sets {
        (&s.name, s.role.name(), s.len()).hash(&mut hasher);
    }
    hasher.finish()
}

/// How many of the folder sets' image paths no longer exist, of how many checked (at most
/// `MAX_CHECKED`, spread evenly); `None` when there is no folder set.
fn missing_images(sets: &[ImageSet]) -> Option<(usize, usize)> {
    const MAX_CHECKED: usize = 20_000;
    let files: Vec<&Path> = sets
        .iter()
        .filter_map(|s| match &s.source {
            oodscope_data::SetSource::Folder { files, .. } => Some(files.iter().map(|f| f.path.as_path())),
            _ => None,
        })
        .flatten()
        .collect();
    if files.is_empty() {
        return None;
    }
    let step = files.len().div_ceil(MAX_CHECKED).max(1);
    let checked: Vec<&&Path> = files.iter().step_by(step).collect();
    let missing = checked.iter().filter(|p| !p.exists()).count();
    Some((missing, checked.len()))
}

fn same_sets(a: &[ImageSet], b: &[ImageSet]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.name == y.name && x.role == y.role && x.len() == y.len())
}

impl OodscopeApp {
    /// Applies the worker's events (a frame's logic, before drawing) and advances the screenshot
    /// tour.
    pub fn drain_events(&mut self, ctx: &egui::Context) {
        while let Ok(event) = self.worker.events.try_recv() {
            self.on_event(event);
        }
        if self.job.is_some() || self.tuning.is_some() || self.comparing.is_some() || self.is_fitting() {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
        tour::advance(self, ctx);
    }

    /// Applies the commands the panels emitted while drawing; returns whether there were any.
    pub fn apply_drawn(&mut self, commands: Vec<Command>, ctx: &egui::Context) -> bool {
        self.commands.extend(commands);
        self.apply_commands(ctx)
    }
}
