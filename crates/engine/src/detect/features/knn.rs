//! Deep nearest neighbours (Sun et al. 2022): the bank holds every fit feature normalised,
//! `ẑ = z/‖z‖₂`; score `−‖ẑ − ẑ_(k)‖₂`, the distance to the k-th nearest bank vector, searched exactly.

use tch::Tensor;

use crate::detect::{Context, DetectError, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params};
use crate::model::Outputs;

pub struct Knn;

impl Detector for Knn {
    fn name(&self) -> &'static str {
        "knn"
    }
    fn title(&self) -> &'static str {
        "KNN"
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
        &["knn_bank"]
    }

    fn params(&self, dims: &Dims) -> Vec<ParamSpec> {
        let most = dims.bank.unwrap_or(1000).max(1) as f64;
        let grid: Vec<f64> = [1.0, 10.0, 50.0, 100.0, 200.0, 500.0, 1000.0]
            .into_iter()
            .filter(|&k| k <= most)
            .collect();
        vec![
            ParamSpec::integer("k", "k", "Neighbour k", 50, [1, 1_000_000])
                .slider([1.0, most.min(1000.0)], 1.0)
                .log_scale()
                .help("The distance to the k-th nearest fit feature is the score")
                .grid(&grid),
        ]
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        let fit = ctx.fit()?;
        let bank = fit.bank.as_ref().ok_or_else(|| DetectError(fit.lacks("KNN bank")))?;
        let z = outputs
            .features
            .as_ref()
            .ok_or_else(|| DetectError("the model returned no features".into()))?;
        Ok(bank.kth_distance(z, params.count("k")?)?.f_neg()?)
    }
    fn check(&self, ctx: &Context, params: &Params) -> Result<(), String> {
        let fit = ctx.fit().map_err(|e| e.0)?;
        let bank = fit.bank.as_ref().ok_or_else(|| fit.lacks("KNN bank"))?;
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
