//! GradNorm (Huang et al. 2021): the L1 norm of the gradient of `−Σ_k log softmax(ℓ)_k` (the KL to
//! the uniform distribution, times C) with respect to the head's weights, in closed form:
//! `Σ_{j,d} |∂L/∂W_jd| = ‖C·p − 1‖₁ · ‖z‖₁`.

use tch::{Kind, Tensor};

use super::features;
use crate::detect::{Context, DetectResult, Detector, Group, Needs, Params};
use crate::model::Outputs;

pub struct GradNorm;

impl Detector for GradNorm {
    fn name(&self) -> &'static str {
        "gradnorm"
    }
    fn title(&self) -> &'static str {
        "GradNorm"
    }
    fn group(&self) -> Group {
        Group::Features
    }
    fn needs(&self) -> Needs {
        Needs {
            features: true,
            head: true,
            ..Needs::default()
        }
    }
    fn score(&self, outputs: &Outputs, _ctx: &Context, _params: &Params) -> DetectResult<Tensor> {
        let logits = outputs.logits.f_to_kind(Kind::Double)?;
        let classes = logits.size()[1] as f64;
        let p = logits.f_softmax(1, Kind::Double)?;
        let logit_part =
            p.f_mul_scalar(classes)?
                .f_sub_scalar(1.0)?
                .f_abs()?
                .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?;
        let feature_part = features(outputs)?
            .f_abs()?
            .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?;
        Ok(logit_part.f_mul(&feature_part)?)
    }
}
