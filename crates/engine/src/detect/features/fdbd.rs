//! fDBD, fast decision boundary distance (Liu & Qin 2024): the closed-form distance of the features
//! to the head's decision boundary between the predicted class ŷ and each other class c,
//! `(ℓ_ŷ − ℓ_c) / ‖w_ŷ − w_c‖`, averaged over the C − 1 other classes and divided by the distance
//! `‖z − z̄‖` to the mean fit feature; `ℓ = W·z + b`.

use tch::{Kind, Tensor};

use super::{features, head_logits, mean_feature};
use crate::detect::{Context, DetectError, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params};
use crate::model::Outputs;

pub struct Fdbd;

/// `‖w_p − w_c‖` for every pair of classes, `[C, C]` (from the Gram matrix: one `C×C` product, not
/// `C²·D` differences), float64.
fn pairwise_distances(w: &Tensor) -> DetectResult<Tensor> {
    let squares = w.f_mul(w)?.f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?;
    let gram = w.f_mm(&w.f_transpose(0, 1)?)?;
    Ok(squares
        .f_unsqueeze(1)?
        .f_add(&squares.f_unsqueeze(0)?)?
        .f_sub(&gram.f_mul_scalar(2.0)?)?
        .f_clamp_min(0.0)?
        .f_sqrt()?)
}

impl Detector for Fdbd {
    fn name(&self) -> &'static str {
        "fdbd"
    }
    fn title(&self) -> &'static str {
        "fDBD"
    }
    fn group(&self) -> Group {
        Group::Fit
    }
    fn needs(&self) -> Needs {
        Needs {
            features: true,
            head: true,
            fit: true,
            ..Needs::default()
        }
    }

    fn fit_tensors(&self) -> &'static [&'static str] {
        &["global_mean"]
    }

    fn params(&self, _dims: &Dims) -> Vec<ParamSpec> {
        Vec::new()
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, _params: &Params) -> DetectResult<Tensor> {
        let mean = mean_feature(ctx)?;
        let z = features(outputs)?;
        let (w, logits) = head_logits(ctx, &z)?;
        let classes = w.size()[0];
        if classes < 2 {
            return Err(DetectError("fDBD needs at least 2 classes".into()));
        }
        let (top, predicted) = logits.f_max_dim(1, true)?;
        let gaps = top.f_sub(&logits)?; // ℓ_ŷ − ℓ_c ≥ 0, and 0 at c = ŷ
        // ‖w_ŷ − w_c‖, with 1 at c = ŷ (its gap is 0) so that nothing divides by 0.
        let distances = pairwise_distances(&w)?
            .f_index_select(0, &predicted.f_squeeze_dim(1)?)?
            .f_scatter_value(1, &predicted, 1.0)?;
        let mean_distance = gaps
            .f_div(&distances)?
            .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?
            .f_div_scalar((classes - 1) as f64)?;
        let from_mean = z
            .f_sub(mean)?
            .f_norm_scalaropt_dim(2.0, [1i64], false)?
            .f_clamp_min(1e-8)?;
        Ok(mean_distance.f_div(&from_mean)?)
    }
    fn check(&self, ctx: &Context, _params: &Params) -> Result<(), String> {
        mean_feature(ctx).map(|_| ()).map_err(|e| e.0)
    }
}
