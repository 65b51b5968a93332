//! ViM, virtual-logit matching (Wang et al. 2022): the residual of `z − u` outside the principal
//! subspace of the fit features (the eigenvectors after the `dim` largest), scaled by α to the mean
//! largest logit; score `E(ℓ) − α·‖(z − u)ᵀR‖`, `u = −pinv(W)·b`.

use tch::{Kind, Tensor};

use super::features;
use crate::detect::{Context, DetectError, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params};
use crate::model::Outputs;
use crate::stats::Vim as VimSpace;

pub struct Vim;

/// ViM's default: 1000 for D ≥ 2048, else ⌊D/2⌋.
pub fn default_dim(d: usize) -> usize {
    if d >= 2048 { 1000 } else { (d / 2).max(1) }
}

impl Detector for Vim {
    fn name(&self) -> &'static str {
        "vim"
    }
    fn title(&self) -> &'static str {
        "ViM"
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
        &["vim_u", "vim_eigenvectors", "vim_eigenvalues", "vim_alpha"]
    }

    fn params(&self, dims: &Dims) -> Vec<ParamSpec> {
        let d = dims.features.unwrap_or(2).max(2);
        let grid: Vec<f64> = [d / 8, d / 4, d / 2, 3 * d / 4, 256, 512, 1000]
            .into_iter()
            .filter(|&v| v >= 1 && v < d)
            .map(|v| v as f64)
            .collect();
        vec![
            ParamSpec::integer("dim", "dim", "Principal dimensions", default_dim(d), [1, d - 1])
                .help("Eigenvectors of the fit features kept as the principal subspace (must be below D)")
                .grid(&grid),
        ]
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        let fit = ctx.fit()?;
        let vim = fit.vim.as_ref().ok_or_else(|| DetectError(fit.lacks("ViM space")))?;
        let dim = params.count("dim")?;
        let residual = residual_norm(&features(outputs)?, vim, dim)?;
        let energy = outputs.logits.f_to_kind(Kind::Double)?.f_logsumexp([1], false)?;
        Ok(energy.f_sub(&residual.f_mul_scalar(vim.alpha[dim])?)?)
    }
    fn check(&self, ctx: &Context, _params: &Params) -> Result<(), String> {
        let fit = ctx.fit().map_err(|e| e.0)?;
        fit.vim.as_ref().map(|_| ()).ok_or_else(|| fit.lacks("ViM space"))
    }
}

/// `‖(z − u)ᵀR‖₂` per row of the features `z`: the part of `z − u` outside the principal subspace of
/// the `dim` largest eigenvectors (ViM's residual, and the `residual` method's score negated).
pub fn residual_norm(z: &Tensor, space: &VimSpace, dim: usize) -> DetectResult<Tensor> {
    let d = space.alpha.len();
    if dim >= d {
        return Err(DetectError(format!("dim = {dim} must be below D = {d}")));
    }
    Ok(z.f_sub(&space.origin)?
        .f_mm(&space.eigenvectors.f_narrow(1, dim as i64, (d - dim) as i64)?)?
        .f_norm_scalaropt_dim(2.0, [1i64], false)?)
}
