//! A comparison as the window holds it: every method's scores on the enabled sets, the leaderboard,
//! each method's pooled ROC curve and 95%-TPR threshold, and what the disagreement gallery lists.
//! Switching to a compared method builds its result from the kept column, with no model pass.

use oodscope_data::{ImageSet, Role};
use oodscope_engine::compare::{CompareResult, Leaderboard};
use oodscope_engine::score::{ScoreRun, ScoreSettings};
use oodscope_metrics::{Curves, SortedScores};

use crate::worker::NotRun;

/// A finished comparison.
pub struct Comparison {
    /// The job's generation (views that cache per comparison start afresh when it changes).
    pub generation: u64,
    pub sets: Vec<ImageSet>,
    pub run: ScoreRun,
    pub board: Leaderboard,
    /// The methods left out, and why.
    pub not_run: Vec<NotRun>,
    /// Per column of the run: the ROC of the pooled ID against the pooled OOD images.
    pub curves: Vec<Option<Curves>>,
    /// Per column: the threshold that keeps 95% of the ID images (`score > δ`).
    pub thresholds: Vec<Option<f32>>,
}

/// Which way two methods call one image at their 95%-TPR thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disagreement {
    /// The first method calls it ID, the second OOD.
    FirstSaysId,
    /// The first method calls it OOD, the second ID.
    FirstSaysOod,
}

impl Comparison {
    pub fn new(generation: u64, result: CompareResult, not_run: Vec<NotRun>) -> Comparison {
        let CompareResult { run, sets, .. } = result;
        let board = Leaderboard::new(&run, &sets, &[]);
        let mut curves = Vec::new();
        let mut thresholds = Vec::new();
        for column in 0..run.columns.len() {
            let id = run.column_role_scores(column, &sets, Role::Id);
            let sorted = SortedScores::new(&id, &run.column_role_scores(column, &sets, Role::Ood)).ok();
            curves.push(sorted.as_ref().map(SortedScores::curves));
            thresholds.push(SortedScores::new(&id, &id).ok().map(|s| s.threshold_at_95_tpr()));
        }
        Comparison {
            generation,
            sets,
            run,
            board,
            not_run,
            curves,
            thresholds,
        }
    }

    /// A column's name: its method's title, or `NAME (external)` for one of a results file's own
    /// score columns (after the methods').
    pub fn title_of(&self, column: usize) -> String {
        match column.checked_sub(self.run.methods.len()) {
            Some(e) => format!("{} (external)", self.run.external.get(e).map_or("?", String::as_str)),
            None => self.run.methods[column].method.title().to_string(),
        }
    }

    /// The column scored at exactly these settings.
    pub fn column_of(&self, settings: &ScoreSettings) -> Option<usize> {
        self.run.methods.iter().position(|m| m == settings)
    }

    /// The run of one column alone (its outputs kept, for re-scoring), as a scoring job returns it.
    pub fn run_of(&self, column: usize) -> ScoreRun {
        ScoreRun {
            images: self.run.images.clone(),
            methods: vec![self.run.methods[column].clone()],
            columns: vec![self.run.columns[column].clone()],
            external: Vec::new(),
            logits: self.run.logits.clone(),
            logit_width: self.run.logit_width,
            features: self.run.features.clone(),
            feature_width: self.run.feature_width,
            blocks: self.run.blocks.clone(),
            skipped: self.run.skipped.clone(),
            elapsed: self.run.elapsed,
            stages: self.run.stages,
        }
    }

    /// The images (indices into `run.images`) that columns `a` and `b` call differently at their
    /// 95%-TPR thresholds, each way.
    pub fn disagreements(&self, a: usize, b: usize) -> [(Disagreement, Vec<usize>); 2] {
        let (Some(ta), Some(tb)) = (self.thresholds[a], self.thresholds[b]) else {
            return [
                (Disagreement::FirstSaysId, Vec::new()),
                (Disagreement::FirstSaysOod, Vec::new()),
            ];
        };
        let (mut first_id, mut first_ood) = (Vec::new(), Vec::new());
        for i in 0..self.run.images.len() {
            let id_a = self.run.columns[a][i] > ta;
            let id_b = self.run.columns[b][i] > tb;
            match (id_a, id_b) {
                (true, false) => first_id.push(i),
                (false, true) => first_ood.push(i),
                _ => {}
            }
        }
        [
            (Disagreement::FirstSaysId, first_id),
            (Disagreement::FirstSaysOod, first_ood),
        ]
    }
}
