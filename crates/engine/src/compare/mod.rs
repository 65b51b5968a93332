//! `compare`: every requested method on the same images in one pass (one decode and one clean
//! forward pass per batch shared by all; each input-step method adds its own passes), ranked on a
//! leaderboard with near/far groups. With tuning, each method's own grid is searched on the
//! validation split first (all grids in one plan) and the choices are reported on the test split.

pub mod groups;
pub mod leaderboard;
pub mod selection;

use std::ops::Range;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

pub use leaderboard::{Leaderboard, MeanMetrics, MethodRow};
pub use selection::{BASELINE, Selection, Unsupported, parse_methods, select};

use crate::Error;
use crate::detect::ScoreSettings;
use crate::detect::plan::{Plan, dims_with_fit};
use crate::model::Model;
use crate::pipeline::DecodeSchedule;
use crate::score::run::sets_with_role;
use crate::score::{BatchSink, Keep, ScoreRun, run_scoring_into};
use crate::stats::Fit;
use crate::tune::select::{best_setting, evaluate_grid};
use crate::tune::split::{drop_validation_scores, load_validation, split_sets, test_sets};
use crate::tune::{Objective, ParamGrid, SetSplit, SettingResult, ValidationSplit};
use oodscope_data::{ImageSet, Role};

/// How to search each method's parameters before comparing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TuneSpec {
    pub objective: Objective,
    pub validation: ValidationSplit,
}

/// What to compare and how.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOptions {
    /// The methods at their parameters (the start of each grid's search when tuning is on: a
    /// method without parameters is compared as given).
    pub settings: Vec<ScoreSettings>,
    pub tune: Option<TuneSpec>,
    pub batch_size: usize,
    /// Keep every image's features in the run (for re-scoring without the model, as the window does).
    pub keep_features: bool,
}

/// The stages of a comparison, in order (the first two only when tuning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Decoding,
    Searching,
    Scoring,
}

impl Stage {
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Decoding => "decoding the validation split",
            Stage::Searching => "searching every method's grid on the validation split",
            Stage::Scoring => "scoring every method",
        }
    }
}

/// Progress within a stage, in images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompareProgress {
    pub stage: Stage,
    pub done: usize,
    pub total: usize,
}

/// One method's search on the validation split.
#[derive(Debug, Clone)]
pub struct MethodSearch {
    pub grid: ParamGrid,
    /// Validation metrics of every setting, in grid order.
    pub results: Vec<SettingResult>,
    /// Index of the chosen setting in `results`; `None` when no setting had validation metrics on
    /// every OOD set (the method is then compared as given).
    pub best: Option<usize>,
}

impl MethodSearch {
    pub fn best_result(&self) -> Option<&SettingResult> {
        self.best.map(|b| &self.results[b])
    }
}

/// Everything a comparison produced.
#[derive(Debug, Clone)]
pub struct CompareResult {
    /// One column per method, in the order of the options (the chosen settings when tuned).
    pub run: ScoreRun,
    /// The sets the run covers: the given sets, or their test splits when tuned.
    pub sets: Vec<ImageSet>,
    /// When tuned: each set's split, and each method's search (`None` for a method without
    /// parameters, compared as given).
    pub tuning: Option<Tuning>,
}

/// The validation half of a tuned comparison.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub spec: TuneSpec,
    pub splits: Vec<SetSplit>,
    pub searches: Vec<Option<MethodSearch>>,
    /// Validation images decoded per set.
    pub validation_scored: Vec<usize>,
    pub search_elapsed: std::time::Duration,
}

/// Runs the comparison. Progress goes to `on_progress`; `cancel` is checked between batches.
pub fn compare(
    model: &Model,
    fit: Option<&Fit>,
    sets: &[ImageSet],
    options: &CompareOptions,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(CompareProgress),
) -> Result<CompareResult, Error> {
    compare_into(model, fit, sets, options, cancel, on_progress, Keep::ALL, &mut [])
}

/// [`compare`] whose scoring pass keeps only `keep` of the outputs in the run and hands every
/// batch to `sinks` as it finishes (with tuning, the test split's: the noise sets' validation
/// images too, which the run then drops).
#[allow(clippy::too_many_arguments)]
pub fn compare_into(
    model: &Model,
    fit: Option<&Fit>,
    sets: &[ImageSet],
    options: &CompareOptions,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(CompareProgress),
    keep: Keep,
    sinks: &mut [&mut dyn BatchSink],
) -> Result<CompareResult, Error> {
    if options.settings.is_empty() {
        return Err(Error::Invalid("no method to compare".into()));
    }
    if options.batch_size == 0 {
        return Err(Error::Invalid("batch size must be at least 1".into()));
    }
    // Checks every method against the model and the fit before any work.
    Plan::new(model, options.settings.clone(), fit)?;
    let (chosen, test, tuning) = match options.tune {
        None => (options.settings.clone(), sets.to_vec(), None),
        Some(spec) => {
            let tuning = search_all(model, fit, sets, options, spec, cancel, on_progress)?;
            let chosen = chosen_settings(&options.settings, &tuning.searches);
            let test = test_sets(sets, &tuning.splits);
            (chosen, test, Some(tuning))
        }
    };
    let plan = Plan::new(model, chosen, fit)?.keeping_features(options.keep_features);
    let schedule = DecodeSchedule::for_device(model.device);
    let mut progress = |p: crate::pipeline::Progress| {
        on_progress(CompareProgress {
            stage: Stage::Scoring,
            done: p.done,
            total: p.total,
        });
    };
    let mut run = run_scoring_into(
        &plan,
        &test,
        options.batch_size,
        schedule,
        cancel,
        &mut progress,
        keep,
        sinks,
    )?;
    if let Some(tuning) = &tuning {
        drop_validation_scores(&mut run, sets, &tuning.splits);
    }
    Ok(CompareResult {
        run,
        sets: test,
        tuning,
    })
}

/// The setting each method is compared at: its search's choice, or as given.
fn chosen_settings(given: &[ScoreSettings], searches: &[Option<MethodSearch>]) -> Vec<ScoreSettings> {
    given
        .iter()
        .zip(searches)
        .map(
            |(settings, search)| match search.as_ref().and_then(|s| Some(s.grid.settings(s.best?))) {
                Some(chosen) => chosen,
                None => settings.clone(),
            },
        )
        .collect()
}

/// Every method's grid on the validation split, in one plan (one decode and one clean forward
/// pass per batch for all settings of all methods).
fn search_all(
    model: &Model,
    fit: Option<&Fit>,
    sets: &[ImageSet],
    options: &CompareOptions,
    spec: TuneSpec,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(CompareProgress),
) -> Result<Tuning, Error> {
    let ood = sets_with_role(sets, Role::Ood);
    if ood.is_empty() || sets_with_role(sets, Role::Id).is_empty() {
        return Err(Error::Invalid("tuning needs at least one ID and one OOD set".into()));
    }
    let start = Instant::now();
    let dims = dims_with_fit(model, fit);
    let grids: Vec<Option<ParamGrid>> = options
        .settings
        .iter()
        .map(|s| ParamGrid::for_method(s.method, &dims, &[]).ok())
        .collect();
    let mut all_settings = Vec::new();
    let mut ranges: Vec<Range<usize>> = Vec::new();
    for (settings, grid) in options.settings.iter().zip(&grids) {
        let first = all_settings.len();
        match grid {
            Some(g) => all_settings.extend(g.all_settings()),
            None => all_settings.push(settings.clone()),
        }
        ranges.push(first..all_settings.len());
    }
    let splits = split_sets(sets, spec.validation)?;
    let pre = model.card.preprocess();
    let data = load_validation(sets, &splits, &pre, options.batch_size, cancel, &mut |done, total| {
        on_progress(CompareProgress {
            stage: Stage::Decoding,
            done,
            total,
        });
    })?;
    let scores = crate::tune::search::grid_scores(
        model,
        fit,
        &all_settings,
        &data,
        options.batch_size,
        cancel,
        &mut |done, total| {
            on_progress(CompareProgress {
                stage: Stage::Searching,
                done,
                total,
            });
        },
    )?;
    let mut searches = Vec::with_capacity(grids.len());
    for (grid, range) in grids.into_iter().zip(ranges) {
        searches.push(grid.map(|grid| {
            let results = evaluate_grid(&grid, &scores[range], &data, sets, &ood, spec.objective);
            let best = best_setting(&results, spec.objective);
            MethodSearch { grid, results, best }
        }));
    }
    let validation_scored = (0..sets.len())
        .map(|s| data.set_of.iter().filter(|&&d| d == s).count())
        .collect();
    Ok(Tuning {
        spec,
        splits,
        searches,
        validation_scored,
        search_elapsed: start.elapsed(),
    })
}
