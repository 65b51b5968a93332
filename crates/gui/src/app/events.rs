//! Applying the worker's events: a task's progress, its outcome, its failure (decided by the task's
//! kind and the cause's variant, never by a message's text), and the cards of dropped images. An
//! event of a task no longer in the registry (superseded, cancelled) is dropped.

use std::path::Path;

use oodscope_data::{ImageSet, Role, SetSource};
use oodscope_engine::score::ScoreRun;

use super::results_file::ResultsFile;
use super::tasks::{Task, TaskId, TaskKind, kind};
use super::view::Derived;
use super::{DropOutcome, DropScore, FitState, OodscopeApp, Perturbation, SetEntry, Tab};
use crate::worker::{Event, JobError, Outcome};
use oodscope_engine::score::ScoreSettings;

impl OodscopeApp {
    /// Applies one worker event.
    pub(super) fn on_event(&mut self, event: Event) {
        match event {
            Event::Progress { task, progress } => {
                if let crate::worker::TaskProgress::DetectorRead(manifest) = &progress
                    && self.tasks.get(task).is_some()
                {
                    self.on_detector_read((**manifest).clone());
                }
                self.tasks.set_progress(task, progress);
            }
            Event::Done { task, outcome } => {
                if let Some(done) = self.tasks.finish(task) {
                    self.on_outcome(task, done, outcome);
                }
            }
            Event::Failed { task, cause } => {
                if let Some(failed) = self.tasks.finish(task) {
                    self.on_failure(failed, &cause);
                }
            }
            Event::Cancelled { task } => {
                self.tasks.finish(task);
            }
            Event::FilesScored { id, set, run, .. } => self.on_files_scored(id, &set, &run),
            Event::DropFailed { id, message } => {
                for card in self.drops.iter_mut().filter(|c| c.drop == id) {
                    if matches!(card.outcome, DropOutcome::Scoring) {
                        card.outcome = DropOutcome::Failed(message.clone());
                    }
                }
            }
        }
    }

    /// A task's result, with the task as it was started.
    fn on_outcome(&mut self, id: TaskId, task: Task, outcome: Outcome) {
        match outcome {
            Outcome::ModelLoaded(info) => self.on_model_loaded(*info),
            Outcome::SetOpened(set) => {
                if let TaskKind::OpenSet { spec } = &task.kind
                    && let Some(entry) = self.sets.iter_mut().find(|e| e.spec == *spec && e.set.is_none())
                {
                    entry.set = Some(set);
                }
                self.refresh();
            }
            Outcome::Scored { settings, run } => {
                if let TaskKind::Score { sets, .. } = task.kind {
                    self.on_scored(settings, sets, *run);
                }
            }
            Outcome::Fitted { info, bank, head } => {
                self.fit = Some(FitState::Ready { info, bank, head });
                self.refresh();
            }
            Outcome::Rescored { settings, scores } => {
                if let Some(result) = &mut self.result
                    && scores.len() == result.run.images.len()
                {
                    result.show_rescored(settings, scores);
                    self.rederive();
                    self.refresh(); // the sliders may have moved on meanwhile
                }
            }
            Outcome::ResultsOpened(results) => self.on_results_opened(*results),
            Outcome::Tuned(result) => {
                self.tune_result = Some(result);
                self.settings.tab = Tab::Tuning;
            }
            Outcome::Compared { result, not_run } => {
                self.comparison = Some(super::comparison::Comparison::new(id, *result, not_run));
                self.refresh(); // the current method's column becomes the result
            }
            Outcome::Estimated { settings, scores } => {
                if self.scoring_settings() == Some(&settings)
                    && let Some(result) = &mut self.result
                    && scores.len() == result.run.images.len()
                {
                    result.scores = scores;
                    result.estimate = Some(settings);
                    self.rederive();
                }
            }
            Outcome::DetectorSaved { path, manifest } => {
                self.messages.done(format!(
                    "saved {} ({}: {}, δ = {})",
                    path.display(),
                    manifest.name,
                    manifest.method.describe(),
                    manifest.decision.threshold
                ));
            }
            Outcome::DetectorOpened(opened) => self.on_detector_opened(*opened),
            Outcome::Perturbation {
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
        }
    }

    /// Why a task gave nothing, said once; what it leaves behind depends on the task.
    fn on_failure(&mut self, task: Task, cause: &JobError) {
        match task.kind {
            TaskKind::LoadModel => self.messages.push(cause.to_string()),
            TaskKind::OpenSet { spec } => {
                // A set that cannot be opened (no such folder, no images, a bad spec) leaves the
                // panel; scoring goes on with the others.
                let role = self.sets.iter().find(|e| e.spec == spec).map_or(Role::Id, |e| e.role);
                self.sets.retain(|e| e.spec != spec || e.set.is_some());
                self.messages
                    .push(format!("{} set: {cause}", role.name().to_uppercase()));
                self.refresh();
            }
            TaskKind::Score { .. } => self.messages.push(cause.to_string()),
            TaskKind::Fit { train } => {
                // A fit file opened beside a results file names itself in its message.
                let message = if train.is_file() {
                    cause.to_string()
                } else {
                    format!("fit on {}: {cause}", train.display())
                };
                self.messages.push(message.clone());
                self.fit = Some(FitState::Failed(message));
            }
            TaskKind::Rescore { settings } => {
                if self.model.is_none() {
                    self.stored_failure = Some(settings.clone());
                }
                self.messages
                    .push(format!("re-scoring {}: {cause}", settings.describe()));
                self.refresh();
            }
            TaskKind::Estimate { .. } => self.messages.push(format!("first-order estimate: {cause}")),
            TaskKind::Perturbation => self.messages.push(format!("perturbation: {cause}")),
            TaskKind::OpenResults { .. } => self.messages.push(cause.to_string()),
            TaskKind::Tune => self.messages.push(format!("tuning: {cause}")),
            TaskKind::Compare => self.messages.push(format!("comparing: {cause}")),
            TaskKind::SaveDetector { .. } => self.messages.push(format!("save detector: {cause}")),
            TaskKind::OpenDetector { path } => self.on_detector_failed(path, cause.to_string()),
        }
    }

    fn on_model_loaded(&mut self, info: crate::worker::ModelInfo) {
        self.settings.model = Some(info.path.display().to_string());
        // A method this model cannot run gives way to the first it can (one that needs the fit
        // waits for it when a training folder is set).
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
            .map(|(e, s)| (f64::from(*e) - f64::from(*s)).abs())
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

    /// Shows a results file that the worker read: its sets replace the panel's, its first stored
    /// column becomes the result.
    fn on_results_opened(&mut self, results: oodscope_engine::results::Results) {
        let missing = missing_images(&results.sets);
        let mut opened = ResultsFile::new(results);
        opened.missing_images = missing;
        let first = opened.run.methods.first().cloned();
        let outputs = opened.cache.logit_width > 0 || opened.cache.feature_width > 0;
        if first.is_none() && opened.run.external.is_empty() && !outputs {
            self.messages.push(format!(
                "{}: no score column and no logits: nothing to show",
                opened.path.display()
            ));
            return;
        }
        // Said once, calmly: scores, metrics and curves need no image.
        if opened.has_no_images() {
            self.messages.note(format!(
                "{}: its images are not on this machine; scores, metrics and curves are all in the file, and the gallery shows placeholders",
                opened.path.display()
            ));
        } else if let Some((missing, checked)) = missing.filter(|(m, _)| *m > 0) {
            self.messages.note(format!(
                "{}: {missing} of {checked} image paths no longer exist (moved?): the gallery shows placeholders for them",
                opened.path.display()
            ));
        }
        self.tasks.cancel_where(|k| kind::score(k) || kind::rescore(k));
        if self.model.is_none() && self.fit.is_some() {
            // A fit opened beside another results file: made for other outputs.
            self.tasks.cancel_where(kind::fit);
            self.fit = None;
            self.worker.send(crate::worker::Job::DropFit);
        }
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
        self.threshold = None;
        match first {
            Some(first) => {
                self.settings.method = first.method;
                self.settings
                    .params
                    .insert(first.method.name().to_string(), first.params.clone());
                self.opened = Some(opened);
                self.install_opened(0);
            }
            None => {
                // A method the saved outputs serve: the one on the sliders, else MSP from the logits.
                let msp = oodscope_engine::score::Method::find("msp");
                if opened.method_missing(self.settings.method, self.beside()).is_some()
                    && let Some(msp) = msp.filter(|&m| opened.method_missing(m, self.beside()).is_none())
                {
                    self.settings.method = msp;
                }
                self.opened = Some(opened);
                self.install_placeholder();
            }
        }
    }

    /// Fills in the cards of drop `id` from the worker's run over its images.
    fn on_files_scored(&mut self, id: u64, set: &ImageSet, run: &ScoreRun) {
        let Some(model) = &self.model else { return };
        let SetSource::Folder { files, .. } = &set.source else {
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
                        .find(|k| k.path == oodscope_data::path_to_text(&file.path))
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
}

/// How many of the folder sets' image paths no longer exist, of how many checked (at most
/// `MAX_CHECKED`, spread evenly); `None` when there is no folder set.
fn missing_images(sets: &[ImageSet]) -> Option<(usize, usize)> {
    const MAX_CHECKED: usize = 20_000;
    let files: Vec<&Path> = sets
        .iter()
        .filter_map(|s| match &s.source {
            SetSource::Folder { files, .. } => Some(files.iter().map(|f| f.path.as_path())),
            SetSource::Noise { .. } => None,
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
