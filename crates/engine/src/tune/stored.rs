//! The tuning protocol on saved outputs (a results file without its model): the same validation
//! and test splits as [`super::tune`] — the first K images of every set by their place in the set —
//! every grid setting scored on the validation rows, the choice scored once on the test rows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use oodscope_data::{ImageSet, Role, SetSource};

use super::split::{SetSplit, ValidationData, split_sets, test_sets};
use super::{Stage, TuneOptions, TuneProgress, TuneResult, no_objective, select, tuned_sets};
use crate::Error;
use crate::detect::cache::CachedOutputs;
use crate::evaluate::evaluate;
use crate::score::run::sets_with_role;
use crate::score::{ScoreRun, ScoreSettings};

/// Scores of some rows of saved outputs under one setting, or why there are none.
pub type StoredScorer<'a> = &'a dyn Fn(&CachedOutputs, &ScoreSettings) -> Result<Vec<f32>, String>;

/// Runs the protocol on `run`'s records (its `images` give each row's set and place) and their
/// saved outputs `cache`, scoring with `score`. Progress goes to `on_progress`, in rows; `cancel` is
/// checked between settings.
pub fn tune_stored(
    run: &ScoreRun,
    cache: &CachedOutputs,
    sets: &[ImageSet],
    options: &TuneOptions,
    score: StoredScorer,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(TuneProgress),
) -> Result<TuneResult, Error> {
    let grid = options.grid.clone();
    let settings = grid.all_settings();
    let tuned = tuned_sets(sets, options.tune_on.as_deref())?;
    if sets_with_role(sets, Role::Id).is_empty() {
        return Err(Error::Invalid("tuning needs at least one ID set".into()));
    }
    let splits = split_sets(sets, options.validation)?;
    let in_validation = |row: usize| {
        let image = &run.images[row];
        image.index < splits[image.set].validation
    };
    let (validation, test): (Vec<usize>, Vec<usize>) = (0..run.images.len()).partition(|&r| in_validation(r));
    let start = Instant::now();
    let validation_outputs = rows_of(cache, &validation);
    let mut scores = Vec::with_capacity(settings.len());
    for (done, setting) in settings.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        on_progress(TuneProgress {
            stage: Stage::Searching,
            done: done * validation.len(),
            total: settings.len() * validation.len(),
        });
        scores.push(score(&validation_outputs, setting).map_err(Error::Invalid)?);
    }
    let data = ValidationData {
        set_of: validation.iter().map(|&r| run.images[r].set).collect(),
        ..ValidationData::default()
    };
    let results = select::evaluate_grid(&grid, &scores, &data, sets, &tuned, options.objective);
    let best = select::best_setting(&results, options.objective).ok_or_else(|| no_objective(&results, sets, &tuned))?;
    let search_elapsed = start.elapsed();
    let chosen = settings[best].clone();

    on_progress(TuneProgress {
        stage: Stage::Testing,
        done: 0,
        total: test.len(),
    });
    let test_sets = test_sets(sets, &splits);
    let test_run = test_run(
        run,
        sets,
        &splits,
        &test,
        &chosen,
        score(&rows_of(cache, &test), &chosen).map_err(Error::Invalid)?,
    );
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
        validation_skipped: Vec::new(),
        search_elapsed,
        test_sets,
        test_run,
        test_evaluation,
    })
}

/// The test rows as a run over [`test_sets`]: a folder set's places counted from its test split
/// (its first files are drained), a noise set's kept (it stays whole).
fn test_run(
    run: &ScoreRun,
    sets: &[ImageSet],
    splits: &[SetSplit],
    rows: &[usize],
    chosen: &ScoreSettings,
    scores: Vec<f32>,
) -> ScoreRun {
    let images = rows
        .iter()
        .map(|&r| {
            let mut image = run.images[r].clone();
            if matches!(sets[image.set].source, SetSource::Folder { .. }) {
                image.index -= splits[image.set].validation;
            }
            image
        })
        .collect();
    ScoreRun {
        images,
        methods: vec![chosen.clone()],
        columns: vec![scores],
        ..ScoreRun::default()
    }
}

/// The given rows of saved outputs, in order.
fn rows_of(cache: &CachedOutputs, rows: &[usize]) -> CachedOutputs {
    let pick = |values: &[f32], width: usize| -> Vec<f32> {
        rows.iter()
            .flat_map(|&r| &values[r * width..(r + 1) * width])
            .copied()
            .collect()
    };
    CachedOutputs {
        logits: pick(&cache.logits, cache.logit_width),
        logit_width: cache.logit_width,
        features: pick(&cache.features, cache.feature_width),
        feature_width: cache.feature_width,
        member_widths: cache.member_widths.clone(),
        blocks: cache.blocks.rows(rows),
        rows: rows.len(),
    }
}
