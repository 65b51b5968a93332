//! Temperature scaling (Guo et al. 2017): the maximum softmax probability at the temperature T
//! that minimises the negative log-likelihood of the labelled fit images' logits
//! (`crate::fit::temperature`), as its logarithm `max_i log softmax(ℓ/T)_i`: the same ranking as
//! `max_i softmax(ℓ/T)_i`, without its rounding to 1 (a tie) for confident images at a low T.

use tch::{Kind, Tensor};

use crate::detect::{Context, DetectError, DetectResult, Detector, Group, Needs, Params};
use crate::model::Outputs;

pub struct TempScale;

/// The fit's temperature, or why it has none.
fn temperature(ctx: &Context) -> DetectResult<f64> {
    let fit = ctx.fit()?;
    match fit.temperature {
        Some(t) if t.is_finite() && t > 0.0 => Ok(t),
        Some(t) => Err(DetectError(format!(
            "the fit {} holds temperature {t}, not a positive number; refit",
            fit.info.path.display()
        ))),
        None => Err(DetectError(fit.lacks_newer("fitted temperature", true))),
    }
}

impl Detector for TempScale {
    fn name(&self) -> &'static str {
        "tempscale"
    }
    fn title(&self) -> &'static str {
        "Temperature scaling"
    }
    fn group(&self) -> Group {
        Group::Fit
    }
    fn needs(&self) -> Needs {
        Needs {
            fit: true,
            ..Needs::default()
        }
    }

    fn fit_tensors(&self) -> &'static [&'static str] {
        &["temperature"]
    }

    fn score(&self, outputs: &Outputs, ctx: &Context, _params: &Params) -> DetectResult<Tensor> {
        let t = temperature(ctx)?;
        Ok(outputs
            .logits
            .f_to_kind(Kind::Double)?
            .f_div_scalar(t)?
            .f_log_softmax(1, Kind::Double)?
            .f_amax([1], false)?)
    }
    fn check(&self, ctx: &Context, _params: &Params) -> Result<(), String> {
        temperature(ctx).map(|_| ()).map_err(|e| e.0)
    }
}
