//! A scoring result as the app holds it: what was computed (settings, sets, per-image results), the
//! clean outputs the worker re-scores without the model, and the scores on display.

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
        self.computed == *wanted || (self.cache.logit_width > 0 && can_rescore(wanted, &self.cache))
    }

    /// Shows the computed scores again (when `wanted` is what was computed).
    pub fn show_computed(&mut self) {
        self.scores = self.run.scores().to_vec();
        self.shown = self.computed.clone();
        self.estimate = None;
    }

    /// Shows re-scored values for `settings`.
    pub fn show_rescored(&mut self, settings: ScoreSettings, scores: Vec<f32>) {
        self.scores = scores;
        self.shown = settings;
        self.estimate = None;
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

    /// The run as displayed: its first column replaced by the shown scores, under the shown settings.
    pub fn displayed_run(&self) -> ScoreRun {
        let mut run = self.run.clone();
        run.methods = vec![self.shown.clone()];
        run.columns = vec![self.scores.clone()];
        run.external.clear();
        run
    }
}
