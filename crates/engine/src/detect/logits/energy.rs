//! The energy score (Liu et al. 2020): `T·logsumexp(ℓ/T)`; with ε > 0 the ODIN step comes first.

use tch::Tensor;

use crate::detect::{Context, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params, ops};
use crate::model::Outputs;

pub struct Energy;

impl Detector for Energy {
    fn name(&self) -> &'static str {
        "energy"
    }
    fn title(&self) -> &'static str {
        "Energy"
    }
    fn group(&self) -> Group {
        Group::Logits
    }
    fn needs(&self) -> Needs {
        Needs {
            gradient: true,
            ..Needs::default()
        }
    }
    fn params(&self, _dims: &Dims) -> Vec<ParamSpec> {
        vec![ParamSpec::temperature(1.0), ParamSpec::epsilon(0.0)]
    }
    fn step_losses(&self, outputs: &Outputs, _ctx: &Context, params: &Params) -> DetectResult<Vec<Tensor>> {
        Ok(vec![ops::odin_loss(&outputs.logits, params.get("temperature")?)?])
    }
    fn score(&self, outputs: &Outputs, _ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        ops::energy(&outputs.logits, params.get("temperature")?)
    }
}
