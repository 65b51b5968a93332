//! pNML, the single-layer predictive normalised maximum likelihood regret (Bibas et al. 2021), as
//! pytorch-ood's `PNML` computes it: with `ẑ = z/‖z‖`, the fit's projector `P = pinv(XᵀX)` of the
//! normalised fit features and the model's class probabilities p, the regret
//! `Γ = log Σ_i p_i / (p_i + (1 − p_i)·p_i^g) / log C`, `g = ẑᵀPẑ / (1 + ẑᵀPẑ)`; score `−Γ`.
//!
//! Each term is computed as `1 / (1 + (1 − p_i)·p_i^(g−1))` from `log p_i`: its limits at `p_i = 0`
//! (0) and 1 (1) come out exactly, where the quotient itself is 0/0 at a probability that
//! underflows (pytorch-ood clamps p to [1e-12, 1 − 1e-12] instead; the scores differ below 1e-12).

use tch::{Kind, Tensor};

use super::features;
use crate::detect::{Context, DetectError, DetectResult, Detector, Group, Needs, Params};
use crate::model::Outputs;
use crate::stats::bank::normalise;

pub struct Pnml;

/// The fit's projector `pinv(XᵀX)`, or why it has none.
fn projector<'a>(ctx: &Context<'a>) -> DetectResult<&'a Tensor> {
    let fit = ctx.fit()?;
    fit.pnml_gram_pinv
        .as_ref()
        .ok_or_else(|| DetectError(fit.lacks_newer("pNML projector", false)))
}

impl Detector for Pnml {
    fn name(&self) -> &'static str {
        "pnml"
    }
    fn title(&self) -> &'static str {
        "pNML"
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
        &["pnml_gram_pinv"]
    }

    fn score(&self, outputs: &Outputs, ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        self.check(ctx, params)?;
        let unit = normalise(&features(outputs)?)?;
        let projected =
            unit.f_mm(projector(ctx)?)?
                .f_mul(&unit)?
                .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?;
        let g = projected.f_div(&projected.f_add_scalar(1.0)?)?.f_unsqueeze(1)?; // [n, 1]
        let log_p = outputs.logits.f_to_kind(Kind::Double)?.f_log_softmax(1, Kind::Double)?;
        // term_i = 1 / (1 + exp((g − 1)·log p_i + log(1 − p_i))) = sigmoid(−that exponent).
        let exponent = g
            .f_sub_scalar(1.0)?
            .f_mul(&log_p)?
            .f_add(&log_p.f_exp()?.f_neg()?.f_log1p()?)?;
        let total = exponent
            .f_neg()?
            .f_sigmoid()?
            .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?;
        let classes = log_p.size()[1] as f64;
        Ok(total.f_log()?.f_div_scalar(-classes.ln())?)
    }
    fn check(&self, ctx: &Context, _params: &Params) -> Result<(), String> {
        projector(ctx).map_err(|e| e.0)?;
        if ctx.card.classes.len() < 2 {
            return Err("pNML's regret is divided by log C: it needs at least two classes".into());
        }
        Ok(())
    }
}
