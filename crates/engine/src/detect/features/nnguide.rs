//! NNGuide, nearest neighbour guidance (Park et al. 2023): the energy `E(x) = logsumexp(W·z + b)`
//! times the guidance, the mean of the k largest inner products `⟨ẑ, E_i·ẑ_i⟩` between the
//! normalised features and the fit's bank of normalised features, each scaled by its image's
//! energy. The bank is KNN's (`knn_bank`), the energies the fit's `nnguide_energies`: one copy of
//! the fit features serves both methods.

use tch::Tensor;

use super::features;
use crate::detect::{Context, DetectError, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params, ops};
use crate::model::Outputs;
use crate::stats::{Bank, Fit};

pub struct NnGuide;

/// The fit's bank and its images' energies, or why it has none.
fn bank<'a>(ctx: &Context<'a>) -> DetectResult<(&'a Fit, &'a Bank, &'a Tensor)> {
    let fit = ctx.fit()?;
    let bank = fit.bank.as_ref().ok_or_else(|| DetectError(fit.lacks("KNN bank")))?;
    let energies = fit
        .nnguide_energies
        .as_ref()
        .ok_or_else(|| DetectError(fit.lacks_newer("energies of its bank images (NNGuide)", false)))?;
    Ok((fit, bank, energies))
}

impl Detector for NnGuide {
    fn name(&self) -> &'static str {
        "nnguide"
    }
    fn title(&self) -> &'static str {
        "NNGuide"
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
        &["knn_bank", "nnguide_energies"]
    }

    fn params(&self, dims: &Dims) -> Vec<ParamSpec> {
        let most = dims.bank.unwrap_or(1000).max(1) as f64;
        let grid: Vec<f64> = [1.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0]
            .into_iter()
            .filter(|&k| k <= most)
            .collect();
        vec![
            ParamSpec::integer("k", "k", "Neighbour k", 10, [1, 1_000_000])
                .slider([1.0, most.min(1000.0)], 1.0)
                .log_scale()
                .help("The guidance is the mean of the k largest energy-scaled similarities to fit features")
                .grid(&grid),
        ]
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        self.check(ctx, params)?;
        let (_, bank, energies) = bank(ctx)?;
        let z = features(outputs)?;
        let guidance = bank.mean_top_scaled(&z, params.count("k")?, energies)?;
        Ok(ops::energy_of_head(&z, ctx)?.f_mul(&guidance)?)
    }
    fn check(&self, ctx: &Context, params: &Params) -> Result<(), String> {
        let (fit, bank, _) = bank(ctx).map_err(|e| e.0)?;
        let k = params.count("k")?;
        if k > bank.len {
            return Err(format!(
                "k = {k}, but the fit has only {} images ({}): give a smaller k or a larger training folder",
                bank.len, fit.info.train_root
            ));
        }
        Ok(())
    }
}
