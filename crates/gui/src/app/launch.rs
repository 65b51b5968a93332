//! Starting background jobs: each one is registered as a task (its id, cancel flag and progress in
//! `tasks`) and sent to the worker; a job that supersedes another cancels it first. Also the
//! refresh's execution: the decision of `refresh` carried out.

use std::path::PathBuf;

use oodscope_data::{ImageSet, Role, SetSource};
use oodscope_engine::detect::Dims;
use oodscope_engine::model::DeviceChoice;
use oodscope_engine::score::{Method, ScoreSettings};

use super::refresh::{Decision, Snapshot, StoredDecision, StoredSnapshot, decide, decide_without_model};
use super::tasks::{TaskKind, kind};
use super::{DropCard, DropOutcome, OodscopeApp, Tab, same_sets};
use crate::worker::{DropJob, Job, NotRun, PixelSource, StoredComparison, StoredTuning, Work};

/// The grid the window searches: each parameter's default grid (the CLI's), but ε in steps of
/// 0.0004 up to 0.004 (only 0 without the model's gradients), on the first quarter of every set
/// (the rest is the test split).
pub fn gui_tune_options(
    method: Method,
    dims: &Dims,
    batch_size: usize,
    gradients: bool,
) -> Result<oodscope_engine::tune::TuneOptions, String> {
    let has_epsilon = method.params(dims).iter().any(|s| s.name == "epsilon");
    let overrides = match (has_epsilon, gradients) {
        (true, true) => vec![(
            "epsilon".to_string(),
            oodscope_engine::detect::params::evenly_spaced(0.004, 11),
        )],
        (true, false) => vec![("epsilon".to_string(), vec![0.0])],
        (false, _) => Vec::new(),
    };
    Ok(oodscope_engine::tune::TuneOptions {
        grid: oodscope_engine::tune::ParamGrid::for_method(method, dims, &overrides)?,
        objective: oodscope_engine::tune::Objective::Fpr95,
        validation: oodscope_engine::tune::ValidationSplit::Fraction(0.25),
        tune_on: None,
        batch_size,
    })
}

impl OodscopeApp {
    /// Registers a task of `kind` and sends its work.
    pub(super) fn launch(&mut self, kind: TaskKind, work: Work) {
        let (id, cancel) = self.tasks.start(kind);
        self.worker.run(id, cancel, work);
    }

    pub(super) fn load_model(&mut self, path: PathBuf) {
        self.tasks.cancel_where(kind::depends_on_model);
        self.launch(
            TaskKind::LoadModel,
            Work::LoadModel {
                path,
                device: DeviceChoice::Auto,
            },
        );
    }

    /// Opens (scans) every set of the panel anew for the loaded model's classes.
    pub(super) fn open_sets(&mut self) {
        let Some(classes) = self.model.as_ref().map(|m| m.card.classes.clone()) else {
            return;
        };
        self.tasks.cancel_where(kind::open_set);
        let specs: Vec<(String, Role)> = self.sets.iter().map(|e| (e.spec.clone(), e.role)).collect();
        for entry in &mut self.sets {
            entry.set = None;
        }
        for (spec, role) in specs {
            self.open_set(spec, role, classes.clone());
        }
    }

    pub(super) fn open_set(&mut self, spec: String, role: Role, classes: Vec<String>) {
        self.launch(
            TaskKind::OpenSet { spec: spec.clone() },
            Work::OpenSet { spec, role, classes },
        );
    }

    /// Starts the fit on the training folder in the settings (or forgets the fit if there is none).
    pub(super) fn start_fit(&mut self) {
        self.tasks.cancel_where(kind::fit);
        self.fit = None;
        let Some(train) = self.settings.train.clone() else {
            self.worker.send(Job::DropFit);
            return;
        };
        if self.model.is_none() {
            return; // the fit starts once the model has loaded
        }
        let train = PathBuf::from(train);
        self.launch(TaskKind::Fit { train: train.clone() }, Work::Fit { train });
    }

    /// Opens a fit file beside the open results file (no model): the worker checks it against the
    /// file's outputs and keeps it, with the head it holds.
    pub(super) fn open_fit(&mut self, path: PathBuf) {
        let Some(opened) = self.opened.as_ref().filter(|_| self.model.is_none()) else {
            self.messages
                .push("a fit file opens beside a results file; with a model, choose a training folder");
            return;
        };
        let cache = opened.cache.clone();
        self.tasks.cancel_where(kind::fit);
        self.fit = None;
        self.settings.train = None;
        self.launch(TaskKind::Fit { train: path.clone() }, Work::LoadFit { path, cache });
    }

    /// Asks the worker to read a results file (the view on display stays until it has).
    pub(super) fn open_results(&mut self, path: PathBuf) {
        self.tasks.cancel_where(kind::open_results);
        self.launch(TaskKind::OpenResults { path: path.clone() }, Work::OpenResults { path });
    }

    /// Re-scores the displayed result's cached outputs (or an open file's saved ones) at `wanted`.
    fn start_rescore(
        &mut self,
        wanted: ScoreSettings,
        cache: std::sync::Arc<oodscope_engine::detect::cache::CachedOutputs>,
    ) {
        self.tasks.cancel_where(kind::rescore);
        self.launch(
            TaskKind::Rescore {
                settings: wanted.clone(),
            },
            Work::Rescore {
                cache,
                settings: wanted,
            },
        );
    }

    /// Runs the model on the enabled sets at `wanted`.
    fn start_score(&mut self, wanted: ScoreSettings, sets: Vec<ImageSet>) {
        self.tasks.cancel_where(kind::score);
        self.launch(
            TaskKind::Score {
                settings: wanted.clone(),
                sets: sets.clone(),
            },
            Work::Score {
                sets,
                settings: wanted,
                batch_size: self.settings.batch_size.max(1),
            },
        );
    }

    /// While the exact scores of a method with an input step are computed, asks the worker for
    /// the first-order estimate (instant once the gradient norms of this step are known).
    fn request_estimate(&mut self, wanted: &ScoreSettings) {
        let Some(result) = &self.result else { return };
        let has_estimate = wanted.method.detector().first_order(0.5, 0.0).is_some();
        if !has_estimate || wanted.epsilon() == 0.0 || result.shown.method != wanted.method {
            return;
        }
        let work = Work::Estimate {
            images: sets_key(&result.sets),
            sets: result.sets.clone(),
            items: result.run.images.iter().map(|s| (s.set, s.index)).collect(),
            cache: result.cache.clone(),
            settings: wanted.clone(),
        };
        self.tasks.cancel_where(kind::estimate);
        self.launch(
            TaskKind::Estimate {
                settings: wanted.clone(),
            },
            work,
        );
    }

    /// Brings the display in line with the sliders (see `refresh::decide`).
    pub(super) fn refresh(&mut self) {
        if self.model.is_none() {
            self.refresh_without_model();
            return;
        }
        let wanted = self.current_settings();
        let sets = self.enabled_sets();
        let decision = decide(&self.snapshot(wanted.as_ref(), &sets));
        let Some(wanted) = wanted else { return };
        let stop_scoring = |app: &mut Self| app.tasks.cancel_where(kind::score);
        let stop_rescoring = |app: &mut Self| app.tasks.cancel_where(kind::rescore);
        match decision {
            Decision::AskForFit => self.note(format!(
                "{} needs a fit: choose an ID training folder in the side panel",
                wanted.method.title()
            )),
            Decision::ShowStoredColumn(column) => {
                stop_scoring(self);
                stop_rescoring(self);
                self.install_opened(column);
            }
            Decision::ShowComparedColumn(column) => {
                stop_scoring(self);
                stop_rescoring(self);
                if let Some(comparison) = &self.comparison {
                    let (sets, run) = (comparison.sets.clone(), comparison.run_of(column));
                    self.install_result(wanted, sets, run);
                }
            }
            Decision::Showing => {
                stop_scoring(self);
                stop_rescoring(self);
            }
            Decision::ShowComputed => {
                stop_scoring(self);
                stop_rescoring(self);
                if let Some(result) = &mut self.result {
                    result.show_computed();
                }
                self.rederive();
            }
            Decision::Rescore => {
                stop_scoring(self);
                if let Some(cache) = self.result.as_ref().map(|r| r.cache.clone()) {
                    self.start_rescore(wanted, cache);
                }
            }
            Decision::KeepRescoring => stop_scoring(self),
            Decision::KeepScoring => stop_rescoring(self),
            Decision::NeedIdAndOod => {
                stop_rescoring(self);
                self.messages.push("enable at least one ID and one OOD set");
            }
            Decision::Score { estimate } => {
                stop_rescoring(self);
                stop_scoring(self);
                if estimate {
                    self.request_estimate(&wanted);
                }
                self.start_score(wanted, sets);
            }
            Decision::Wait => {}
        }
    }

    /// The refresh's view of the app, with a model loaded.
    fn snapshot<'a>(&'a self, wanted: Option<&'a ScoreSettings>, sets: &[ImageSet]) -> Snapshot<'a> {
        let result = self.result.as_ref();
        let result_same_sets = result.is_some_and(|r| same_sets(&r.sets, sets));
        let on_enabled = |other: &[ImageSet]| same_sets(other, sets);
        Snapshot {
            sets_open: self.sets.iter().all(|s| s.set.is_some()),
            needs_fit: wanted.is_some_and(|w| w.method.detector().needs().fit),
            has_fit: self.has_fit(),
            fitting: self.is_fitting(),
            same_sets: result_same_sets,
            on_display: result_same_sets
                && result.is_some_and(|r| wanted.is_some_and(|w| r.holds(w)) && r.estimate.is_none()),
            computed_is_wanted: result.is_some_and(|r| !r.placeholder && Some(&r.computed) == wanted),
            can_show: result.zip(wanted).is_some_and(|(r, w)| r.can_show(w)),
            opened_column: self
                .opened
                .as_ref()
                .filter(|o| on_enabled(&o.sets))
                .zip(wanted)
                .and_then(|(o, w)| o.column_of(w)),
            compared_column: self
                .comparison
                .as_ref()
                .filter(|c| on_enabled(&c.sets))
                .zip(wanted)
                .and_then(|(c, w)| c.column_of(w)),
            rescoring: self.tasks.find(kind::rescore).and_then(|(_, t)| match &t.kind {
                TaskKind::Rescore { settings } => Some(settings),
                _ => None,
            }),
            scoring: self.tasks.find(kind::score).and_then(|(_, t)| match &t.kind {
                TaskKind::Score {
                    settings,
                    sets: running,
                } if on_enabled(running) => Some(settings),
                _ => None,
            }),
            wanted,
            has_id_and_ood: sets.iter().any(|s| s.role == Role::Id) && sets.iter().any(|s| s.role == Role::Ood),
        }
    }

    /// Brings the display in line with the sliders when a results file is open without a model:
    /// a stored column, a re-score of the saved logits / features, or a line saying what it needs.
    fn refresh_without_model(&mut self) {
        let (Some(wanted), Some(opened)) = (self.current_settings(), &self.opened) else {
            return;
        };
        let rescoring = self.tasks.find(kind::rescore).and_then(|(_, t)| match &t.kind {
            TaskKind::Rescore { settings } => Some(settings.clone()),
            _ => None,
        });
        let decision = decide_without_model(&StoredSnapshot {
            wanted: Some(&wanted),
            on_display: self.result.as_ref().is_some_and(|r| r.holds(&wanted)),
            stored_column: opened.column_of(&wanted),
            failed_before: self.stored_failure.as_ref() == Some(&wanted),
            missing: opened.missing(&wanted, self.beside()),
            rescoring: rescoring.as_ref(),
        });
        match decision {
            StoredDecision::Wait | StoredDecision::KeepRescoring => {}
            StoredDecision::Showing => self.tasks.cancel_where(kind::rescore),
            StoredDecision::ShowStoredColumn(column) => {
                self.tasks.cancel_where(kind::rescore);
                self.install_opened(column);
            }
            StoredDecision::Rescore => {
                let cache = opened.cache.clone();
                self.start_rescore(wanted, cache);
            }
            StoredDecision::Explain(why) => {
                self.tasks.cancel_where(kind::rescore);
                // Beside the file's own column on display, the picker says why; no need to nag.
                if self.result.as_ref().is_none_or(|r| r.external.is_none()) {
                    self.note(why);
                }
            }
        }
    }

    /// Shows a card per dropped image at once ("scoring…") and sends the images on the worker's
    /// priority lane, which scores them between the batches of any running job.
    pub(super) fn score_drop(&mut self, paths: Vec<PathBuf>, settings: ScoreSettings) {
        let id = self.tasks.next_id();
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
        self.worker.score_drop(DropJob { id, paths, settings });
        self.settings.tab = Tab::Dropped;
    }

    pub(super) fn start_tuning(&mut self) {
        if self.model.is_none() && self.opened.is_some() {
            self.start_tuning_stored();
            return;
        }
        let Some(model) = self
            .model
            .as_ref()
            .filter(|_| !self.sets.iter().any(|s| s.set.is_none()))
        else {
            self.messages.push("wait for the model and sets to load before tuning");
            return;
        };
        let options = match gui_tune_options(self.settings.method, &model.dims, self.settings.batch_size.max(1), true) {
            Ok(options) => options,
            Err(e) => {
                self.messages.push(e);
                return;
            }
        };
        self.tasks.cancel_where(kind::tune);
        let sets = self.enabled_sets();
        self.launch(TaskKind::Tune, Work::Tune { sets, options });
        self.settings.tab = Tab::Tuning;
    }

    /// Starts the comparison of every method the model (and the fit, if ready) supports, each at its
    /// sliders' values, on the enabled sets, in one pass.
    pub(super) fn start_compare(&mut self) {
        if self.model.is_none() && self.opened.is_some() {
            self.start_compare_stored();
            return;
        }
        let (Some(model), Some(dims)) = (
            self.model
                .as_ref()
                .filter(|_| !self.sets.iter().any(|s| s.set.is_none())),
            self.dims(),
        ) else {
            self.messages
                .push("wait for the model and sets to load before comparing");
            return;
        };
        let sets = self.enabled_sets();
        if sets.iter().all(|s| s.role != Role::Id) || sets.iter().all(|s| s.role != Role::Ood) {
            self.messages.push("enable at least one ID and one OOD set");
            return;
        }
        let requested: Vec<Method> = Method::all().collect();
        let selection = oodscope_engine::compare::select(&requested, &model.capabilities, self.has_fit());
        let settings: Vec<ScoreSettings> = selection
            .supported
            .iter()
            .map(|&m| {
                let given = self.settings.params.get(m.name()).cloned().unwrap_or_default();
                ScoreSettings::new(m, &given, &dims).unwrap_or_else(|_| ScoreSettings::default_for(m, &dims))
            })
            .collect();
        self.tasks.cancel_where(kind::compare);
        let work = Work::Compare {
            sets,
            settings,
            unsupported: selection.unsupported,
            batch_size: self.settings.batch_size.max(1),
        };
        self.launch(TaskKind::Compare, work);
        self.settings.tab = Tab::Compare;
    }

    /// Starts the tuning of the current method on an open results file without the model: its
    /// grid (ε at 0) on the saved outputs, with the fit and head open beside them.
    fn start_tuning_stored(&mut self) {
        let (Some(opened), Some(dims)) = (self.opened.as_ref(), self.dims()) else {
            return;
        };
        let options = match gui_tune_options(self.settings.method, &dims, self.settings.batch_size.max(1), false) {
            Ok(options) => options,
            Err(e) => {
                self.messages.push(e);
                return;
            }
        };
        // The grid's first setting stands for all: they differ only in values, not in needs.
        if let Some(why) = opened.missing_beyond_columns(&options.grid.settings(0), self.beside()) {
            self.messages.push(format!("tuning from the file: {why}"));
            return;
        }
        let job = StoredTuning {
            sets: opened.sets.clone(),
            run: opened.run.clone(),
            cache: opened.cache.clone(),
            options,
        };
        self.tasks.cancel_where(kind::tune);
        self.launch(TaskKind::Tune, Work::TuneStored(Box::new(job)));
        self.settings.tab = Tab::Tuning;
    }

    /// Starts the comparison of an open results file without the model: every method at its
    /// sliders' values (a method never moved: its stored column's), from the stored column or
    /// re-scored from the saved outputs with the fit open beside them; the rest listed with why.
    fn start_compare_stored(&mut self) {
        let (Some(opened), Some(dims)) = (self.opened.as_ref(), self.dims()) else {
            return;
        };
        let beside = self.beside();
        let (mut settings, mut not_run) = (Vec::new(), Vec::new());
        for m in Method::all() {
            let chosen = match (self.settings.params.get(m.name()), opened.column_of_method(m)) {
                (None, Some(column)) => opened.run.methods[column].clone(),
                (given, _) => {
                    let given = given.cloned().unwrap_or_default();
                    ScoreSettings::new(m, &given, &dims).unwrap_or_else(|_| ScoreSettings::default_for(m, &dims))
                }
            };
            match opened.missing(&chosen, beside) {
                None => settings.push(chosen),
                Some(why) => not_run.push(NotRun { method: m, why }),
            }
        }
        let job = StoredComparison {
            sets: opened.sets.clone(),
            run: opened.run.clone(),
            cache: opened.cache.clone(),
            settings,
            not_run,
        };
        self.tasks.cancel_where(kind::compare);
        self.launch(TaskKind::Compare, Work::CompareStored(Box::new(job)));
        self.settings.tab = Tab::Compare;
    }

    /// Asks the worker for the selected image's perturbation when ε > 0 (and not already there).
    pub(super) fn request_perturbation(&mut self) {
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
            SetSource::Folder { files, .. } => PixelSource::File(files[entry.index].path.clone()),
            SetSource::Noise { kind, first, .. } => PixelSource::Noise(*kind, first + entry.index),
        };
        self.launch(TaskKind::Perturbation, Work::Perturbation { key, source, settings });
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
