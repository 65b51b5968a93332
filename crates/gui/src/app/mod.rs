//! The app's state and what the frame asks of it. The logic that changes the state lives beside it,
//! one job a file: `events` applies the worker's events, `command_handling` the panels' commands,
//! `launch` starts background jobs (each a task of the `tasks` registry), `refresh` decides what
//! brings the display in line with the sliders. Drawing lives in `crate::ui` (which reads this
//! state), the frame that joins them in `crate::window`; nothing here touches a tensor or imports
//! `ui`.

pub mod command;
mod command_handling;
pub mod comparison;
pub mod deploy;
mod events;
pub mod export;
mod launch;
pub mod message;
pub mod refresh;
pub mod results_file;
pub mod settings;
pub mod shown;
pub mod tasks;
pub mod tour;
pub mod view;
pub mod watching;

use std::path::PathBuf;

use oodscope_data::{ImageSet, Role};
use oodscope_engine::detect::Dims;
use oodscope_engine::results::stored::Beside;
use oodscope_engine::score::ScoreSettings;
use oodscope_engine::stats::FitInfo;

use crate::worker::{ModelInfo, Worker};
pub use command::{Command, ExportKind};
pub use launch::gui_tune_options;
pub use settings::{SavedSet, Settings, Tab};
use shown::ShownResult;
use tasks::{Task, TaskKind, Tasks, kind};
use view::Derived;

/// One image set in the side panel.
pub struct SetEntry {
    pub spec: String,
    pub role: Role,
    pub enabled: bool,
    /// Scanned set, once the worker has opened it.
    pub set: Option<ImageSet>,
}

/// The fit of the methods that need one, once the worker has it (or could not make it); while it
/// is being made it is a task (`TaskKind::Fit`).
pub enum FitState {
    /// Loaded in the worker; `bank` is the KNN bank's size.
    Ready {
        info: Box<FitInfo>,
        bank: Option<usize>,
        /// Whether the fit keeps the head `(W, b)` (one opened beside a results file).
        head: bool,
    },
    Failed(String),
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
    pub result: Option<ShownResult>,
    pub derived: Option<Derived>,
    pub threshold: Option<f32>,
    pub drops: Vec<DropCard>,
    pub pending_folder: Option<PathBuf>,
    pub selected: Option<usize>,
    /// The status bar's lines (errors, files written, notes).
    pub messages: message::Messages,
    /// Counts the results received (views that cache per result, as the gallery's thumbnails,
    /// start afresh when it changes).
    pub result_serial: u64,
    /// How far the last first-order estimate was from the exact scores, once they arrived.
    pub estimate_error: Option<String>,
    /// The fit on the ID training folder, once ready (or failed).
    pub fit: Option<FitState>,
    /// The last tuning result.
    pub tune_result: Option<Box<oodscope_engine::tune::TuneResult>>,
    /// The last comparison (every method's scores, kept).
    pub comparison: Option<comparison::Comparison>,
    /// `x̃ − x` of the selected image under the shown settings, once the worker has computed it.
    pub perturbation: Option<Perturbation>,
    /// The screenshot tour, when asked for on the command line.
    pub tour: Option<tour::Tour>,
    /// The results file on display (its stored columns are methods shown without the model).
    pub opened: Option<results_file::ResultsFile>,
    /// The detector file open (or being opened), with its manifest and calibration.
    pub detector: Option<deploy::DetectorView>,
    /// The server watched, with its latest answer.
    pub watch: Option<watching::Watch>,
    /// Every background job in flight.
    pub tasks: Tasks,
    /// Settings whose re-score of the open file's saved outputs failed (not asked for again).
    stored_failure: Option<ScoreSettings>,
    /// Wakes the window (from the watch's polling thread).
    repaint: egui::Context,
    worker: Worker,
    commands: Vec<Command>,
}

impl OodscopeApp {
    /// Starts the app with `settings` (the persisted ones, the demo, or the command line's).
    pub fn new(ctx: &egui::Context, settings: Settings) -> Self {
        let waker_ctx = ctx.clone();
        let worker = Worker::start(std::sync::Arc::new(move || waker_ctx.request_repaint()));
        let threshold = settings.threshold;
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
            threshold,
            drops: Vec::new(),
            pending_folder: None,
            selected: None,
            messages: message::Messages::default(),
            result_serial: 0,
            perturbation: None,
            estimate_error: None,
            fit: None,
            tune_result: None,
            comparison: None,
            tour: None,
            opened: None,
            detector: None,
            watch: None,
            tasks: Tasks::default(),
            stored_failure: None,
            repaint: ctx.clone(),
            worker,
            commands: Vec::new(),
        };
        if let Some(model) = app.settings.model.clone() {
            app.load_model(PathBuf::from(model));
        }
        if let Some(results) = app.settings.results.clone() {
            app.open_results(PathBuf::from(results));
        }
        if let Some(url) = app.settings.watch.clone() {
            app.start_watch(url);
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

    /// Whether the view waits for something: the model, a set, a scoring job, a re-score or a
    /// results file.
    pub fn is_busy(&self) -> bool {
        self.tasks.any(|k| {
            kind::score(k) || kind::open_results(k) || kind::rescore(k) || kind::load_model(k) || kind::open_set(k)
        }) || self.sets.iter().any(|s| s.set.is_none())
    }

    /// The scoring job in flight, if any.
    pub fn scoring(&self) -> Option<&Task> {
        self.tasks.find(kind::score).map(|(_, t)| t)
    }

    /// The settings the scoring job in flight computes.
    pub fn scoring_settings(&self) -> Option<&ScoreSettings> {
        match &self.scoring()?.kind {
            TaskKind::Score { settings, .. } => Some(settings),
            _ => None,
        }
    }

    /// The id of the scoring job in flight and its latest progress (in images).
    pub fn scoring_progress(&self) -> Option<(tasks::TaskId, Option<oodscope_engine::pipeline::Progress>)> {
        let (id, task) = self.tasks.find(kind::score)?;
        let progress = match &task.progress {
            Some(tasks::TaskProgress::Run(p)) => Some(*p),
            _ => None,
        };
        Some((id, progress))
    }

    pub fn is_scoring(&self) -> bool {
        self.tasks.any(kind::score)
    }

    /// Whether a re-score of cached or saved outputs is in flight.
    pub fn is_rescoring(&self) -> bool {
        self.tasks.any(kind::rescore)
    }

    /// The results file being read, if any.
    pub fn opening(&self) -> Option<&PathBuf> {
        self.tasks.iter().find_map(|(_, t)| match &t.kind {
            TaskKind::OpenResults { path } => Some(path),
            _ => None,
        })
    }

    pub fn is_tuning(&self) -> bool {
        self.tasks.any(kind::tune)
    }

    pub fn is_comparing(&self) -> bool {
        self.tasks.any(kind::compare)
    }

    /// Whether a fit is being made or read.
    pub fn is_fitting(&self) -> bool {
        self.tasks.any(kind::fit)
    }

    /// The latest progress of the newest task that `matches`, with the task.
    pub fn progress_of(&self, matches: impl Fn(&TaskKind) -> bool) -> Option<&Task> {
        self.tasks.find(matches).map(|(_, t)| t)
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
            (Some(r), Some(s)) => !r.holds(&s),
            _ => false,
        }
    }

    /// Whether the app has a fit for the methods that need one.
    pub fn has_fit(&self) -> bool {
        matches!(self.fit, Some(FitState::Ready { .. }))
    }

    /// What is open beside a results file's saved outputs (a fit, the head it keeps).
    pub fn beside(&self) -> Beside {
        match &self.fit {
            Some(FitState::Ready { head, .. }) => Beside { fit: true, head: *head },
            _ => Beside::default(),
        }
    }

    /// The model's dimensions (or the results file's), with the fit's bank size (KNN's k is at
    /// most that).
    pub fn dims(&self) -> Option<Dims> {
        let bank = match &self.fit {
            Some(FitState::Ready { bank, .. }) => *bank,
            _ => None,
        };
        let dims = match self.model.as_ref() {
            Some(model) => model.dims,
            None => self.opened.as_ref()?.dims(),
        };
        Some(Dims { bank, ..dims })
    }

    /// The scanned sets that are switched on, in panel order.
    fn enabled_sets(&self) -> Vec<ImageSet> {
        self.sets
            .iter()
            .filter(|s| s.enabled)
            .filter_map(|s| s.set.clone())
            .collect()
    }

    /// Says what the user has to do, once (not again while it is the latest message).
    fn note(&mut self, message: String) {
        self.messages.add_once(message::MessageKind::Error, message);
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

    /// Shows a run of one method as the current result.
    fn install_result(&mut self, settings: ScoreSettings, sets: Vec<ImageSet>, run: oodscope_engine::score::ScoreRun) {
        let widths = self.model.as_ref().map(ModelInfo::member_widths).unwrap_or_default();
        self.result = Some(ShownResult::new(settings, sets, run, widths));
        self.selected = None;
        self.result_serial += 1;
        self.rederive();
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

    /// Shows the open results file's own score column `name` in place of the method's scores, when
    /// the result on display is the file's images in its order.
    fn show_external(&mut self, name: &str) {
        let Some(opened) = &self.opened else { return };
        let Some(e) = opened.run.external.iter().position(|n| n == name) else {
            return;
        };
        let Some(scores) = opened.run.columns.get(opened.run.methods.len() + e).cloned() else {
            return;
        };
        let same_images = |r: &ShownResult| {
            r.run.images.len() == opened.run.images.len()
                && r.run
                    .images
                    .iter()
                    .zip(&opened.run.images)
                    .all(|(a, b)| a.set == b.set && a.index == b.index)
        };
        let shown = match &mut self.result {
            Some(r) if same_images(r) => r.show_external(name.to_string(), scores),
            _ => false,
        };
        if shown {
            self.threshold = None;
            self.rederive();
        } else {
            self.messages.push(format!(
                "{name} (external) scores the results file's images: wait for the file's sets to be shown"
            ));
        }
    }

    /// Shows a results file that stores no method's column (one written by hand): its first own
    /// column where it has one, else its logits' MSP baseline, as a placeholder until the method on
    /// the sliders is computed from the saved outputs (where they can give it).
    fn install_placeholder(&mut self) {
        let Some(opened) = &self.opened else { return };
        let external = opened.run.external.first().cloned();
        let scores = match external {
            Some(_) => opened.run.columns.first().cloned().unwrap_or_default(),
            None => opened.run.images.iter().map(|i| i.baseline.unwrap_or(0.0)).collect(),
        };
        let settings = self
            .current_settings()
            .unwrap_or_else(|| ScoreSettings::default_for(self.settings.method, &opened.dims()));
        let run = oodscope_engine::score::ScoreRun {
            images: opened.run.images.clone(),
            external: external.iter().cloned().collect(),
            columns: vec![scores.clone()],
            skipped: opened.run.skipped.clone(),
            ..Default::default()
        };
        let (sets, cache) = (opened.sets.clone(), opened.cache.clone());
        self.install_result(settings, sets, run);
        if let Some(result) = &mut self.result {
            result.cache = cache;
            result.placeholder = true;
            if let Some(name) = external {
                // The same values the run holds: derived already by `install_result`.
                result.show_external(name, scores);
            }
        }
        self.refresh();
    }

    /// The settings to persist: current sliders, model and sets.
    pub fn settings_to_save(&self) -> Settings {
        let mut s = self.settings.clone();
        s.threshold = self.threshold;
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

    /// Applies the worker's events (a frame's logic, before drawing), takes the watched server's
    /// latest answers, and advances the screenshot tour.
    pub fn drain_events(&mut self, ctx: &egui::Context) {
        while let Ok(event) = self.worker.events.try_recv() {
            self.on_event(event);
        }
        if let Some(watch) = &mut self.watch {
            watch.drain(ctx);
        }
        if self.tasks.iter().any(|(_, t)| t.kind.is_long()) {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
        tour::advance(self, ctx);
    }

    /// Applies the commands the panels emitted while drawing; returns whether there were any.
    pub fn apply_drawn(&mut self, commands: Vec<Command>, ctx: &egui::Context) -> bool {
        self.commands.extend(commands);
        let commands = std::mem::take(&mut self.commands);
        let any = !commands.is_empty();
        for command in commands {
            self.apply(command, ctx);
        }
        any
    }
}

/// Whether two lists of sets are the same sets (names, roles, sizes).
fn same_sets(a: &[ImageSet], b: &[ImageSet]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.name == y.name && x.role == y.role && x.len() == y.len())
}
