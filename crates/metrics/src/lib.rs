//! Exact out-of-distribution detection metrics (FPR at 95% TPR, detection error, AUROC, AUPR) on plain `f32` scores.
//!
//! Conventions used throughout:
//! - in-distribution (ID) inputs are the positive class;
//! - a higher score means "more in-distribution";
//! - at threshold `δ` the detector calls an input ID when `score > δ`, and OOD otherwise.
//!
//! Every metric is exact (no binning): scores are sorted once, the descending merged list is cut
//! between tie groups, and the counts at each cut give the ROC and precision–recall points.
//! AUROC and the two AUPRs match scikit-learn's `roc_auc_score` and `average_precision_score`.
//! Counts are integers and sums are accumulated in `f64`.

mod curves;
mod cuts;
mod error;
mod histogram;
mod metrics;
mod operating;
mod rate;
mod sorted;
#[cfg(test)]
mod test_support;

pub use curves::{Curves, curves};
pub use error::Error;
pub use histogram::{histogram, shared_range};
pub use metrics::{DetectionMetrics, detection_metrics};
pub use operating::{OperatingPoint, operating_point};
pub use sorted::SortedScores;
