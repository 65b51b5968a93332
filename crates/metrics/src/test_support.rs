//! Helpers shared by the unit tests of several modules.

use crate::{DetectionMetrics, detection_metrics};

/// Tolerance of [`assert_close`].
const EPS: f64 = 1e-12;

/// Asserts that `actual` is within [`EPS`] of `expected`.
pub(crate) fn assert_close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < EPS, "expected {expected}, got {actual}");
}

/// The metrics of valid scores (panics on an error).
pub(crate) fn metrics(id: &[f32], ood: &[f32]) -> DetectionMetrics {
    detection_metrics(id, ood).expect("valid scores")
}
