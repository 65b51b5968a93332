//! Formulas that several detectors share, on tensors (fallible forms: a libtorch error is an
//! error, never a panic).

use tch::{Kind, Tensor};

use super::DetectResult;

/// `max_i softmax(ℓ/T)_i`, per row.
pub fn max_softmax(logits: &Tensor, t: f64) -> DetectResult<Tensor> {
    Ok(logits.f_div_scalar(t)?.f_softmax(1, Kind::Float)?.f_amax([1], false)?)
}

/// `T·logsumexp(ℓ/T)`, per row (the energy score; `T = 1` is `E(ℓ)` of docs/methods.md).
pub fn energy(logits: &Tensor, t: f64) -> DetectResult<Tensor> {
    Ok(logits.f_div_scalar(t)?.f_logsumexp([1], false)?.f_mul_scalar(t)?)
}

/// ODIN's loss `−log softmax(ℓ/T)_ŷ` with ŷ = argmax ℓ, summed over the batch (each image keeps
/// its own gradient).
pub fn odin_loss(logits: &Tensor, t: f64) -> DetectResult<Tensor> {
    let pred = logits.f_argmax(1, true)?;
    Ok(logits
        .f_div_scalar(t)?
        .f_log_softmax(1, Kind::Float)?
        .f_gather(1, &pred, false)?
        .f_sum(Kind::Float)?
        .f_neg()?)
}

/// `max_j p_j − H(p)` with `p = softmax(ℓ/T)`, per row (a leave-out ensemble member's term).
pub fn max_softmax_minus_entropy(logits: &Tensor, t: f64) -> DetectResult<Tensor> {
    let scaled = logits.f_div_scalar(t)?;
    let p = scaled.f_softmax(1, Kind::Float)?;
    let entropy = p
        .f_mul(&scaled.f_log_softmax(1, Kind::Float)?)?
        .f_sum_dim_intlist(&[1i64][..], false, Kind::Float)?
        .f_neg()?;
    Ok(p.f_amax([1], false)?.f_sub(&entropy)?)
}

/// The features in float64 (the feature methods compute in double precision).
pub fn features_f64(features: Option<&Tensor>) -> DetectResult<Tensor> {
    let z = features.ok_or_else(|| super::DetectError("the model returned no features".into()))?;
    Ok(z.f_to_kind(Kind::Double)?)
}

/// `E(W·z + b)` = logsumexp of the head applied to (possibly modified) features `[N, D]`, in
/// float64.
pub fn energy_of_head(z: &Tensor, ctx: &super::Context) -> DetectResult<Tensor> {
    let head = ctx.head()?;
    let w = head.weight.f_to_kind(Kind::Double)?;
    let b = head.bias.f_to_kind(Kind::Double)?;
    Ok(z.f_linear(&w, Some(&b))?.f_logsumexp([1], false)?)
}
