//! Methods on the penultimate features: Mahalanobis, relative Mahalanobis, the class-conditional
//! Gaussian mixture, KNN, NNGuide, ViM and its residual, fDBD, NCI, SHE, pNML, ReAct, VRA, ASH,
//! SCALE, LTS, DICE and GradNorm.

pub mod ash;
pub mod dice;
pub mod fdbd;
pub mod gmm;
pub mod gradnorm;
pub mod knn;
pub mod lts;
pub mod mahalanobis;
pub mod nci;
pub mod nnguide;
pub mod pnml;
pub mod react;
pub mod residual;
pub mod rmds;
pub mod scale;
pub mod she;
pub mod vim;
pub mod vra;

use tch::{Kind, Tensor};

use super::{Context, DetectError, DetectResult};
use crate::stats::{Fit, Quadratic};

/// The fit's class-mean distances, or why there are none.
fn class_distances<'a>(ctx: &Context<'a>) -> DetectResult<(&'a Fit, &'a Quadratic)> {
    let fit = ctx.fit()?;
    let quadratic = fit
        .mahalanobis
        .as_ref()
        .ok_or_else(|| DetectError(fit.lacks("class means")))?;
    Ok((fit, quadratic))
}

/// The mean of all fit features `z̄` (DICE, fDBD, NCI), or why the fit has none.
fn mean_feature<'a>(ctx: &Context<'a>) -> DetectResult<&'a Tensor> {
    let fit = ctx.fit()?;
    fit.global_mean
        .as_ref()
        .ok_or_else(|| DetectError(fit.lacks("mean feature")))
}

/// The head's weights `W` and its logits `W·z + b` for the features `z`, float64.
fn head_logits(ctx: &Context, z: &Tensor) -> DetectResult<(Tensor, Tensor)> {
    let head = ctx.head()?;
    let w = head.weight.f_to_kind(Kind::Double)?;
    let logits = z.f_linear(&w, Some(&head.bias.f_to_kind(Kind::Double)?))?;
    Ok((w, logits))
}

/// The features of the outputs in float64.
fn features(outputs: &crate::model::Outputs) -> DetectResult<Tensor> {
    super::ops::features_f64(outputs.features.as_ref())
}
