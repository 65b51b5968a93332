//! VRA, variational rectified activation (Xu et al. 2023) as pytorch-ood defines it: each feature
//! clipped to `[q_d(lower), q_d(upper)]`, its own quantiles over the fit images (a two-sided ReAct
//! per feature), then the energy `E(W·z′ + b)`. The fit stores every feature's quantiles at the
//! levels 0, 0.01, …, 1.

use tch::Tensor;

use super::features;
use crate::detect::{Context, DetectError, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params, ops};
use crate::model::Outputs;

pub struct Vra;

/// The fit's quantiles `[levels, D]`, or why it has none.
fn quantiles<'a>(ctx: &Context<'a>) -> DetectResult<&'a Tensor> {
    let fit = ctx.fit()?;
    fit.vra_quantiles
        .as_ref()
        .ok_or_else(|| DetectError(fit.lacks_newer("per-feature quantiles (VRA)", false)))
}

/// The row of the quantile table for the level `q` (a multiple of 0.01 in [0, 1]).
fn level(q: f64) -> i64 {
    (q * 100.0).round() as i64
}

impl Detector for Vra {
    fn name(&self) -> &'static str {
        "vra"
    }
    fn title(&self) -> &'static str {
        "VRA"
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
        &["vra_quantiles"]
    }

    fn params(&self, _dims: &Dims) -> Vec<ParamSpec> {
        vec![
            ParamSpec::real("lower", "q₋", "Lower quantile", 0.01, [0.0, 1.0])
                .step(0.01)
                .help("Each feature is raised to at least this quantile of its fit values")
                .grid(&[0.01, 0.05, 0.1, 0.15]),
            ParamSpec::real("upper", "q₊", "Upper quantile", 0.99, [0.0, 1.0])
                .step(0.01)
                .help("Each feature is clipped to at most this quantile of its fit values")
                .grid(&[0.85, 0.9, 0.95, 0.99]),
        ]
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        self.check(ctx, params)?;
        let table = quantiles(ctx)?;
        let low = table.f_select(0, level(params.get("lower")?))?;
        let high = table.f_select(0, level(params.get("upper")?))?;
        let z = features(outputs)?.f_clamp_min_tensor(&low)?.f_clamp_max_tensor(&high)?;
        ops::energy_of_head(&z, ctx)
    }
    fn check(&self, ctx: &Context, params: &Params) -> Result<(), String> {
        quantiles(ctx).map_err(|e| e.0)?;
        let (lower, upper) = (params.get("lower")?, params.get("upper")?);
        if lower > upper {
            return Err(format!(
                "VRA's lower quantile ({lower}) is above its upper one ({upper}): give lower ≤ upper"
            ));
        }
        Ok(())
    }
}
