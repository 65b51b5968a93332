//! Residual (OpenOOD's `Residual`, the residual part of ViM, Wang et al. 2022): the norm of `z − u`
//! outside the principal subspace of the fit features (the eigenvectors after the `dim` largest);
//! score `−‖(z − u)ᵀR‖`, `u = −pinv(W)·b`. ViM without its energy term and its scale α.

use tch::Tensor;

use super::features;
use super::vim::{Vim, residual_norm};
use crate::detect::{Context, DetectError, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params};
use crate::model::Outputs;

pub struct Residual;

impl Detector for Residual {
    fn name(&self) -> &'static str {
        "residual"
    }
    fn title(&self) -> &'static str {
        "Residual"
    }
    fn group(&self) -> Group {
        Group::Fit
    }
    fn needs(&self) -> Needs {
        Vim.needs()
    }

    fn fit_tensors(&self) -> &'static [&'static str] {
        &["vim_u", "vim_eigenvectors", "vim_eigenvalues", "vim_alpha"]
    }

    fn params(&self, dims: &Dims) -> Vec<ParamSpec> {
        Vim.params(dims)
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        let fit = ctx.fit()?;
        let vim = fit.vim.as_ref().ok_or_else(|| DetectError(fit.lacks("ViM space")))?;
        Ok(residual_norm(&features(outputs)?, vim, params.count("dim")?)?.f_neg()?)
    }
    fn check(&self, ctx: &Context, params: &Params) -> Result<(), String> {
        Vim.check(ctx, params)
    }
}
