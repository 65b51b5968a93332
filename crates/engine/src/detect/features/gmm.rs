//! Class-conditional Gaussian mixture, as pytorch-ood's `GMM`: each class's mean μ_c, covariance Σ_c
//! (divided by its n_c) and weight π_c = n_c/N from the fit; score
//! `log Σ_c π_c N(z | μ_c, Σ_c + reg·I)`, the mixture's log-likelihood (pytorch-ood's outlier score
//! is its negation). The covariances are an opt-in fit statistic (`fit --class-covariances`); the
//! Cholesky factors of `Σ_c + reg·I` are made once per `reg` (`crate::stats::gaussians`).

use tch::Tensor;

use super::features;
use crate::detect::{Context, DetectError, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params};
use crate::model::Outputs;
use crate::stats::gaussians::{CLASS_COVARIANCES, ClassGaussians, check_size};

pub struct Gmm;

/// The fit's Gaussians at `reg` (factored on first use), or why there are none.
fn gaussians(ctx: &Context, reg: f64) -> DetectResult<ClassGaussians> {
    let fit = ctx.fit()?;
    let (Some(means), Some(covariances)) = (&fit.class_means, &fit.class_covariances) else {
        let Some(d) = fit.info.feature_width else {
            return Err(DetectError(fit.lacks("per-class covariances")));
        };
        let path = fit.info.path.display();
        // Too many to keep: say so, rather than ask for a refit that would be refused.
        check_size(fit.info.classes.len(), d)
            .map_err(|m| DetectError(format!("the fit {path} has no per-class covariances: {m}")))?;
        return Err(DetectError(format!(
            "the fit {path} has no per-class covariances (fits keep them only when asked): refit with `oodscope fit --class-covariances` (in Python Fit.from_outputs(..., class_covariances=True)), or give --train"
        )));
    };
    let mut cache = fit
        .class_gaussians
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(g) = cache.get(&reg.to_bits()) {
        return Ok(g.shallow_clone());
    }
    let counts: Vec<u64> = fit.present.iter().map(|&c| fit.info.counts[c]).collect();
    let names: Vec<String> = fit.present.iter().map(|&c| fit.info.classes[c].clone()).collect();
    let made = ClassGaussians::new(means, covariances, &counts, &names, reg)?;
    cache.insert(reg.to_bits(), made.shallow_clone());
    Ok(made)
}

impl Detector for Gmm {
    fn name(&self) -> &'static str {
        "gmm"
    }
    fn title(&self) -> &'static str {
        "Gaussian mixture"
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
        &["class_means", CLASS_COVARIANCES]
    }

    fn params(&self, _dims: &Dims) -> Vec<ParamSpec> {
        vec![
            ParamSpec::real("reg", "reg", "Ridge reg", 1e-6, [0.0, f64::INFINITY])
                .help("Added to each class covariance's diagonal: Σ_c + reg·I")
                .positive([1e-8, 1.0])
                .log_scale()
                .grid(&[1e-8, 1e-6, 1e-4, 1e-2, 1.0]),
        ]
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        let g = gaussians(ctx, params.get("reg")?)?;
        Ok(g.log_likelihood(&features(outputs)?)?)
    }
    fn check(&self, ctx: &Context, params: &Params) -> Result<(), String> {
        gaussians(ctx, params.get("reg")?).map(|_| ()).map_err(|e| e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reg_is_positive_with_a_grid_of_decades() {
        let specs = Gmm.params(&Dims::default());
        assert_eq!(specs.len(), 1);
        let reg = &specs[0];
        assert_eq!((reg.name, reg.default), ("reg", 1e-6));
        assert!(reg.check(0.0).unwrap_err().contains("reg must be positive"));
        assert!(reg.check(1e-3).is_ok());
        assert_eq!(reg.grid, [1e-8, 1e-6, 1e-4, 1e-2, 1.0]);
    }
}
