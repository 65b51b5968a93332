//! One batch through one method: the formulas of SCORING.md on tensors (gradients taken per image).

use tch::{Device, Kind, Tensor};

use super::settings::{Method, ScoreSettings};
use crate::model::{Model, ModelError, Network};

/// Per-image results of one batch, on the CPU.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchScores {
    /// The method's score (higher = more in-distribution).
    pub score: Vec<f32>,
    /// The MSP baseline on the same images (single models only): max softmax of ℓ(x) at T = 1.
    pub baseline: Option<Vec<f32>>,
    /// Predicted class index (into the card's classes).
    pub pred: Vec<i64>,
    /// The predicted class's probability.
    pub pred_prob: Vec<f32>,
    /// The unperturbed logits, `logit_width` per image (an ensemble: its members' logits, concatenated),
    /// so that a change of T with ε = 0 re-scores without the model (see `rescore`).
    pub logits: Vec<f32>,
    pub logit_width: usize,
}

/// Scores a batch `x` (`[N, C, H, W]`, pixel units, on the model's device).
///
/// The class prediction of a single model is `argmax ℓ(x)` on the unperturbed image, with its
/// softmax probability at T = 1; for an ensemble it is SCORING.md's averaged, scattered `p_k`.
pub fn score_batch(model: &Model, x: &Tensor, settings: &ScoreSettings) -> Result<BatchScores, ModelError> {
    if let Some(reason) = settings.method.unsupported_reason(&model.card) {
        return Err(ModelError::Model {
            path: model.card.path.clone(),
            message: reason,
        });
    }
    let t = settings.temperature;
    let eps = settings.epsilon;
    let (score, logits) = match settings.method {
        Method::Msp => {
            let logits = tch::no_grad(|| model.forward(x))?.logits;
            (max_softmax(&logits, 1.0), logits)
        }
        Method::Odin => odin_step_and_score(model, x, t, eps, |l| max_softmax(l, t))?,
        Method::Energy => odin_step_and_score(model, x, t, eps, |l| (l / t).logsumexp([1], false) * t)?,
        Method::Confidence => confidence_score(model, x, eps)?,
        Method::Ensemble => return ensemble_scores(model, x, t, eps),
    };
    let probs = logits.softmax(1, Kind::Float);
    let (pred_prob, pred) = probs.max_dim(1, false);
    let baseline = to_vec_f32(&pred_prob);
    Ok(BatchScores {
        score: to_vec_f32(&score),
        baseline: Some(baseline.clone()),
        pred: to_vec_i64(&pred),
        pred_prob: baseline,
        logits: to_vec_f32(&logits),
        logit_width: logits.size()[1] as usize,
    })
}

/// `max_i softmax(ℓ/T)_i`.
pub(crate) fn max_softmax(logits: &Tensor, t: f64) -> Tensor {
    (logits / t).softmax(1, Kind::Float).amax([1], false)
}

/// `−log softmax(ℓ/T)_ŷ` with ŷ = argmax ℓ, summed over the batch (each image keeps its own gradient).
pub(crate) fn odin_loss(logits: &Tensor, t: f64) -> Tensor {
    let pred = logits.argmax(1, true);
    -(logits / t)
        .log_softmax(1, Kind::Float)
        .gather(1, &pred, false)
        .sum(Kind::Float)
}

/// `x̃ = x − ε·sign(∇ₓ loss)`, with the loss built by `loss_of` from a grad-tracking copy of x.
/// Returns x̃ and whatever `loss_of` returned beside the loss (detached).
fn perturb<T>(
    x: &Tensor,
    eps: f64,
    loss_of: impl FnOnce(&Tensor) -> Result<(Tensor, T), ModelError>,
) -> Result<(Tensor, T), ModelError> {
    let x_tracked = x.detach().set_requires_grad(true);
    let (loss, extra) = loss_of(&x_tracked)?;
    loss.backward();
    let step = x_tracked.grad().sign() * eps;
    Ok((tch::no_grad(|| x.detach() - step), extra))
}

/// ODIN's step at temperature T (when ε > 0), then `score_of(ℓ(x̃))`. Returns the score and ℓ(x).
fn odin_step_and_score(
    model: &Model,
    x: &Tensor,
    t: f64,
    eps: f64,
    score_of: impl Fn(&Tensor) -> Tensor,
) -> Result<(Tensor, Tensor), ModelError> {
    if eps == 0.0 {
        let logits = tch::no_grad(|| model.forward(x))?.logits;
        return Ok((score_of(&logits), logits));
    }
    let (x_tilde, logits) = perturb(x, eps, |xg| {
        let logits = model.forward(xg)?.logits;
        Ok((odin_loss(&logits, t), logits.detach()))
    })?;
    let perturbed = tch::no_grad(|| model.forward(&x_tilde))?.logits;
    Ok((score_of(&perturbed), logits))
}

/// `c(x̃) = sigmoid(s(x̃))` with `x̃ = x − ε·sign(∇ₓ(−log c(x)))`. Returns the score and ℓ(x).
fn confidence_score(model: &Model, x: &Tensor, eps: f64) -> Result<(Tensor, Tensor), ModelError> {
    let confidence_of = |out: crate::model::Outputs| -> Result<(Tensor, Tensor), ModelError> {
        let s = out
            .confidence_logit
            .ok_or_else(|| ModelError::model(&model.card.path, "the model returned no confidence"))?;
        Ok((s, out.logits))
    };
    if eps == 0.0 {
        let (s, logits) = tch::no_grad(|| model.forward(x).and_then(confidence_of))?;
        return Ok((s.sigmoid(), logits));
    }
    let (x_tilde, logits) = perturb(x, eps, |xg| {
        let (s, logits) = confidence_of(model.forward(xg)?)?;
        Ok((-s.log_sigmoid().sum(Kind::Float), logits.detach()))
    })?;
    let (s, _) = tch::no_grad(|| model.forward(&x_tilde).and_then(confidence_of))?;
    Ok((s.sigmoid(), logits))
}

/// Σ_k [max_j p_kj − H(p_k)] with `p_k = softmax(ℓ_k(x̃_k)/T)`; prediction from the averaged,
/// scattered p_k.
fn ensemble_scores(model: &Model, x: &Tensor, t: f64, eps: f64) -> Result<BatchScores, ModelError> {
    let Network::Ensemble { members } = &model.network else {
        return Err(ModelError::model(&model.card.path, "not an ensemble"));
    };
    let n = x.size()[0];
    let num_classes = model.card.num_classes() as i64;
    let mut score = Tensor::zeros([n], (Kind::Float, model.device));
    let mut averaged = Tensor::zeros([n, num_classes], (Kind::Float, model.device));
    let mut clean_logits = Vec::with_capacity(members.len());
    for member in members {
        let x_k = if eps == 0.0 {
            clean_logits.push(tch::no_grad(|| model.member_logits(member, x))?);
            x.shallow_clone()
        } else {
            let (x_k, logits) = perturb(x, eps, |xg| {
                let logits = model.member_logits(member, xg)?;
                Ok((odin_loss(&logits, t), logits.detach()))
            })?;
            clean_logits.push(logits);
            x_k
        };
        tch::no_grad(|| -> Result<(), ModelError> {
            let scaled = model.member_logits(member, &x_k)? / t;
            let p = scaled.softmax(1, Kind::Float);
            let entropy = -(&p * scaled.log_softmax(1, Kind::Float)).sum_dim_intlist(&[1i64][..], false, Kind::Float);
            score += p.amax([1], false) - entropy;
            let columns: Vec<i64> = member.classes.iter().map(|&c| c as i64).collect();
            let index = Tensor::from_slice(&columns).to_device(model.device);
            averaged = averaged.index_add(1, &index, &p);
            Ok(())
        })?;
    }
    let averaged = averaged / members.len() as f64;
    let (pred_prob, pred) = averaged.max_dim(1, false);
    let logits = Tensor::cat(&clean_logits, 1);
    Ok(BatchScores {
        score: to_vec_f32(&score),
        baseline: None,
        pred: to_vec_i64(&pred),
        pred_prob: to_vec_f32(&pred_prob),
        logits: to_vec_f32(&logits),
        logit_width: logits.size()[1] as usize,
    })
}

pub(crate) fn to_vec_f32(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(
        t.detach()
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
            .view([-1]),
    )
    .unwrap_or_default()
}

fn to_vec_i64(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(
        t.detach()
            .to_device(Device::Cpu)
            .to_kind(Kind::Int64)
            .contiguous()
            .view([-1]),
    )
    .unwrap_or_default()
}

/// The input perturbation `x̃ − x = −ε·sign(∇ₓ loss)` of a batch under the method's step (the ODIN
/// loss at T; the confidence loss for the confidence branch; the first member's ODIN loss for an
/// ensemble), in pixel units, on the CPU as `[N, C, H, W]` values. Zero for MSP or ε = 0.
pub fn perturbation(model: &Model, x: &Tensor, settings: &ScoreSettings) -> Result<Vec<f32>, ModelError> {
    let (t, eps) = (settings.temperature, settings.epsilon);
    if settings.method == Method::Msp || eps == 0.0 {
        return Ok(vec![0.0; x.numel()]);
    }
    let (x_tilde, ()) = match (settings.method, &model.network) {
        (Method::Ensemble, Network::Ensemble { members }) => {
            let first = members
                .first()
                .ok_or_else(|| ModelError::model(&model.card.path, "an ensemble with no members"))?;
            perturb(x, eps, |xg| Ok((odin_loss(&model.member_logits(first, xg)?, t), ())))?
        }
        (Method::Confidence, _) => perturb(x, eps, |xg| {
            let s = model
                .forward(xg)?
                .confidence_logit
                .ok_or_else(|| ModelError::model(&model.card.path, "no confidence output"))?;
            Ok((-s.log_sigmoid().sum(Kind::Float), ()))
        })?,
        _ => perturb(x, eps, |xg| Ok((odin_loss(&model.forward(xg)?.logits, t), ())))?,
    };
    Ok(to_vec_f32(&(x_tilde - x)))
}

/// `‖∇ₓ L‖₁` per image at temperature T, with L the ODIN loss: the first-order rate at which the
/// ODIN step raises `log S(x̃)` per unit of ε (`log S(x̃) ≈ log S(x) + ε·‖∇ₓ log S(x)‖₁`).
pub fn odin_gradient_l1(model: &Model, x: &Tensor, t: f64) -> Result<Vec<f32>, ModelError> {
    let x_tracked = x.detach().set_requires_grad(true);
    let loss = odin_loss(&model.forward(&x_tracked)?.logits, t);
    loss.backward();
    let norms = x_tracked
        .grad()
        .abs()
        .sum_dim_intlist(&[1i64, 2, 3][..], false, Kind::Float);
    Ok(to_vec_f32(&norms))
}
