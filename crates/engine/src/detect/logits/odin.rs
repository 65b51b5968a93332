//! ODIN (Liang, Li & Srikant 2018): temperature scaling and an input step against the gradient of
//! `−log softmax(ℓ/T)_ŷ`; score `max_i softmax(ℓ(x̃)/T)_i`. T = 1, ε = 0 is the MSP baseline.

use tch::Tensor;

use crate::detect::{Context, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params, ops};
use crate::model::Outputs;

pub struct Odin;

impl Detector for Odin {
    fn name(&self) -> &'static str {
        "odin"
    }
    fn title(&self) -> &'static str {
        "ODIN"
    }
    fn group(&self) -> Group {
        Group::Gradient
    }
    fn needs(&self) -> Needs {
        Needs {
            gradient: true,
            ..Needs::default()
        }
    }
    fn params(&self, _dims: &Dims) -> Vec<ParamSpec> {
        vec![ParamSpec::temperature(1000.0), ParamSpec::epsilon(0.0014)]
    }
    fn step_losses(&self, outputs: &Outputs, _ctx: &Context, params: &Params) -> DetectResult<Vec<Tensor>> {
        Ok(vec![ops::odin_loss(&outputs.logits, params.get("temperature")?)?])
    }
    fn score(&self, outputs: &Outputs, _ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        ops::max_softmax(&outputs.logits, params.get("temperature")?)
    }
    /// `log S(x̃) ≈ log S(x) + ε·‖∇ₓ L‖₁` (L = −log S), capped at 1.
    fn first_order(&self, clean: f64, epsilon_times_norm: f64) -> Option<f64> {
        Some((clean * epsilon_times_norm.exp()).min(1.0))
    }
}
