//! Scores of the validation split at every setting of a grid, in one plan.
//!
//! The plan computes the clean outputs of each batch once for all settings; settings without an
//! input step score from them (a new k, percentile or dim costs no model pass). For settings with a
//! step, the step `x̃ = x − ε·sign(∇ₓL)` points the same way for every ε (L does not depend on ε),
//! so the plan takes one backward pass per setting of the other parameters and one forward pass per
//! ε. For the default ODIN grid of 10 T × 21 ε that is 1 + 10·20 forward and 10 backward passes per
//! image, instead of 10·21 forward and 10·20 backward one setting at a time. The scores are the
//! numbers `score` gives at each setting (crates/engine/tests/tune_reuse.rs checks it).

use std::sync::atomic::AtomicBool;

use tch::{Kind, Tensor};

use super::split::ValidationData;
use crate::Error;
use crate::detect::plan::Plan;
use crate::model::Model;
use crate::score::ScoreSettings;
use crate::stats::Fit;

/// Per-image scores at every setting: `scores[setting][image]`.
pub type GridScores = Vec<Vec<f32>>;

/// Scores of the whole validation split at every setting, `batch_size` images at a time. Reports
/// `(done, total)` in images after each batch; `cancel` is checked between settings.
pub fn grid_scores(
    model: &Model,
    fit: Option<&Fit>,
    settings: &[ScoreSettings],
    data: &ValidationData,
    batch_size: usize,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<GridScores, Error> {
    if batch_size == 0 {
        return Err(Error::Invalid("batch size must be at least 1".into()));
    }
    let plan = Plan::new(model, settings.to_vec(), fit)?.cancelled_by(cancel);
    let [c, h, w] = model.card.input_shape();
    let mut scores: GridScores = vec![Vec::with_capacity(data.len()); settings.len()];
    for start in (0..data.len()).step_by(batch_size) {
        let end = (start + batch_size).min(data.len());
        let x = Tensor::from_slice(data.images(start, end))
            .f_view([(end - start) as i64, c, h, w])
            .and_then(|x| x.f_to_kind(Kind::Float))
            .and_then(|x| x.f_to_device(model.device))
            .map_err(|e| Error::Invalid(format!("cannot move a batch to the device: {e}")))?;
        let batch = plan.score_batch(&x)?;
        for (column, values) in scores.iter_mut().zip(batch.scores) {
            column.extend(values);
        }
        on_progress(end, data.len());
    }
    Ok(scores)
}

/// Scores of one batch `x` (`[N, C, H, W]`, pixel units, on the model's device) at every setting.
pub fn batch_grid_scores(
    model: &Model,
    fit: Option<&Fit>,
    settings: &[ScoreSettings],
    x: &Tensor,
) -> Result<GridScores, Error> {
    let plan = Plan::new(model, settings.to_vec(), fit)?;
    Ok(plan.score_batch(x)?.scores)
}
