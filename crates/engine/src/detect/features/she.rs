//! SHE, simplified Hopfield energy (Zhang et al. 2023): the fit stores, for each class, the mean
//! feature of its correctly classified fit images (its "pattern" `S_c`); score `z·S_ŷ`, the inner
//! product of the features with the pattern of the predicted class (ŷ = argmax of the logits).

use tch::{Kind, Tensor};

use super::features;
use crate::detect::{Context, DetectError, DetectResult, Detector, Group, Needs, Params};
use crate::model::Outputs;
use crate::stats::Fit;

pub struct She;

/// The fit's patterns, or why it has none.
fn patterns<'a>(ctx: &Context<'a>) -> DetectResult<&'a Tensor> {
    let fit: &Fit = ctx.fit()?;
    fit.she_patterns
        .as_ref()
        .ok_or_else(|| DetectError(fit.lacks_newer("SHE patterns", false)))
}

impl Detector for She {
    fn name(&self) -> &'static str {
        "she"
    }
    fn title(&self) -> &'static str {
        "SHE"
    }
    fn group(&self) -> Group {
        Group::Fit
    }
    fn needs(&self) -> Needs {
        Needs {
            features: true,
            fit: true,
            ..Needs::default()
        }
    }

    fn fit_tensors(&self) -> &'static [&'static str] {
        &["she_patterns"]
    }

    fn score(&self, outputs: &Outputs, ctx: &Context, _params: &Params) -> DetectResult<Tensor> {
        let patterns = patterns(ctx)?;
        let z = features(outputs)?;
        let predicted = outputs.logits.f_argmax(1, false)?;
        Ok(z.f_mul(&patterns.f_index_select(0, &predicted)?)?
            .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?)
    }
    fn check(&self, ctx: &Context, _params: &Params) -> Result<(), String> {
        patterns(ctx).map(|_| ()).map_err(|e| e.0)
    }
}
