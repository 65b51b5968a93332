//! A fit's per-block statistics (multi-mahalanobis), read back: the file keeps each inner block's
//! class means side by side (`block_class_means` `[C, Σ W_b]`), the pseudo-inverses of their shared
//! covariances one after the other (`block_shared_pinvs` `[Σ W_b²]`) and the widths
//! (`block_widths`); here they become one [`Quadratic`] per block, over the classes with images.

use tch::Tensor;

use super::Quadratic;

/// The tensors of a fit that hold its per-block statistics (a saved detector keeps them all).
pub const BLOCK_TENSORS: [&str; 3] = ["block_widths", "block_class_means", "block_shared_pinvs"];

/// One [`Quadratic`] per block, from the class means of the present classes (`[K, Σ W_b]`) and the
/// flattened pseudo-inverses, split by `widths`.
pub fn quadratics(widths: &[usize], class_means: &Tensor, pinvs: &Tensor) -> Result<Vec<Quadratic>, tch::TchError> {
    let (mut column, mut offset) = (0i64, 0i64);
    let mut out = Vec::with_capacity(widths.len());
    for &w in widths {
        let w = w as i64;
        let means = class_means.f_narrow(1, column, w)?.f_contiguous()?;
        let precision = pinvs.f_narrow(0, offset, w * w)?.f_reshape([w, w])?;
        out.push(Quadratic::new(&means, &precision)?);
        column += w;
        offset += w * w;
    }
    Ok(out)
}

/// The shapes of the class means and flattened pseudo-inverses against those `widths` imply, for
/// `c` classes; the reason in one line when they disagree.
pub fn check_shapes(widths: &[usize], means: &[usize], pinvs: &[usize], c: usize) -> Result<(), String> {
    let total: usize = widths.iter().sum();
    let squares: usize = widths.iter().map(|w| w * w).sum();
    if means != [c, total] || pinvs != [squares] {
        return Err(format!(
            "its per-block tensors have shapes {means:?} and {pinvs:?}; blocks of widths {widths:?} imply [{c}, {total}] and [{squares}]"
        ));
    }
    Ok(())
}
