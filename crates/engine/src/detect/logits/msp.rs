//! The maximum softmax probability baseline (Hendrycks & Gimpel 2017): `max_i softmax(ℓ)_i`.

use tch::Tensor;

use crate::detect::{Context, DetectResult, Detector, Group, Needs, Params, ops};
use crate::model::Outputs;

pub struct Msp;

impl Detector for Msp {
    fn name(&self) -> &'static str {
        "msp"
    }
    fn title(&self) -> &'static str {
        "Baseline (MSP)"
    }
    fn group(&self) -> Group {
        Group::Logits
    }
    fn needs(&self) -> Needs {
        Needs::default()
    }
    fn score(&self, outputs: &Outputs, _ctx: &Context, _params: &Params) -> DetectResult<Tensor> {
        ops::max_softmax(&outputs.logits, 1.0)
    }
}
