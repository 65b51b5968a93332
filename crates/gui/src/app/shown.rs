//! A scoring result as the app holds it: what was computed (settings, sets, per-image results), the
//! clean outputs the worker re-scores without the model, and the scores on display (the method's,
//! or a results file's own score column shown in their place).

use std::sync::Arc;

use oodscope_data::{ImageSet, Role};
use oodscope_engine::detect::cache::{CachedOutputs, can_rescore};
use oodscope_engine::score::{ScoreRun, ScoreSettings};

pub struct ShownResult {
    /// The settings the model ran with.
    pub computed: ScoreSettings,
    /// The settings the displayed scores correspond to.
    pub shown: ScoreSettings,
    pub sets: Vec<ImageSet>,
    /// Per-image records (its logits and features moved to `cache`).
    pub run: ScoreRun,
    /// The run's clean outputs, shared with re-score jobs.
    pub cache: Arc<CachedOutputs>,
    /// One per entry of `run.images`.
    pub scores: Vec<f32>,
    /// The ID images' classification accuracy (computed once: a pass over every image).
    pub id_accuracy: Option<f64>,
    /// When set, `scores` are a first-order estimate for these settings (ε differs from `shown`),
    /// displayed until the exact scores arrive.
    pub estimate: Option<ScoreSettings>,
    /// A results file's own ("external") score column shown in place of the method's scores.
    pub external: Option<ExternalShown>,
    /// No method's scores yet (a results file that stores none): `scores` stand in until the
    /// method on the sliders is computed from the saved outputs, where it can be.
    pub placeholder: bool,
}

/// A results file's own score column on display; the method's scores wait beside it.
pub struct ExternalShown {
    /// The column's name in the file.
    pub name: String,
    method_scores: Vec<f32>,
}

impl ShownResult {
    /// `member_widths`: an ensemble's member logit widths (empty for one model).
    pub fn new(settings: ScoreSettings, sets: Vec<ImageSet>, mut run: ScoreRun, member_widths: Vec<usize>) -> Self {
        let scores = run.scores().to_vec();
        let cache = CachedOutputs {
            logits: std::mem::take(&mut run.logits),
            logit_width: run.logit_width,
            features: std::mem::take(&mut run.features),
            feature_width: run.feature_width,
            member_widths,
            blocks: std::mem::take(&mut run.blocks),
            rows: run.images.len(),
        };
        let id_accuracy = run.accuracy(&oodscope_engine::score::run::sets_with_role(&sets, Role::Id));
        ShownResult {
            id_accuracy,
            computed: settings.clone(),
            shown: settings,
            sets,
            run,
            cache: Arc::new(cache),
            scores,
            estimate: None,
            external: None,
            placeholder: false,
        }
    }

    /// Shows the file's own column `name` in place of the method's scores (one per image, in the
    /// result's order); false when the counts differ.
    pub fn show_external(&mut self, name: String, scores: Vec<f32>) -> bool {
        if scores.len() != self.run.images.len() {
            return false;
        }
        let method_scores = match self.external.take() {
            Some(e) => e.method_scores,
            None => std::mem::take(&mut self.scores),
        };
        self.scores = scores;
        self.external = Some(ExternalShown { name, method_scores });
        true
    }

    /// Shows the method's scores again; false when they were on display already, or when there are
    /// none yet (a placeholder: the file's column stays until they are computed).
    pub fn hide_external(&mut self) -> bool {
        if self.placeholder {
            return false;
        }
        match self.external.take() {
            Some(e) => {
                self.scores = e.method_scores;
                true
            }
            None => false,
        }
    }

    /// The settings of the scores on display: `None` while the file's own column is shown, or
    /// before any method's scores (a placeholder).
    pub fn method_shown(&self) -> Option<&ScoreSettings> {
        (self.external.is_none() && !self.placeholder).then_some(&self.shown)
    }

    /// Whether the method's scores at `wanted` are what the result holds (shown or waiting beside
    /// the file's own column): nothing needs computing.
    pub fn holds(&self, wanted: &ScoreSettings) -> bool {
        !self.placeholder && self.shown == *wanted
    }

    /// What the displayed scores are: the method with its parameters, or `NAME (external)`.
    pub fn title(&self) -> String {
        match &self.external {
            Some(e) => format!("{} (external)", e.name),
            None => self.shown.describe(),
        }
    }

    /// The clean logits of entry `i`.
    pub fn logits_of(&self, i: usize) -> &[f32] {
        let w = self.cache.logit_width;
        self.cache.logits.get(i * w..(i + 1) * w).unwrap_or(&[])
    }

    /// Whether `wanted` can be shown without running the model: it is what was computed, or its
    /// scores follow from the cached outputs (no input step).
    pub fn can_show(&self, wanted: &ScoreSettings) -> bool {
        (!self.placeholder && self.computed == *wanted)
            || (self.cache.logit_width > 0 && can_rescore(wanted, &self.cache))
    }

    /// Shows the computed scores again (when `wanted` is what was computed).
    pub fn show_computed(&mut self) {
        self.scores = self.run.scores().to_vec();
        self.shown = self.computed.clone();
        self.estimate = None;
        self.external = None;
        self.placeholder = false;
    }

    /// Shows re-scored values for `settings`.
    pub fn show_rescored(&mut self, settings: ScoreSettings, scores: Vec<f32>) {
        self.scores = scores;
        self.shown = settings;
        self.estimate = None;
        self.external = None;
        self.placeholder = false;
    }

    /// (name, role, displayed scores) of each set, in order.
    pub fn set_scores(&self) -> Vec<(String, Role, Vec<f32>)> {
        let mut out: Vec<(String, Role, Vec<f32>)> =
            self.sets.iter().map(|s| (s.name.clone(), s.role, Vec::new())).collect();
        for (entry, score) in self.run.images.iter().zip(&self.scores) {
            out[entry.set].2.push(*score);
        }
        out
    }

    /// The run as displayed: its first column replaced by the shown scores, under the shown settings
    /// (or as the file's own column when that is shown).
    pub fn displayed_run(&self) -> ScoreRun {
        let mut run = self.run.clone();
        run.columns = vec![self.scores.clone()];
        match &self.external {
            Some(e) => {
                run.methods.clear();
                run.external = vec![e.name.clone()];
            }
            None => {
                run.methods = vec![self.shown.clone()];
                run.external.clear();
            }
        }
        run
    }
}
