//! MaxLogit (Hendrycks et al. 2022): the largest logit, `max_k ℓ_k`.

use tch::{Kind, Tensor};

use crate::detect::{Context, DetectResult, Detector, Group, Needs, Params};
use crate::model::Outputs;

pub struct MaxLogit;

impl Detector for MaxLogit {
    fn name(&self) -> &'static str {
        "maxlogit"
    }
    fn title(&self) -> &'static str {
        "MaxLogit"
    }
    fn group(&self) -> Group {
        Group::Logits
    }
    fn needs(&self) -> Needs {
        Needs::default()
    }
    fn score(&self, outputs: &Outputs, _ctx: &Context, _params: &Params) -> DetectResult<Tensor> {
        // The largest value is exact in float32; only the result is widened.
        Ok(outputs.logits.f_amax([1], false)?.f_to_kind(Kind::Double)?)
    }
}
