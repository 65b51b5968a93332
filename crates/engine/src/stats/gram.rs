//! A fit's Gram statistics, read back: per inner block, pole and class the least and greatest Gram
//! row sums of the fit's bounded images (`gram_mins`, `gram_maxs`: each block's `[P, C, W_b]`,
//! flattened one after the other) and the mean deviation of its held-out images per block and pole
//! (`gram_expected`, `[L, P]`), split here by the header's `block_widths`; and the deviation from
//! bounds that both the fit (held-out images) and the detector measure.

use tch::{Kind, Tensor};

use crate::model::blocks::GRAM_POLES;

/// The tensors of a fit that hold Gram's statistics (a saved detector keeps them all).
pub const GRAM_TENSORS: [&str; 4] = ["block_widths", "gram_mins", "gram_maxs", "gram_expected"];

/// Gram's statistics, per block.
pub struct GramStats {
    /// `[P, C, W_b]` float64 bounds per block, in card order.
    pub mins: Vec<Tensor>,
    pub maxs: Vec<Tensor>,
    /// `[L, P]`: the held-out fit images' mean deviation per block and pole (0 without any).
    pub expected: Tensor,
}

/// The stored tensors split by `widths`, for `classes` classes.
pub fn split(
    widths: &[usize],
    classes: usize,
    mins: &Tensor,
    maxs: &Tensor,
    expected: &Tensor,
) -> Result<GramStats, tch::TchError> {
    let (p, c) = (GRAM_POLES as i64, classes as i64);
    let (mut out_min, mut out_max) = (Vec::new(), Vec::new());
    let mut offset = 0;
    for &w in widths {
        let len = p * c * w as i64;
        out_min.push(mins.f_narrow(0, offset, len)?.f_reshape([p, c, w as i64])?);
        out_max.push(maxs.f_narrow(0, offset, len)?.f_reshape([p, c, w as i64])?);
        offset += len;
    }
    Ok(GramStats {
        mins: out_min,
        maxs: out_max,
        expected: expected.f_reshape([widths.len() as i64, p])?,
    })
}

/// The stored shapes against those `widths` and `classes` imply; the reason in one line otherwise.
pub fn check_shapes(
    widths: &[usize],
    classes: usize,
    mins: &[usize],
    maxs: &[usize],
    expected: &[usize],
) -> Result<(), String> {
    let bounds = GRAM_POLES * classes * widths.iter().sum::<usize>();
    let layers = widths.len() * GRAM_POLES;
    if mins != [bounds] || maxs != [bounds] || expected != [layers] {
        return Err(format!(
            "its Gram tensors have shapes {mins:?}, {maxs:?} and {expected:?}; blocks of widths {widths:?} and {classes} classes imply [{bounds}], [{bounds}] and [{layers}]"
        ));
    }
    Ok(())
}

/// `Σ_j relu(lo_j − g_j)/|lo_j + 10⁻⁶| + relu(g_j − hi_j)/|hi_j + 10⁻⁶|` over the last dimension:
/// how far rows `g` fall outside `[lo, hi]`, relative to the bounds (pytorch-ood's `_deviation`).
pub fn deviation(g: &Tensor, lo: &Tensor, hi: &Tensor) -> Result<Tensor, tch::TchError> {
    let below = lo.f_sub(g)?.f_relu()?.f_div(&lo.f_add_scalar(1e-6)?.f_abs()?)?;
    let above = g.f_sub(hi)?.f_relu()?.f_div(&hi.f_add_scalar(1e-6)?.f_abs()?)?;
    below
        .f_add(&above)?
        .f_sum_dim_intlist(&[-1i64][..], false, Kind::Double)
}
