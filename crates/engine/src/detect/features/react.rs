//! ReAct (Sun et al. 2021): features clipped at the `percentile`-th percentile `c` of all fit feature
//! entries; score `E(W·min(z, c) + b)`. The fit stores `c` for every percentile in steps of 0.1.

use tch::Tensor;

use super::features;
use crate::detect::{Context, DetectError, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params, ops};
use crate::model::Outputs;

pub struct React;

impl Detector for React {
    fn name(&self) -> &'static str {
        "react"
    }
    fn title(&self) -> &'static str {
        "ReAct"
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
        &["react_percentiles"]
    }

    fn params(&self, _dims: &Dims) -> Vec<ParamSpec> {
        vec![
            ParamSpec::real("percentile", "p", "Clip percentile", 90.0, [0.0, 100.0])
                .step(0.1)
                .help("Features are clipped at this percentile of all fit feature entries")
                .grid(&[85.0, 90.0, 95.0, 99.0]),
        ]
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        let fit = ctx.fit()?;
        let table = fit
            .react_percentiles
            .as_ref()
            .ok_or_else(|| DetectError(fit.lacks("ReAct percentiles")))?;
        let percentile = params.get("percentile")?;
        let level = (percentile * 10.0).round() as usize;
        let clip = *table
            .get(level)
            .ok_or_else(|| DetectError(format!("percentile {percentile} is outside 0–100")))?;
        ops::energy_of_head(&features(outputs)?.f_clamp_max(clip)?, ctx)
    }
}
