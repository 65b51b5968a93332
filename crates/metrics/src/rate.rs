//! Rates as `count / total`, defined as 0 over an empty set.

/// `count / total` as `f64`, or 0 when `total` is 0.
pub(crate) fn fraction(count: usize, total: usize) -> f64 {
    if total == 0 { 0.0 } else { count as f64 / total as f64 }
}
