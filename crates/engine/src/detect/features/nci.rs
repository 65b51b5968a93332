//! NCI, neural-collapse inspired (Liu & Qin 2025): how well the centred feature `z − z̄` points
//! along the head's weight vector of the predicted class, `w_ŷ·(z − z̄) / ‖z − z̄‖`, plus
//! `α·‖z‖₁` (z̄ = the mean fit feature; ŷ = argmax of `W·z + b`).

use tch::{Kind, Tensor};

use super::{features, head_logits, mean_feature};
use crate::detect::{Context, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params};
use crate::model::Outputs;

pub struct Nci;

impl Detector for Nci {
    fn name(&self) -> &'static str {
        "nci"
    }
    fn title(&self) -> &'static str {
        "NCI"
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
        vec![
            ParamSpec::real("alpha", "α", "Feature-norm weight α", 0.0, [0.0, f64::INFINITY])
                .slider([0.0, 1.0], 0.0)
                .help("Weight of the feature's L1 norm added to the alignment (pytorch-ood's grid)")
                .grid(&[0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0]),
        ]
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        let mean = mean_feature(ctx)?;
        let alpha = params.get("alpha")?;
        let z = features(outputs)?;
        let (w, logits) = head_logits(ctx, &z)?;
        let predicted = logits.f_argmax(1, false)?;
        let centred = z.f_sub(mean)?;
        let alignment = centred
            .f_mul(&w.f_index_select(0, &predicted)?)?
            .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?
            .f_div(&centred.f_norm_scalaropt_dim(2.0, [1i64], false)?)?;
        if alpha == 0.0 {
            return Ok(alignment);
        }
        let l1 = z.f_abs()?.f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?;
        Ok(alignment.f_add(&l1.f_mul_scalar(alpha)?)?)
    }
    fn check(&self, ctx: &Context, _params: &Params) -> Result<(), String> {
        mean_feature(ctx).map(|_| ()).map_err(|e| e.0)
    }
}
