//! Choosing a method's parameters honestly: search a grid on the validation split, report the
//! choice on the test split.
//!
//! The protocol of the ODIN reference code, for any method: the first K images of every set (1000
//! by default) are the validation split, scored at every setting of the grid (T × ε for ODIN; k,
//! percentile, dim… for the others); the setting with the best objective there (the first in grid
//! order among equals) is then scored once on the rest of every set, the test split, beside the MSP
//! baseline. Numbers from the two splits are never mixed.

pub mod grid;
pub mod search;
pub mod select;
pub mod split;
pub mod stored;

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

pub use grid::{Objective, ParamGrid, ValidationSplit};
pub use select::{SetMetrics, SettingResult};
pub use split::SetSplit;
pub use stored::{StoredScorer, tune_stored};

use crate::Error;
use crate::detect::plan::Plan;
use crate::evaluate::{Evaluation, evaluate};
use crate::model::Model;
use crate::pipeline::SkippedFile;
use crate::score::run::sets_with_role;
use crate::score::{ScoreRun, ScoreSettings, run_scoring};
use crate::stats::Fit;
use oodscope_data::{ImageSet, Role};

/// What to search and how.
#[derive(Debug, Clone, PartialEq)]
pub struct TuneOptions {
    /// The method and the values of each of its parameters to search.
    pub grid: ParamGrid,
    pub objective: Objective,
    pub validation: ValidationSplit,
    /// Tune on this OOD set only (by name); `None` averages the objective over every OOD set.
    pub tune_on: Option<String>,
    pub batch_size: usize,
}

/// The three stages of a tuning run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Decoding the validation split into memory (`done`/`total` in images).
    Decoding,
    /// Scoring the validation split at every setting (`done`/`total` in images).
    Searching,
    /// Scoring the test split at the chosen setting (`done`/`total` in images).
    Testing,
}

/// Progress within a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TuneProgress {
    pub stage: Stage,
    pub done: usize,
    pub total: usize,
}

/// Everything a tuning run produced.
#[derive(Debug, Clone)]
pub struct TuneResult {
    /// The grid searched.
    pub grid: ParamGrid,
    pub objective: Objective,
    /// Each set's validation / test sizes, in set order.
    pub splits: Vec<SetSplit>,
    /// The OOD sets the objective is computed on.
    pub tuned: Vec<usize>,
    /// Validation metrics of every setting, in grid order.
    pub results: Vec<SettingResult>,
    /// Index of the chosen setting in `results`.
    pub best: usize,
    pub chosen: ScoreSettings,
    /// Decoded validation images per set (skipped files excluded).
    pub validation_scored: Vec<usize>,
    pub validation_skipped: Vec<SkippedFile>,
    pub search_elapsed: Duration,
    /// The test split of every set, and its run at the chosen setting (set indices are the same).
    pub test_sets: Vec<ImageSet>,
    pub test_run: ScoreRun,
    pub test_evaluation: Evaluation,
}

impl TuneResult {
    /// The chosen setting's validation result.
    pub fn best_result(&self) -> &SettingResult {
        &self.results[self.best]
    }

    /// Test-split images scored per set.
    pub fn test_split_scored(&self) -> Vec<usize> {
        let mut counts = vec![0; self.test_sets.len()];
        for s in &self.test_run.images {
            counts[s.set] += 1;
        }
        counts
    }

    /// Validation images of the ID sets.
    pub fn validation_id_count(&self, sets: &[ImageSet]) -> usize {
        sets.iter()
            .zip(&self.validation_scored)
            .filter(|(s, _)| s.role == Role::Id)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Runs the whole protocol. Progress goes to `on_progress`; `cancel` is checked between batches.
pub fn tune(
    model: &Model,
    fit: Option<&Fit>,
    sets: &[ImageSet],
    options: &TuneOptions,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(TuneProgress),
) -> Result<TuneResult, Error> {
    if options.batch_size == 0 {
        return Err(Error::Invalid("batch size must be at least 1".into()));
    }
    let grid = options.grid.clone();
    let settings = grid.all_settings();
    // Checks every setting against the model and the fit before any work.
    Plan::new(model, settings.clone(), fit)?;
    let tuned = tuned_sets(sets, options.tune_on.as_deref())?;
    if sets_with_role(sets, Role::Id).is_empty() {
        return Err(Error::Invalid("tuning needs at least one ID set".into()));
    }
    let splits = split::split_sets(sets, options.validation)?;

    let start = Instant::now();
    let pre = model.card.preprocess();
    let data = split::load_validation(sets, &splits, &pre, options.batch_size, cancel, &mut |done, total| {
        on_progress(TuneProgress {
            stage: Stage::Decoding,
            done,
            total,
        });
    })?;
    let scores = search::grid_scores(
        model,
        fit,
        &settings,
        &data,
        options.batch_size,
        cancel,
        &mut |done, total| {
            on_progress(TuneProgress {
                stage: Stage::Searching,
                done,
                total,
            });
        },
    )?;
    let results = select::evaluate_grid(&grid, &scores, &data, sets, &tuned, options.objective);
    let best = select::best_setting(&results, options.objective).ok_or_else(|| no_objective(&results, sets, &tuned))?;
    let search_elapsed = start.elapsed();
    let chosen = settings[best].clone();

    let test_sets = split::test_sets(sets, &splits);
    let plan = Plan::single(model, &chosen, fit)?;
    let mut test_run = run_scoring(&plan, &test_sets, options.batch_size, cancel, &mut |p| {
        on_progress(TuneProgress {
            stage: Stage::Testing,
            done: p.done,
            total: p.total,
        });
    })?;
    split::drop_validation_scores(&mut test_run, sets, &splits);
    let test_evaluation = evaluate(&test_run, &test_sets);
    let validation_scored = data.per_set(sets.len());
    Ok(TuneResult {
        grid,
        objective: options.objective,
        splits,
        tuned,
        results,
        best,
        chosen,
        validation_scored,
        validation_skipped: data.skipped,
        search_elapsed,
        test_sets,
        test_run,
        test_evaluation,
    })
}

/// The OOD sets the objective uses: the one named by `--tune-on`, or all of them.
fn tuned_sets(sets: &[ImageSet], tune_on: Option<&str>) -> Result<Vec<usize>, Error> {
    let ood = sets_with_role(sets, Role::Ood);
    if ood.is_empty() {
        return Err(Error::Invalid("tuning needs at least one OOD set".into()));
    }
    let Some(name) = tune_on else {
        return Ok(ood);
    };
    ood.iter()
        .find(|&&s| sets[s].name == name)
        .map(|&s| vec![s])
        .ok_or_else(|| {
            let names: Vec<&str> = ood.iter().map(|&s| sets[s].name.as_str()).collect();
            Error::Invalid(format!(
                "--tune-on {name}: no OOD set has that name (the OOD sets are: {})",
                names.join(", ")
            ))
        })
}

/// Why no setting could be chosen: the first metric error of a tuned set.
fn no_objective(results: &[SettingResult], sets: &[ImageSet], tuned: &[usize]) -> Error {
    let first_error = results
        .iter()
        .flat_map(|r| &r.per_set)
        .filter(|m| tuned.contains(&m.set))
        .find_map(|m| m.metrics.as_ref().err().map(|e| (m.set, e)));
    Error::Invalid(match first_error {
        Some((set, e)) => format!(
            "no grid setting has validation metrics (OOD set `{}`: {e})",
            sets[set].name
        ),
        None => "no grid setting has validation metrics".into(),
    })
}
