//! Temperature scaling's fit (Guo et al. 2017): the T that minimises the negative log-likelihood
//! of the labelled fit images' logits, `NLL(β) = (1/N) Σ_i [logsumexp(β·ℓ_i) − β·ℓ_{i,y_i}]` with
//! `β = 1/T`, found from sums that stream and merge like the other moments.
//!
//! The NLL is taken over the listing's first [`image_budget`] labelled images (all of them up to
//! 10⁶ logit values: 1000 images of 1000 classes), since every image costs a softmax per grid point.
//!
//! NLL is convex in β, but no finite set of sums gives it at every β. So each batch adds, at a
//! fixed grid of β (log-spaced, [`GRID`] points from 1/[`T_MAX`] to 1/[`T_MIN`]), the NLL and its
//! first and second derivatives (`E_p[ℓ] − ℓ_y` and `Var_p[ℓ]`, `p = softmax(β·ℓ)`). The minimum
//! lies where the derivative changes sign; between those two grid points the derivative is
//! interpolated by the cubic Hermite polynomial of its values and slopes there (error of order
//! h⁴, h ≈ 2.3% of β: about 1e-7 relative on T), and its root is found by bisection.

use tch::{Device, Kind, Tensor};

/// The grid's bounds on T and its number of points.
pub const T_MIN: f64 = 0.01;
pub const T_MAX: f64 = 100.0;
pub const GRID: usize = 401;
/// The logit values (images × classes) whose NLL grid a fit computes: each costs [`GRID`] softmaxes,
/// so a fit of ImageNet's 1000 classes takes its first 1000 labelled images, one of 10 classes its
/// first 100 000.
pub const LOGIT_BUDGET: u64 = 1_000_000;

/// How many of the listing's first images the temperature is fitted on, for `classes` classes.
pub fn image_budget(classes: usize) -> u64 {
    (LOGIT_BUDGET / classes.max(1) as u64).max(1)
}

/// Grid points per chunk of the per-batch computation (a `[chunk, n, C]` float64 tensor).
const CHUNK: i64 = 16;

/// The grid of β = 1/T, ascending.
pub fn betas() -> Vec<f64> {
    let (lo, hi) = ((1.0 / T_MAX).ln(), (1.0 / T_MIN).ln());
    (0..GRID)
        .map(|j| (lo + (hi - lo) * j as f64 / (GRID - 1) as f64).exp())
        .collect()
}

/// A batch's sums `[3, GRID]`: rows NLL, its derivative and its second derivative in β, each summed
/// over the batch's images. `logits` `[n, C]`, `labels` `[n]` (int64, on the logits' device).
pub fn batch_sums(logits: &Tensor, labels: &Tensor) -> Result<Tensor, tch::TchError> {
    let device = logits.device();
    let l = logits.f_to_kind(Kind::Double)?;
    let target = l.f_gather(1, &labels.f_unsqueeze(1)?, false)?.f_squeeze_dim(1)?; // [n]
    let all = Tensor::from_slice(&betas()).f_to_device(device)?;
    let mut rows: [Vec<Tensor>; 3] = Default::default();
    let mut start = 0;
    while start < GRID as i64 {
        let len = CHUNK.min(GRID as i64 - start);
        let beta = all.f_narrow(0, start, len)?;
        let scaled = l.f_unsqueeze(0)?.f_mul(&beta.f_view([len, 1, 1])?)?; // [g, n, C]
        let lse = scaled.f_logsumexp([2i64], false)?; // [g, n]
        let p = scaled.f_softmax(2, Kind::Double)?;
        let mean = p
            .f_mul(&l.f_unsqueeze(0)?)?
            .f_sum_dim_intlist(&[2i64][..], false, Kind::Double)?;
        let var = l
            .f_unsqueeze(0)?
            .f_sub(&mean.f_unsqueeze(2)?)?
            .f_square()?
            .f_mul(&p)?
            .f_sum_dim_intlist(&[2i64][..], false, Kind::Double)?;
        let value = lse.f_sub(&beta.f_unsqueeze(1)?.f_mul(&target.f_unsqueeze(0)?)?)?;
        let slope = mean.f_sub(&target.f_unsqueeze(0)?)?;
        for (row, t) in rows.iter_mut().zip([value, slope, var]) {
            row.push(t.f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?);
        }
        start += len;
    }
    let rows: Vec<Tensor> = rows.iter().map(|r| Tensor::f_cat(r, 0)).collect::<Result<_, _>>()?;
    Tensor::f_stack(&rows, 0)
}

/// The fitted T from the summed grid `[3, GRID]` (NLL, slope, curvature; any positive scale): T_MAX
/// or T_MIN where the slope does not change sign inside the grid.
pub fn fitted(sums: &Tensor) -> Result<f64, tch::TchError> {
    let rows = Vec::<f64>::try_from(
        sums.f_to_device(Device::Cpu)?
            .f_to_kind(Kind::Double)?
            .f_reshape([-1])?,
    )?;
    let (slope, curvature) = (&rows[GRID..2 * GRID], &rows[2 * GRID..]);
    let beta = betas();
    let Some(j) = slope.iter().position(|&g| g >= 0.0) else {
        return Ok(T_MIN);
    };
    if j == 0 {
        return Ok(T_MAX);
    }
    // The cubic Hermite interpolant of the slope on [β_{j−1}, β_j], t ∈ [0, 1].
    let h = beta[j] - beta[j - 1];
    let (g0, g1, m0, m1) = (slope[j - 1], slope[j], curvature[j - 1] * h, curvature[j] * h);
    let at = |t: f64| {
        let (t2, t3) = (t * t, t * t * t);
        (2.0 * t3 - 3.0 * t2 + 1.0) * g0 + (t3 - 2.0 * t2 + t) * m0 + (-2.0 * t3 + 3.0 * t2) * g1 + (t3 - t2) * m1
    };
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if at(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(1.0 / (beta[j - 1] + 0.5 * (lo + hi) * h))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The T found from the grid equals the minimiser of the NLL found by Newton's method on the
    /// logits themselves, to 1e-7 relative.
    #[test]
    fn the_grid_finds_the_minimum_of_the_nll() {
        tch::manual_seed(3);
        let (n, c) = (300i64, 7i64);
        let labels = Tensor::randint(c, [n], (Kind::Int64, Device::Cpu));
        let logits = Tensor::randn([n, c], (Kind::Double, Device::Cpu))
            .f_mul_scalar(2.0)
            .unwrap()
            + labels.one_hot(c).to_kind(Kind::Double) * 3.0;
        let t = fitted(&batch_sums(&logits, &labels).unwrap()).unwrap();
        // Newton on β with the exact derivatives.
        let target = logits.gather(1, &labels.unsqueeze(1), false).squeeze_dim(1);
        let mut beta = 1.0f64;
        for _ in 0..50 {
            let s = &logits * beta;
            let p = s.softmax(1, Kind::Double);
            let mean = (&p * &logits).sum_dim_intlist(&[1i64][..], false, Kind::Double);
            let var = ((&logits - mean.unsqueeze(1)).square() * &p).sum_dim_intlist(&[1i64][..], false, Kind::Double);
            let g = (mean - &target).mean(Kind::Double).double_value(&[]);
            beta -= g / var.mean(Kind::Double).double_value(&[]);
        }
        assert!((t - 1.0 / beta).abs() <= 1e-7 * t, "{t} vs {}", 1.0 / beta);
        assert!(t > 0.2 && t < 5.0, "{t}");
    }
}
