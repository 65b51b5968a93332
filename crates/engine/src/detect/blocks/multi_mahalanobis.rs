//! Multi-layer Mahalanobis (Lee et al. 2018's feature ensemble, without its input step): for each
//! inner block b, the spatial means `m_b` of its map, class means `μ_{b,c}` and a shared covariance
//! `Σ_b` from the fit; score `Σ_b max_c −(m_b − μ_{b,c})ᵀ pinv(Σ_b) (m_b − μ_{b,c})`, the blocks
//! weighted alike (pytorch-ood's default; the paper learns the weights on OOD validation data).

use tch::{Kind, Tensor};

use crate::detect::{Context, DetectError, DetectResult, Detector, Group, Needs, Params};
use crate::model::Outputs;
use crate::stats::Quadratic;
use crate::stats::blocks::BLOCK_TENSORS;

pub struct MultiMahalanobis;

/// The fit's per-block quadratic forms, or why there are none.
fn block_distances<'a>(ctx: &Context<'a>) -> DetectResult<&'a [Quadratic]> {
    let fit = ctx.fit()?;
    fit.blocks.as_deref().ok_or_else(|| {
        DetectError(format!(
            "the fit {} has no per-block statistics: it was made from a model without `blocks` (or by an older oodscope); refit with the model exported with --blocks",
            fit.info.path.display()
        ))
    })
}

impl Detector for MultiMahalanobis {
    fn name(&self) -> &'static str {
        "multi-mahalanobis"
    }
    fn title(&self) -> &'static str {
        "Multi-Mahalanobis"
    }
    fn group(&self) -> Group {
        Group::Fit
    }
    fn needs(&self) -> Needs {
        Needs {
            blocks: true,
            fit: true,
            ..Needs::default()
        }
    }
    fn fit_tensors(&self) -> &'static [&'static str] {
        &BLOCK_TENSORS
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, _params: &Params) -> DetectResult<Tensor> {
        let blocks = block_distances(ctx)?;
        if outputs.block_means.len() != blocks.len() {
            return Err(DetectError(format!(
                "the model returned {} blocks and the fit holds {}",
                outputs.block_means.len(),
                blocks.len()
            )));
        }
        let mut total: Option<Tensor> = None;
        for (means, quadratic) in outputs.block_means.iter().zip(blocks) {
            let nearest = quadratic
                .distances(&means.f_to_kind(Kind::Double)?)?
                .f_amin([1], false)?
                .f_neg()?;
            total = Some(match total {
                Some(t) => t.f_add(&nearest)?,
                None => nearest,
            });
        }
        total.ok_or_else(|| DetectError("the model returned no blocks".into()))
    }
    fn check(&self, ctx: &Context, _params: &Params) -> Result<(), String> {
        block_distances(ctx).map(|_| ()).map_err(|e| e.0)
    }
}
