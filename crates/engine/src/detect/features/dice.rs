//! DICE, directed sparsification (Sun & Li 2022): contributions `V = W ⊙ z̄` (z̄ = the mean fit
//! feature); only the weights whose contribution is above the `percentile`-th percentile of V are
//! kept; score `E((W ⊙ M)·z + b)`.

use tch::{Device, Kind, Tensor};

use super::{features, mean_feature};
use crate::detect::{Context, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params};
use crate::model::Outputs;
use crate::stats::percentile::percentile_of_sorted;

pub struct Dice;

/// `W ⊙ M`: the head's weights where their contribution `W ⊙ z̄` is above its `percentile`-th
/// percentile (numpy's interpolation), float64.
fn masked_weights(ctx: &Context, percentile: f64) -> DetectResult<Tensor> {
    let mean = mean_feature(ctx)?;
    let w = ctx.head()?.weight.f_to_kind(Kind::Double)?;
    let contributions = w.f_mul(&mean.f_unsqueeze(0)?)?;
    let mut sorted = Vec::<f64>::try_from(contributions.f_to_device(Device::Cpu)?.f_contiguous()?.f_view([-1])?)?;
    sorted.sort_by(f64::total_cmp);
    let threshold = percentile_of_sorted(&sorted, percentile);
    Ok(w.f_mul(&contributions.f_gt(threshold)?.f_to_kind(Kind::Double)?)?)
}

impl Detector for Dice {
    fn name(&self) -> &'static str {
        "dice"
    }
    fn title(&self) -> &'static str {
        "DICE"
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
        &["global_mean"]
    }

    fn params(&self, _dims: &Dims) -> Vec<ParamSpec> {
        vec![
            ParamSpec::real("percentile", "p", "Sparsity percentile", 90.0, [0.0, 100.0])
                .help("Weights whose contribution W ⊙ z̄ is at or below this percentile are dropped")
                .grid(&[10.0, 30.0, 50.0, 70.0, 90.0]),
        ]
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        let fit = ctx.fit()?;
        let percentile = params.get("percentile")?;
        let mut cache = fit
            .dice_weights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let kept = match cache.get(&percentile.to_bits()) {
            Some(w) => w.shallow_clone(),
            None => {
                let w = masked_weights(ctx, percentile)?;
                cache.insert(percentile.to_bits(), w.shallow_clone());
                w
            }
        };
        drop(cache);
        let bias = ctx.head()?.bias.f_to_kind(Kind::Double)?;
        Ok(features(outputs)?
            .f_linear(&kept, Some(&bias))?
            .f_logsumexp([1], false)?)
    }
}
