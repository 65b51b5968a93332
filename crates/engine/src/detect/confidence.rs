//! The learned confidence branch (DeVries & Taylor 2018): `c(x̃) = sigmoid(s(x̃))` with
//! `x̃ = x − ε·sign(∇ₓ(−log c(x)))`; T is not used.

use tch::{Kind, Tensor};

use super::{Context, DetectError, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params};
use crate::model::Outputs;

pub struct Confidence;

fn confidence_logit(outputs: &Outputs) -> DetectResult<&Tensor> {
    outputs
        .confidence
        .as_ref()
        .ok_or_else(|| DetectError("the model returned no confidence".into()))
}

impl Detector for Confidence {
    fn name(&self) -> &'static str {
        "confidence"
    }
    fn title(&self) -> &'static str {
        "Confidence branch"
    }
    fn group(&self) -> Group {
        Group::Architecture
    }
    fn needs(&self) -> Needs {
        Needs {
            confidence: true,
            gradient: true,
            ..Needs::default()
        }
    }
    fn params(&self, _dims: &Dims) -> Vec<ParamSpec> {
        vec![ParamSpec::epsilon(0.0)]
    }
    fn step_losses(&self, outputs: &Outputs, _ctx: &Context, _params: &Params) -> DetectResult<Vec<Tensor>> {
        Ok(vec![
            confidence_logit(outputs)?
                .f_log_sigmoid()?
                .f_sum(Kind::Float)?
                .f_neg()?,
        ])
    }
    fn score(&self, outputs: &Outputs, _ctx: &Context, _params: &Params) -> DetectResult<Tensor> {
        Ok(confidence_logit(outputs)?.f_sigmoid()?)
    }
    /// `log c(x̃) ≈ log c(x) + ε·‖∇ₓ(−log c)‖₁`, capped at 1.
    fn first_order(&self, clean: f64, epsilon_times_norm: f64) -> Option<f64> {
        Some((clean * epsilon_times_norm.exp()).min(1.0))
    }
}
