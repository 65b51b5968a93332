//! Mahalanobis (Lee et al. 2018): class means `μ_c` and the shared covariance Σ of the fit features;
//! score `max_c −(z − μ_c)ᵀ pinv(Σ) (z − μ_c)`. With ε > 0, the input first steps against the
//! gradient of the nearest class's distance: `x̃ = x − ε·sign(∇ₓ d_ĉ(z(x)))`.

use tch::Tensor;

use super::{class_distances, features};
use crate::detect::{Context, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params};
use crate::model::Outputs;

pub struct Mahalanobis;

impl Detector for Mahalanobis {
    fn name(&self) -> &'static str {
        "mahalanobis"
    }
    fn title(&self) -> &'static str {
        "Mahalanobis"
    }
    fn group(&self) -> Group {
        Group::Fit
    }
    fn needs(&self) -> Needs {
        Needs {
            features: true,
            fit: true,
            gradient: true,
            ..Needs::default()
        }
    }

    fn fit_tensors(&self) -> &'static [&'static str] {
        &["class_means", "shared_pinv"]
    }

    fn params(&self, _dims: &Dims) -> Vec<ParamSpec> {
        vec![ParamSpec::epsilon(0.0).grid(&[0.0, 0.0005, 0.001, 0.0014, 0.002, 0.005])]
    }
    /// `Σ_i d_ĉ(z_i)` with ĉ the nearest class (chosen without the gradient).
    fn step_losses(&self, outputs: &Outputs, ctx: &Context, _params: &Params) -> DetectResult<Vec<Tensor>> {
        let (_, quadratic) = class_distances(ctx)?;
        let d = quadratic.distances(&features(outputs)?)?;
        let nearest = d.f_detach()?.f_argmin(1, true)?;
        Ok(vec![d.f_gather(1, &nearest, false)?.f_sum(tch::Kind::Double)?])
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, _params: &Params) -> DetectResult<Tensor> {
        let (_, quadratic) = class_distances(ctx)?;
        Ok(quadratic.distances(&features(outputs)?)?.f_amin([1], false)?.f_neg()?)
    }
    fn check(&self, ctx: &Context, _params: &Params) -> Result<(), String> {
        class_distances(ctx).map(|_| ()).map_err(|e| e.0)
    }
}
