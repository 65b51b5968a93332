//! SCALE (Xu et al. 2024): every feature scaled by `exp(s1/s2)` with ASH's `s1` (sum of all
//! entries) and `s2` (sum of the top-k), nothing zeroed; score `E(W·z′ + b)`.

use tch::Tensor;

use super::ash::{check_kept, percentile_param, top_k};
use crate::detect::{Context, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params, ops};
use crate::model::Outputs;

pub struct Scale;

impl Detector for Scale {
    fn name(&self) -> &'static str {
        "scale"
    }
    fn title(&self) -> &'static str {
        "SCALE"
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
    fn params(&self, _dims: &Dims) -> Vec<ParamSpec> {
        vec![percentile_param(85.0)]
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        let (z, _, s1, s2, _) = top_k(outputs, params.get("percentile")?)?;
        ops::energy_of_head(&z.f_mul(&s1.f_div(&s2)?.f_exp()?)?, ctx)
    }
    fn check(&self, ctx: &Context, params: &Params) -> Result<(), String> {
        check_kept(ctx, params)
    }
}
