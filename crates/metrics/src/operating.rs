//! The detector's decisions at one threshold (`score > threshold` means ID): counted in one pass
//! over the raw scores, or by binary search on [`SortedScores`].

use crate::rate::fraction;
use crate::sorted::SortedScores;

/// The detector's behaviour at one threshold (`score > threshold` means ID).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OperatingPoint {
    /// The threshold the counts were taken at.
    pub threshold: f32,
    /// True positive rate: `id_as_id / n_ID` (0 when there are no ID scores).
    pub tpr: f64,
    /// False positive rate: `ood_as_id / n_OOD` (0 when there are no OOD scores).
    pub fpr: f64,
    /// ID scores called ID.
    pub id_as_id: usize,
    /// ID scores called OOD.
    pub id_as_ood: usize,
    /// OOD scores called ID.
    pub ood_as_id: usize,
    /// OOD scores called OOD.
    pub ood_as_ood: usize,
}

impl OperatingPoint {
    /// Builds the point from the number of scores in each set and how many of them exceed the threshold.
    fn from_counts(threshold: f32, n_id: usize, n_ood: usize, id_above: usize, ood_above: usize) -> Self {
        Self {
            threshold,
            tpr: fraction(id_above, n_id),
            fpr: fraction(ood_above, n_ood),
            id_as_id: id_above,
            id_as_ood: n_id - id_above,
            ood_as_id: ood_above,
            ood_as_ood: n_ood - ood_above,
        }
    }
}

/// Counts the detector's decisions at `threshold` in `O(n)` without allocating.
///
/// Never fails: a NaN score (or a NaN threshold) is never `> threshold`, so it counts as OOD,
/// and a rate over an empty set is 0.
pub fn operating_point(id: &[f32], ood: &[f32], threshold: f32) -> OperatingPoint {
    let id_above = id.iter().filter(|&&score| score > threshold).count();
    let ood_above = ood.iter().filter(|&&score| score > threshold).count();
    OperatingPoint::from_counts(threshold, id.len(), ood.len(), id_above, ood_above)
}

impl SortedScores {
    /// Counts the detector's decisions at `threshold` in `O(log n)` by binary search.
    /// Agrees with the free function [`operating_point`] (a NaN threshold calls everything OOD).
    pub fn operating_point(&self, threshold: f32) -> OperatingPoint {
        OperatingPoint::from_counts(
            threshold,
            self.id().len(),
            self.ood().len(),
            count_above(self.id(), threshold),
            count_above(self.ood(), threshold),
        )
    }
}

/// Number of scores in an ascending NaN-free slice that are `> threshold` (none for a NaN threshold).
fn count_above(sorted: &[f32], threshold: f32) -> usize {
    if threshold.is_nan() {
        return 0;
    }
    sorted.len() - sorted.partition_point(|&score| score <= threshold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::assert_close;

    #[test]
    fn sorted_operating_point_agrees_with_linear_count() {
        let id = [0.3, 1.2, 5.0, 5.0, 2.2, -1.0, 0.0, 7.5, 3.3, f32::INFINITY];
        let ood = [0.1, 5.0, -2.0, 1.2, -0.0, 0.7, f32::NEG_INFINITY];
        let scores = SortedScores::new(&id, &ood).expect("valid scores");
        let mut thresholds: Vec<f32> = id.iter().chain(&ood).copied().collect();
        thresholds.extend([
            f32::NAN,
            100.0,
            -100.0,
            0.0,
            -0.0,
            5.0_f32.next_down(),
            5.0_f32.next_up(),
        ]);
        for threshold in thresholds {
            let linear = operating_point(&id, &ood, threshold);
            let binary = scores.operating_point(threshold);
            assert_eq!(
                (linear.id_as_id, linear.id_as_ood, linear.ood_as_id, linear.ood_as_ood),
                (binary.id_as_id, binary.id_as_ood, binary.ood_as_id, binary.ood_as_ood),
                "threshold {threshold}"
            );
            assert_eq!(linear.tpr, binary.tpr);
            assert_eq!(linear.fpr, binary.fpr);
        }
        let at_five = scores.operating_point(5.0);
        assert_eq!((at_five.id_as_id, at_five.ood_as_id), (2, 0));
        assert_close(at_five.tpr, 0.2);
    }

    #[test]
    fn operating_point_on_empty_sets_has_zero_rates() {
        let point = operating_point(&[], &[], 0.0);
        assert_eq!(point.tpr, 0.0);
        assert_eq!(point.fpr, 0.0);
        assert_eq!(point.id_as_id + point.id_as_ood + point.ood_as_id + point.ood_as_ood, 0);
    }
}
