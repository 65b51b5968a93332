//! Histograms of scores: equal-width bin counts and a common range for several score sets.

/// Counts `values` into `bins` equal-width bins over `[lo, hi]`.
///
/// Values outside the range are clamped into the end bins, `hi` itself lands in the last bin,
/// NaN values are ignored. Returns an empty vector when `bins` is 0; when the range is empty or
/// not finite (`!(lo < hi)`, or an infinite bound) every non-NaN value lands in the first bin.
pub fn histogram(values: &[f32], lo: f32, hi: f32, bins: usize) -> Vec<u32> {
    let mut counts = vec![0_u32; bins];
    if bins == 0 {
        return counts;
    }
    let usable_range = lo < hi && lo.is_finite() && hi.is_finite();
    for &value in values.iter().filter(|value| !value.is_nan()) {
        let bin = if usable_range {
            bin_index(value, lo, hi, bins)
        } else {
            0
        };
        counts[bin] = counts[bin].saturating_add(1);
    }
    counts
}

/// The bin of a non-NaN `value` in `bins` bins over the finite range `lo < hi`, clamped to the ends.
fn bin_index(value: f32, lo: f32, hi: f32, bins: usize) -> usize {
    let position = (f64::from(value) - f64::from(lo)) / (f64::from(hi) - f64::from(lo)) * bins as f64;
    // `as` saturates: negative and -inf positions become 0, +inf becomes usize::MAX.
    (position.floor() as usize).min(bins - 1)
}

/// A common `(lo, hi)` histogram range for several score sets: the minimum and maximum of their
/// finite values (NaN and ±inf are skipped). `None` when there is no finite value at all.
///
/// When every finite value is the same, the range is widened around it by a small amount
/// (0.1% of its magnitude, at least 0.001) so that the bins have a width.
pub fn shared_range(sets: &[&[f32]]) -> Option<(f32, f32)> {
    let mut finite = sets
        .iter()
        .flat_map(|set| set.iter().copied())
        .filter(|value| value.is_finite());
    let first = finite.next()?;
    let (lo, hi) = finite.fold((first, first), |(lo, hi), value| (lo.min(value), hi.max(value)));
    if lo < hi { Some((lo, hi)) } else { Some(widen(lo)) }
}

/// A small non-empty range around a single finite value, kept within the finite `f32` range.
fn widen(value: f32) -> (f32, f32) {
    let center = f64::from(value);
    let half_width = (center.abs() * 1e-3).max(1e-3);
    let lo = (center - half_width).max(f64::from(f32::MIN)) as f32;
    let hi = (center + half_width).min(f64::from(f32::MAX)) as f32;
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_edges() {
        let values = [
            0.0,
            0.25,
            0.5,
            1.0,
            -5.0,
            7.0,
            f32::NAN,
            0.999,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        // Bins [0,.25) [.25,.5) [.5,.75) [.75,1]: lo and below → 0, hi and above → 3.
        assert_eq!(histogram(&values, 0.0, 1.0, 4), vec![3, 1, 1, 4]);
        assert_eq!(histogram(&values, 0.0, 1.0, 0), Vec::<u32>::new());
        assert_eq!(histogram(&values, 0.0, 1.0, 1), vec![9]);
        // An unusable range puts every non-NaN value in the first bin.
        assert_eq!(histogram(&values, 1.0, 1.0, 3), vec![9, 0, 0]);
        assert_eq!(histogram(&values, 0.0, f32::INFINITY, 2), vec![9, 0]);
        assert_eq!(histogram(&[], 0.0, 1.0, 2), vec![0, 0]);
    }

    #[test]
    fn shared_range_spans_finite_values_of_all_sets() {
        let a = [0.5, f32::NAN, -2.0];
        let b = [f32::INFINITY, 3.0, f32::NEG_INFINITY];
        assert_eq!(shared_range(&[&a, &b]), Some((-2.0, 3.0)));
        assert_eq!(shared_range(&[&[f32::NAN], &[]]), None);
        assert_eq!(shared_range(&[]), None);
    }

    #[test]
    fn shared_range_widens_a_single_value() {
        for value in [0.0, 1.0, -250.0, 1e-30, f32::MAX, f32::MIN] {
            let (lo, hi) = shared_range(&[&[value, value]]).expect("finite values");
            assert!(lo < value || value == f32::MIN, "lo {lo} for {value}");
            assert!(hi > value || value == f32::MAX, "hi {hi} for {value}");
            assert!(lo < hi && lo.is_finite() && hi.is_finite());
            assert_eq!(histogram(&[value], lo, hi, 10).iter().sum::<u32>(), 1);
        }
    }
}
