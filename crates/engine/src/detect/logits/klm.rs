//! KL matching (Hendrycks et al. 2022): templates `d_k` = the mean softmax of the fit images
//! predicted as class k; score `−min_k KL(p ‖ d_k)` over the classes some fit image was predicted as.

use tch::{Kind, Tensor};

use crate::detect::{Context, DetectResult, Detector, Group, Needs, Params};
use crate::model::Outputs;

pub struct KlMatching;

impl Detector for KlMatching {
    fn name(&self) -> &'static str {
        "klm"
    }
    fn title(&self) -> &'static str {
        "KL matching"
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
    fn score(&self, outputs: &Outputs, ctx: &Context, _params: &Params) -> DetectResult<Tensor> {
        let templates = &ctx.fit()?.klm_templates;
        let log_p = outputs.logits.f_to_kind(Kind::Double)?.f_log_softmax(1, Kind::Double)?;
        let p = log_p.f_exp()?;
        // KL(p ‖ d_k) = Σ p log p − Σ p log d_k, for every template k at once.
        let self_term = p.f_mul(&log_p)?.f_sum_dim_intlist(&[1i64][..], true, Kind::Double)?;
        let cross = p.f_mm(&templates.f_log()?.f_transpose(0, 1)?)?;
        Ok(self_term.f_sub(&cross)?.f_amin([1], false)?.f_neg()?)
    }
}
