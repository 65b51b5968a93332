//! GEN, generalised entropy (Liu et al. 2023): `−Σ_{j ∈ top-M of p} p_j^γ (1 − p_j)^γ`.
//!
//! `1 − p_j` is the sum of the other probabilities; for the most probable class it is summed
//! directly (subtracting from 1 would lose it when the prediction is near certain).

use tch::{Kind, Tensor};

use crate::detect::{Context, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params};
use crate::model::Outputs;

pub struct Gen;

impl Detector for Gen {
    fn name(&self) -> &'static str {
        "gen"
    }
    fn title(&self) -> &'static str {
        "GEN"
    }
    fn group(&self) -> Group {
        Group::Logits
    }
    fn needs(&self) -> Needs {
        Needs::default()
    }
    fn params(&self, dims: &Dims) -> Vec<ParamSpec> {
        let classes = dims.classes.max(1);
        vec![
            ParamSpec::real("gamma", "γ", "Exponent γ", 0.1, [0.0, 10.0])
                .positive([0.01, 1.0])
                .log_scale()
                .help("p^γ (1 − p)^γ summed over the top M classes")
                .grid(&[0.01, 0.05, 0.1, 0.5, 1.0]),
            ParamSpec::integer("m", "M", "Top classes M", 100, [1, 100_000])
                .slider([1.0, classes as f64], 1.0)
                .help("Classes summed over (capped at the number of classes)")
                .grid(&[10.0, 50.0, 100.0]),
        ]
    }
    fn score(&self, outputs: &Outputs, _ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        let logits = outputs.logits.f_to_kind(Kind::Double)?;
        let classes = logits.size()[1];
        let m = (params.count("m")? as i64).clamp(1, classes);
        let gamma = params.get("gamma")?;
        // Shifted by the largest logit: e_i = exp(ℓ_i − max ℓ) ≤ 1, S = Σ e_i ≥ 1, p_i = e_i / S.
        let (max, argmax) = logits.f_max_dim(1, true)?;
        let e = logits.f_sub(&max)?.f_exp()?;
        let total = e.f_sum_dim_intlist(&[1i64][..], true, Kind::Double)?;
        let (top_e, _) = e.f_topk(m, 1, true, true)?;
        // 1 − p_j = (S − e_j)/S; for the top class (column 0) S − 1 would cancel, so its others
        // are summed directly.
        let others_of_top = e
            .f_scatter_value(1, &argmax, 0.0)?
            .f_sum_dim_intlist(&[1i64][..], true, Kind::Double)?;
        let others_of_rest = total.f_sub(&top_e.f_narrow(1, 1, m - 1)?)?;
        let others = Tensor::f_cat(&[&others_of_top, &others_of_rest], 1)?;
        let p = top_e.f_div(&total)?;
        let q = others.f_div(&total)?;
        Ok(p.f_pow_tensor_scalar(gamma)?
            .f_mul(&q.f_pow_tensor_scalar(gamma)?)?
            .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?
            .f_neg()?)
    }
}
