//! ASH, activation shaping (Djurisic et al. 2023), three variants on the top-k entries of z with
//! `k = D − round(D·percentile/100)`: ASH-P keeps them and zeroes the rest; ASH-B sets them to
//! `s1/k` (`s1 = Σ z`); ASH-S keeps them scaled by `exp(s1/s2)` (`s2` = their sum). Score
//! `E(W·z′ + b)`.

use tch::{Kind, Tensor};

use super::features;
use crate::detect::{Context, DetectError, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params, ops};
use crate::model::Outputs;

/// Which ASH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Prune,
    Binarize,
    Scale,
}

pub struct Ash(pub Variant);

/// `k = n − round(n·percentile/100)`: the entries kept.
pub fn kept(n: usize, percentile: f64) -> usize {
    n.saturating_sub((n as f64 * percentile / 100.0).round() as usize)
}

/// The percentile parameter of ASH and SCALE.
pub fn percentile_param(default: f64) -> ParamSpec {
    ParamSpec::real("percentile", "p", "Percentile", default, [0.0, 100.0])
        .step(0.1)
        .help("Entries below this percentile of each feature vector are dropped (k = D − round(D·p/100) kept)")
        .grid(&[65.0, 70.0, 75.0, 80.0, 85.0, 90.0, 95.0])
}

/// `(z, mask of the top-k entries, s1 = Σ z, s2 = Σ kept)`, float64.
pub fn top_k(outputs: &Outputs, percentile: f64) -> DetectResult<(Tensor, Tensor, Tensor, Tensor, usize)> {
    let z = features(outputs)?;
    let n = z.size()[1] as usize;
    let k = kept(n, percentile);
    if k == 0 {
        return Err(DetectError(format!(
            "percentile {percentile} keeps no entry of the {n} features"
        )));
    }
    let (_, index) = z.f_topk(k as i64, 1, true, false)?;
    let mask = z.f_zeros_like()?.f_scatter_value(1, &index, 1.0)?;
    let s1 = z.f_sum_dim_intlist(&[1i64][..], true, Kind::Double)?;
    let s2 = z.f_mul(&mask)?.f_sum_dim_intlist(&[1i64][..], true, Kind::Double)?;
    Ok((z, mask, s1, s2, k))
}

impl Detector for Ash {
    fn name(&self) -> &'static str {
        match self.0 {
            Variant::Prune => "ash-p",
            Variant::Binarize => "ash-b",
            Variant::Scale => "ash-s",
        }
    }
    fn title(&self) -> &'static str {
        match self.0 {
            Variant::Prune => "ASH-P",
            Variant::Binarize => "ASH-B",
            Variant::Scale => "ASH-S",
        }
    }
    fn group(&self) -> Group {
        Group::Features
    }
    fn needs(&self) -> Needs {
        Needs {
            features: true,
            head: true,
            ..Needs::default()
        }
    }
    fn params(&self, _dims: &Dims) -> Vec<ParamSpec> {
        vec![percentile_param(90.0)]
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        let (z, mask, s1, s2, k) = top_k(outputs, params.get("percentile")?)?;
        let shaped = match self.0 {
            Variant::Prune => z.f_mul(&mask)?,
            Variant::Binarize => mask.f_mul(&s1.f_div_scalar(k as f64)?)?,
            Variant::Scale => z.f_mul(&mask)?.f_mul(&s1.f_div(&s2)?.f_exp()?)?,
        };
        ops::energy_of_head(&shaped, ctx)
    }
    fn check(&self, ctx: &Context, params: &Params) -> Result<(), String> {
        check_kept(ctx, params)
    }
}

/// The percentile must keep at least one of the model's D features (D from the head).
pub fn check_kept(ctx: &Context, params: &Params) -> Result<(), String> {
    let p = params.get("percentile")?;
    let d = ctx.head.map_or(0, |h| h.shape().1 as usize);
    if d > 0 && kept(d, p) == 0 {
        return Err(format!(
            "percentile {p} keeps none of the {d} features (k = D − round(D·p/100) must be at least 1)"
        ));
    }
    Ok(())
}
