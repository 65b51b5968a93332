//! Gram matrices (Sastry & Oore 2020): for each inner block b and pole p, the row sums of the
//! `p`-th order Gram matrix of the block's map, rooted (`model::blocks::gram_rows`), are compared
//! with the least and greatest values the fit's images of the predicted class gave; the deviation
//! `δ_b = Σ_{p≤P} Σ_j relu(lo − g)/|lo + 10⁻⁶| + relu(g − hi)/|hi + 10⁻⁶|` is scaled by the mean
//! deviation of held-out fit images, and the score is `−Σ_b δ_b / E[δ_b]` (higher: more like the
//! fit images).

use tch::{Kind, Tensor};

use crate::detect::{Context, DetectError, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params};
use crate::model::Outputs;
use crate::model::blocks::GRAM_POLES;
use crate::stats::gram::{GRAM_TENSORS, GramStats, deviation};

pub struct Gram;

/// The fit's Gram statistics, or why there are none.
fn gram_stats<'a>(ctx: &Context<'a>) -> DetectResult<&'a GramStats> {
    let fit = ctx.fit()?;
    fit.gram.as_ref().ok_or_else(|| {
        DetectError(format!(
            "the fit {} has no Gram bounds: it was made from a model without `blocks` (or by an older oodscope); refit with the model exported with --blocks",
            fit.info.path.display()
        ))
    })
}

impl Detector for Gram {
    fn name(&self) -> &'static str {
        "gram"
    }
    fn title(&self) -> &'static str {
        "Gram"
    }
    fn group(&self) -> Group {
        Group::Fit
    }
    fn needs(&self) -> Needs {
        Needs {
            blocks: true,
            gram_rows: true,
            fit: true,
            ..Needs::default()
        }
    }
    fn fit_tensors(&self) -> &'static [&'static str] {
        &GRAM_TENSORS
    }
    fn params(&self, _dims: &Dims) -> Vec<ParamSpec> {
        let most = GRAM_POLES as f64;
        vec![
            ParamSpec::integer("poles", "P", "Poles P", GRAM_POLES, [1, GRAM_POLES])
                .slider([1.0, most], 1.0)
                .help("Gram matrices of orders 1 to P are compared with the fit's bounds")
                .grid(&[1.0, 2.0, 3.0, 5.0, most]),
        ]
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        let stats = gram_stats(ctx)?;
        let rows = outputs
            .gram
            .as_ref()
            .ok_or_else(|| DetectError("the model returned no inner blocks (the card's `blocks`)".into()))?;
        let poles = params.get("poles")?.round().clamp(1.0, GRAM_POLES as f64) as i64;
        let p = GRAM_POLES as i64;
        let widths: Vec<i64> = stats.mins.iter().map(|m| m.size()[2]).collect();
        if rows.size()[1] != p * widths.iter().sum::<i64>() {
            return Err(DetectError(format!(
                "the model's blocks have {} Gram values per image, the fit's blocks (widths {widths:?}) {}",
                rows.size()[1],
                p * widths.iter().sum::<i64>()
            )));
        }
        let n = rows.size()[0];
        let rows = rows.f_to_kind(Kind::Double)?;
        let predicted = outputs.logits.f_argmax(1, false)?;
        let mut total = Tensor::f_zeros([n], (Kind::Double, rows.device()))?;
        let mut column = 0;
        for (b, ((lo, hi), &w)) in stats.mins.iter().zip(&stats.maxs).zip(&widths).enumerate() {
            // [n, P·W] → [P', n, W] for the first P' poles, against the predicted class's bounds.
            let g = rows
                .f_narrow(1, column, p * w)?
                .f_reshape([n, p, w])?
                .f_narrow(1, 0, poles)?
                .f_transpose(0, 1)?;
            let lo = lo.f_narrow(0, 0, poles)?.f_index_select(1, &predicted)?;
            let hi = hi.f_narrow(0, 0, poles)?.f_index_select(1, &predicted)?;
            let deviation = deviation(&g, &lo, &hi)?.f_sum_dim_intlist(&[0i64][..], false, Kind::Double)?;
            let expected = stats
                .expected
                .f_select(0, b as i64)?
                .f_narrow(0, 0, poles)?
                .f_sum(Kind::Double)?
                .f_double_value(&[])?;
            // No held-out deviation (too few fit images): the block is not rescaled.
            let scale = if expected > 0.0 { expected } else { 1.0 };
            total = total.f_add(&deviation.f_div_scalar(scale)?)?;
            column += p * w;
        }
        Ok(total.f_neg()?)
    }
    fn check(&self, ctx: &Context, _params: &Params) -> Result<(), String> {
        gram_stats(ctx).map(|_| ()).map_err(|e| e.0)
    }
}
