//! Mahalanobis distances to several centres at once: `d_k(z) = (z − μ_k)ᵀ P (z − μ_k)`, expanded as
//! `zᵀPz − 2·zᵀ(Pμ_k) + μ_kᵀPμ_k` in float64 with `Pμ_k` and `μ_kᵀPμ_k` computed once at load (a
//! batch then costs one `D × D` and one `K × D` product per image, not `K` of the first).

use tch::{Kind, Tensor};

pub struct Quadratic {
    /// `P`, `[D, D]`, symmetric.
    pub precision: Tensor,
    /// `P μ_k` as rows, `[K, D]`.
    centres_p: Tensor,
    /// `μ_kᵀ P μ_k`, `[K]`.
    centres_q: Tensor,
}

impl Quadratic {
    /// `centres` `[K, D]` and the precision `P` `[D, D]`, float64.
    pub fn new(centres: &Tensor, precision: &Tensor) -> Result<Quadratic, tch::TchError> {
        let centres_p = centres.f_mm(precision)?;
        let centres_q = centres_p
            .f_mul(centres)?
            .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?;
        Ok(Quadratic {
            precision: precision.shallow_clone(),
            centres_p,
            centres_q,
        })
    }

    /// `[N, K]`: every row of `z` (float64 `[N, D]`) against every centre; differentiable in `z`.
    pub fn distances(&self, z: &Tensor) -> Result<Tensor, tch::TchError> {
        let zpz = z
            .f_mm(&self.precision)?
            .f_mul(z)?
            .f_sum_dim_intlist(&[1i64][..], true, Kind::Double)?;
        let cross = z.f_mm(&self.centres_p.f_transpose(0, 1)?)?;
        zpz.f_sub(&cross.f_mul_scalar(2.0)?)?
            .f_add(&self.centres_q.f_unsqueeze(0)?)
    }
}
