//! Scores at every (T, ε) of the grid with the gradient sign reused across ε.
//!
//! The step `x̃ = x − ε·sign(∇ₓL)` points the same way for every ε (L depends on T, not on ε), so
//! for one T the sign of each image is computed once — one forward and one backward pass — and each
//! ε then costs one forward pass of `x − ε·sign`. The unperturbed outputs (ε = 0) do not depend on
//! T either, so they are computed once per batch. For the default 10 × 21 grid that is 1 + 10·(1 +
//! 20) forward and 10 backward passes per image, instead of 10·21 forward and 10·20 backward.
//! The formulas mirror `score::methods` operation for operation, so the scores are the same numbers
//! `score_batch` gives at each setting (tests/tune_reuse.rs checks it).

use std::sync::atomic::{AtomicBool, Ordering};

use tch::{Kind, Tensor};

use super::grid::TuneGrid;
use super::split::ValidationData;
use crate::model::{Model, ModelError, Network, Outputs};
use crate::score::methods::{max_softmax, odin_loss, to_vec_f32};
use crate::score::{Method, RunError};

/// Per-image scores at every setting: `scores[grid.index(t, e)][image]`.
pub type GridScores = Vec<Vec<f32>>;

/// Scores of the whole validation split at every setting of `grid`, `batch_size` images at a time.
/// Reports `(done, total)` in image·temperature units after each temperature of each batch, and
/// checks `cancel` there.
pub fn grid_scores(
    model: &Model,
    method: Method,
    data: &ValidationData,
    grid: &TuneGrid,
    batch_size: usize,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<GridScores, RunError> {
    if batch_size == 0 {
        return Err(RunError::Invalid("batch size must be at least 1".into()));
    }
    if let Some(reason) = method.unsupported_reason(&model.card) {
        return Err(RunError::Invalid(reason));
    }
    let [c, h, w] = model.card.input_shape();
    let total = data.len() * grid.temperatures.len();
    let mut scores: GridScores = vec![Vec::with_capacity(data.len()); grid.len()];
    let mut done = 0;
    for start in (0..data.len()).step_by(batch_size) {
        let end = (start + batch_size).min(data.len());
        let n = (end - start) as i64;
        let x = Tensor::from_slice(data.images(start, end))
            .view([n, c, h, w])
            .to_kind(Kind::Float)
            .to_device(model.device);
        let batch = BatchSearch::new(model, method, &x, grid)?;
        for t in 0..grid.temperatures.len() {
            if cancel.load(Ordering::Relaxed) {
                return Err(RunError::Cancelled);
            }
            for (e, batch_scores) in batch.temperature_scores(t)?.into_iter().enumerate() {
                if batch_scores.len() != (end - start) {
                    return Err(RunError::Invalid(
                        "the model returned a result of the wrong length".into(),
                    ));
                }
                scores[grid.index(t, e)].extend(batch_scores);
            }
            done += end - start;
            on_progress(done, total);
        }
    }
    Ok(scores)
}

/// Scores of one batch `x` (`[N, C, H, W]`, pixel units, on the model's device) at every setting.
pub fn batch_grid_scores(model: &Model, method: Method, x: &Tensor, grid: &TuneGrid) -> Result<GridScores, ModelError> {
    if let Some(reason) = method.unsupported_reason(&model.card) {
        return Err(ModelError::model(&model.card.path, reason));
    }
    let batch = BatchSearch::new(model, method, x, grid)?;
    let mut scores: GridScores = vec![Vec::new(); grid.len()];
    for t in 0..grid.temperatures.len() {
        for (e, s) in batch.temperature_scores(t)?.into_iter().enumerate() {
            scores[grid.index(t, e)] = s;
        }
    }
    Ok(scores)
}

/// One batch under search: the input and its unperturbed outputs (shared by every T at ε = 0).
struct BatchSearch<'a> {
    model: &'a Model,
    method: Method,
    grid: &'a TuneGrid,
    x: &'a Tensor,
    /// Outputs of the unperturbed input, when the ε grid holds 0.
    unperturbed: Option<Vec<Tensor>>,
}

impl<'a> BatchSearch<'a> {
    fn new(model: &'a Model, method: Method, x: &'a Tensor, grid: &'a TuneGrid) -> Result<Self, ModelError> {
        let unperturbed = if grid.epsilons.contains(&0.0) {
            let inputs: Vec<Tensor> = (0..networks(model)).map(|_| x.shallow_clone()).collect();
            Some(outputs(model, method, &inputs)?)
        } else {
            None
        };
        Ok(BatchSearch {
            model,
            method,
            grid,
            x,
            unperturbed,
        })
    }

    /// The batch's scores at temperature index `t`, one vector per ε of the grid.
    fn temperature_scores(&self, t: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        let temperature = self.grid.temperatures[t];
        let signs = if self.grid.epsilons.iter().any(|&e| e != 0.0) {
            gradient_signs(self.model, self.method, self.x, temperature)?
        } else {
            Vec::new()
        };
        self.grid
            .epsilons
            .iter()
            .map(|&eps| {
                let out = match &self.unperturbed {
                    Some(unperturbed) if eps == 0.0 => shallow(unperturbed),
                    _ => {
                        let inputs: Vec<Tensor> = signs
                            .iter()
                            .map(|sign| {
                                let step = sign * eps;
                                tch::no_grad(|| self.x.detach() - step)
                            })
                            .collect();
                        outputs(self.model, self.method, &inputs)?
                    }
                };
                Ok(to_vec_f32(&score_of(self.model, self.method, &out, temperature)))
            })
            .collect()
    }
}

fn shallow(tensors: &[Tensor]) -> Vec<Tensor> {
    tensors.iter().map(Tensor::shallow_clone).collect()
}

/// How many networks take their own perturbed input: one per ensemble member, else one.
fn networks(model: &Model) -> usize {
    match &model.network {
        Network::Ensemble { members } => members.len(),
        Network::Single { .. } => 1,
    }
}

/// The confidence logit of a forward pass, as `score::methods` reads it.
fn confidence_logit(model: &Model, out: Outputs) -> Result<Tensor, ModelError> {
    out.confidence_logit
        .ok_or_else(|| ModelError::model(&model.card.path, "the model returned no confidence"))
}

/// What the score is computed from, without gradients: the logits (ODIN, energy), the confidence
/// logit (confidence branch), or each member's logits on its own input (ensemble).
fn outputs(model: &Model, method: Method, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
    tch::no_grad(|| match (method, &model.network) {
        (Method::Odin | Method::Energy, _) => Ok(vec![model.forward(&inputs[0])?.logits]),
        (Method::Confidence, _) => Ok(vec![confidence_logit(model, model.forward(&inputs[0])?)?]),
        (Method::Ensemble, Network::Ensemble { members }) => members
            .iter()
            .zip(inputs)
            .map(|(member, x)| model.member_logits(member, x))
            .collect(),
        _ => Err(ModelError::model(
            &model.card.path,
            format!("method `{method}` has nothing to tune on this model"),
        )),
    })
}

/// SCORING.md's score at temperature `t` from [`outputs`], with `score::methods`' operations.
fn score_of(model: &Model, method: Method, out: &[Tensor], t: f64) -> Tensor {
    tch::no_grad(|| match method {
        Method::Odin => max_softmax(&out[0], t),
        Method::Energy => (&out[0] / t).logsumexp([1], false) * t,
        Method::Confidence => out[0].sigmoid(),
        Method::Ensemble | Method::Msp => {
            let n = out.first().map_or(0, |o| o.size()[0]);
            let mut score = Tensor::zeros([n], (Kind::Float, model.device));
            for logits in out {
                let scaled = logits / t;
                let p = scaled.softmax(1, Kind::Float);
                let entropy =
                    -(&p * scaled.log_softmax(1, Kind::Float)).sum_dim_intlist(&[1i64][..], false, Kind::Float);
                score += p.amax([1], false) - entropy;
            }
            score
        }
    })
}

/// `sign(∇ₓL)` at temperature `t`, one per network: L is ODIN's loss (ODIN, energy, each ensemble
/// member with its own argmax) or `−log c(x)` (confidence branch, which ignores `t`).
fn gradient_signs(model: &Model, method: Method, x: &Tensor, t: f64) -> Result<Vec<Tensor>, ModelError> {
    match (method, &model.network) {
        (Method::Odin | Method::Energy, _) => Ok(vec![gradient_sign(x, |xg| {
            Ok(odin_loss(&model.forward(xg)?.logits, t))
        })?]),
        (Method::Confidence, _) => Ok(vec![gradient_sign(x, |xg| {
            let s = confidence_logit(model, model.forward(xg)?)?;
            Ok(-s.log_sigmoid().sum(Kind::Float))
        })?]),
        (Method::Ensemble, Network::Ensemble { members }) => members
            .iter()
            .map(|member| gradient_sign(x, |xg| Ok(odin_loss(&model.member_logits(member, xg)?, t))))
            .collect(),
        _ => Err(ModelError::model(
            &model.card.path,
            format!("method `{method}` has nothing to tune on this model"),
        )),
    }
}

/// `sign(∇ₓ loss)` with the loss built by `loss_of` from a grad-tracking copy of x (as `perturb`).
fn gradient_sign(
    x: &Tensor,
    loss_of: impl FnOnce(&Tensor) -> Result<Tensor, ModelError>,
) -> Result<Tensor, ModelError> {
    let x_tracked = x.detach().set_requires_grad(true);
    let loss = loss_of(&x_tracked)?;
    loss.backward();
    Ok(x_tracked.grad().sign())
}
