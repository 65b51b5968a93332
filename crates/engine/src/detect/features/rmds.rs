//! Relative Mahalanobis (Ren et al. 2021): each class's distance minus the distance `d_0` to the
//! mean of all fit features under their own covariance; score `max_c −(d_c(z) − d_0(z))`.

use tch::Tensor;

use super::{class_distances, features};
use crate::detect::{Context, DetectError, DetectResult, Detector, Group, Needs, Params};
use crate::model::Outputs;

pub struct RelativeMahalanobis;

impl Detector for RelativeMahalanobis {
    fn name(&self) -> &'static str {
        "rmds"
    }
    fn title(&self) -> &'static str {
        "Relative Mahalanobis"
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
        &["class_means", "shared_pinv", "global_mean", "global_pinv"]
    }

    fn score(&self, outputs: &Outputs, ctx: &Context, _params: &Params) -> DetectResult<Tensor> {
        let (fit, classes) = class_distances(ctx)?;
        let global = fit
            .global
            .as_ref()
            .ok_or_else(|| DetectError(fit.lacks("global covariance")))?;
        let z = features(outputs)?;
        let d0 = global.distances(&z)?;
        Ok(classes.distances(&z)?.f_sub(&d0)?.f_amin([1], false)?.f_neg()?)
    }
    fn check(&self, ctx: &Context, _params: &Params) -> Result<(), String> {
        class_distances(ctx).map(|_| ()).map_err(|e| e.0)
    }
}
