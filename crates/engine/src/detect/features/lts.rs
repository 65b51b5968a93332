//! LTS, logit scaling (Djurisic et al. 2025): the head's logits scaled per image by
//! `S(z) = (Σᵢ max(0, zᵢ) / Σ_top-k max(0, zⱼ))²`, `k = max(1, D − round(D·(1 − p)))`, then the energy
//! `log Σ_c exp(S·ℓ_c)`. An image with no positive activation is not scaled (`S = 1`).

use tch::{Kind, Tensor};

use super::{features, head_logits};
use crate::detect::{Context, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params};
use crate::model::Outputs;

pub struct Lts;

/// How many of the `d` activations are the top fraction `p` (rounding half to even, as the
/// authors' code and pytorch-ood do with Python's `round`).
pub fn top_count(d: usize, p: f64) -> usize {
    let kept = (d as f64 * (1.0 - p)).round_ties_even() as i64;
    (d as i64 - kept).max(1) as usize
}

impl Detector for Lts {
    fn name(&self) -> &'static str {
        "lts"
    }
    fn title(&self) -> &'static str {
        "LTS"
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
        vec![
            ParamSpec {
                exclusive_min: true,
                ..ParamSpec::real("p", "p", "Top fraction p", 0.05, [0.0, 1.0])
            }
            .slider([0.01, 0.5], 0.0)
            .help("The fraction of the largest activations whose mass the total is compared with")
            .grid(&[0.01, 0.02, 0.05, 0.1, 0.2, 0.3]),
        ]
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        let z = features(outputs)?;
        let k = top_count(z.size()[1] as usize, params.get("p")?) as i64;
        let positive = z.f_relu()?;
        let total = positive.f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?;
        let (top, _) = positive.f_topk(k, 1, true, false)?;
        let top_mass = top.f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?;
        let scaled = top_mass.f_gt(0.0)?;
        let ratio = total
            .f_div(&top_mass.f_where_self(&scaled, &top_mass.f_ones_like()?)?)?
            .f_where_self(&scaled, &total.f_ones_like()?)?;
        let (_, logits) = head_logits(ctx, &z)?;
        Ok(logits
            .f_mul(&ratio.f_square()?.f_unsqueeze(1)?)?
            .f_logsumexp(&[1i64][..], false)?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_top_count_rounds_half_to_even_as_python() {
        // 64·0.95 = 60.8 → 61 kept → k = 3; 10·0.95 = 9.5 → 10 (half to even) → k = max(1, 0) = 1.
        assert_eq!(super::top_count(64, 0.05), 3);
        assert_eq!(super::top_count(10, 0.05), 1);
        assert_eq!(super::top_count(30, 0.05), 2); // 28.5 → 28
        assert_eq!(super::top_count(16, 1.0), 16);
    }
}
