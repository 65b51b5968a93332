//! A scoring result as the app holds it: what was computed (settings, sets, per-image results and
//! logits) and the scores on display, which a change of T with ε = 0 re-derives from the logits.

use crate::data::{ImageSet, Role};
use crate::score::rescore::{LogitLayout, score_from_logits, scores_from_logits};
use crate::score::{ScoreRun, ScoreSettings};

pub struct ScoredResult {
    /// The settings the model ran with.
    pub computed: ScoreSettings,
    /// The settings the displayed scores correspond to (differs from `computed` only in T).
    pub shown: ScoreSettings,
    pub sets: Vec<ImageSet>,
    pub run: ScoreRun,
    /// One per entry of `run.scores`.
    pub scores: Vec<f32>,
    /// When set, `scores` are ODIN's first-order estimates for these settings (ε differs from
    /// `shown`), displayed until the exact scores arrive.
    pub estimate: Option<ScoreSettings>,
}

impl ScoredResult {
    pub fn new(settings: ScoreSettings, sets: Vec<ImageSet>, run: ScoreRun) -> Self {
        let scores = run.scores.iter().map(|s| s.score).collect();
        ScoredResult {
            computed: settings,
            shown: settings,
            sets,
            run,
            scores,
            estimate: None,
        }
    }

    /// Whether `wanted` can be shown from this result without the model: same method and ε = 0
    /// (then only T differs, and T acts on the cached logits), or the settings are equivalent.
    pub fn can_show(&self, wanted: &ScoreSettings, layout: &LogitLayout) -> bool {
        if equivalent(&self.computed, wanted) {
            return true;
        }
        self.computed.method == wanted.method
            && self.computed.epsilon == 0.0
            && wanted.epsilon == 0.0
            && score_from_logits(wanted.method, wanted.temperature, self.row(0).unwrap_or(&[]), layout).is_some()
    }

    /// Re-derives the displayed scores for `wanted` (call only when `can_show`).
    pub fn show(&mut self, wanted: &ScoreSettings, layout: &LogitLayout) {
        if self.estimate.take().is_some() {
            self.shown = self.computed;
            self.scores = self.run.scores.iter().map(|s| s.score).collect();
        }
        if equivalent(&self.shown, wanted) {
            self.shown = *wanted;
            return;
        }
        if equivalent(&self.computed, wanted) {
            self.scores = self.run.scores.iter().map(|s| s.score).collect();
        } else {
            self.scores = scores_from_logits(
                wanted.method,
                wanted.temperature,
                &self.run.logits,
                self.run.scores.len(),
                self.run.logit_width,
                layout,
            );
        }
        self.shown = *wanted;
    }

    fn row(&self, i: usize) -> Option<&[f32]> {
        (i < self.run.scores.len() && self.run.logit_width > 0).then(|| self.run.logits_of(i))
    }

    /// (name, role, displayed scores) of each set, in order.
    pub fn set_scores(&self) -> Vec<(String, Role, Vec<f32>)> {
        let mut out: Vec<(String, Role, Vec<f32>)> =
            self.sets.iter().map(|s| (s.name.clone(), s.role, Vec::new())).collect();
        for (entry, score) in self.run.scores.iter().zip(&self.scores) {
            out[entry.set].2.push(*score);
        }
        out
    }
}

/// Settings that give the same scores: T does not matter to MSP and the confidence branch, and
/// ε does not matter to MSP.
pub fn equivalent(a: &ScoreSettings, b: &ScoreSettings) -> bool {
    a.method == b.method
        && (!a.method.uses_temperature() || a.temperature == b.temperature)
        && (!a.method.uses_epsilon() || a.epsilon == b.epsilon)
}

/// ODIN's first-order estimate at `wanted` (ε > 0) from cached logits and `‖∇ₓ L‖₁` at the same T:
/// `log S(x̃) ≈ log S(x) + ε·‖∇ₓ log S(x)‖₁`, capped at 1.
pub fn odin_estimate(run: &ScoreRun, norms: &[f32], wanted: &ScoreSettings, layout: &LogitLayout) -> Vec<f32> {
    let clean = scores_from_logits(
        wanted.method,
        wanted.temperature,
        &run.logits,
        run.scores.len(),
        run.logit_width,
        layout,
    );
    clean
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let norm = norms.get(i).copied().unwrap_or(f32::NAN) as f64;
            (s as f64 * (wanted.epsilon * norm).exp()).min(1.0) as f32
        })
        .collect()
}
