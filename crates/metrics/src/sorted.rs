//! ID and OOD scores validated (non-empty, NaN-free, not all equal) and sorted once: what every
//! exact metric, curve and fast operating point starts from.

use crate::error::Error;

/// Name of the in-distribution set in error messages.
const ID_SET: &str = "ID";
/// Name of the out-of-distribution set in error messages.
const OOD_SET: &str = "OOD";

/// ID and OOD scores validated and sorted once, for repeated queries.
///
/// The GUI builds one when the scores change, then calls [`SortedScores::operating_point`]
/// (`O(log n)`) as the threshold slider moves. Both sets are non-empty, NaN-free, and not all equal.
#[derive(Debug, Clone, PartialEq)]
pub struct SortedScores {
    /// ID scores, ascending.
    id: Vec<f32>,
    /// OOD scores, ascending.
    ood: Vec<f32>,
}

impl SortedScores {
    /// Validates and sorts the scores in `O(n log n)`.
    ///
    /// Fails on an empty set, a NaN score, or when all scores of both sets are equal.
    pub fn new(id: &[f32], ood: &[f32]) -> Result<Self, Error> {
        check_not_empty(id, ID_SET)?;
        check_not_empty(ood, OOD_SET)?;
        check_no_nan(id, ID_SET)?;
        check_no_nan(ood, OOD_SET)?;
        let scores = Self {
            id: sorted(id),
            ood: sorted(ood),
        };
        scores.check_not_all_equal()?;
        Ok(scores)
    }

    /// ID scores, ascending.
    pub fn id(&self) -> &[f32] {
        &self.id
    }

    /// OOD scores, ascending.
    pub fn ood(&self) -> &[f32] {
        &self.ood
    }

    /// Number of ID and OOD scores.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.id.len(), self.ood.len())
    }

    /// Fails when the lowest and highest score over both sets are equal.
    fn check_not_all_equal(&self) -> Result<(), Error> {
        let (Some(&id_min), Some(&id_max), Some(&ood_min), Some(&ood_max)) =
            (self.id.first(), self.id.last(), self.ood.first(), self.ood.last())
        else {
            return Ok(());
        };
        if id_min == id_max && ood_min == ood_max && id_min == ood_min {
            return Err(Error::AllEqual {
                count: self.id.len() + self.ood.len(),
                value: id_min,
            });
        }
        Ok(())
    }
}

/// A sorted (ascending, total order) copy of NaN-free scores.
fn sorted(scores: &[f32]) -> Vec<f32> {
    let mut copy = scores.to_vec();
    copy.sort_unstable_by(f32::total_cmp);
    copy
}

/// Fails when `scores` (the set named `which`) is empty.
fn check_not_empty(scores: &[f32], which: &'static str) -> Result<(), Error> {
    if scores.is_empty() {
        Err(Error::EmptySet { which })
    } else {
        Ok(())
    }
}

/// Fails at the first NaN in `scores` (the set named `which`).
fn check_no_nan(scores: &[f32], which: &'static str) -> Result<(), Error> {
    match scores.iter().position(|score| score.is_nan()) {
        Some(index) => Err(Error::NaN { which, index }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_close, metrics};
    use crate::{curves, detection_metrics};

    #[test]
    fn empty_sets_are_errors() {
        let empty_id = detection_metrics(&[], &[1.0]);
        assert_eq!(empty_id, Err(Error::EmptySet { which: "ID" }));
        assert_eq!(
            empty_id.map_err(|e| e.to_string()),
            Err("the ID set has no scores".to_string())
        );
        let empty_ood = detection_metrics(&[1.0], &[]);
        assert_eq!(empty_ood, Err(Error::EmptySet { which: "OOD" }));
        assert_eq!(curves(&[], &[]), Err(Error::EmptySet { which: "ID" }));
    }

    #[test]
    fn nan_scores_are_errors_naming_set_and_index() {
        let error = detection_metrics(&[1.0, 2.0], &[0.0, 0.5, f32::NAN]).expect_err("NaN in OOD");
        assert_eq!(error, Error::NaN { which: "OOD", index: 2 });
        assert_eq!(error.to_string(), "OOD score at index 2 is NaN");
        let error = SortedScores::new(&[f32::NAN], &[0.0]).expect_err("NaN in ID");
        assert_eq!(error, Error::NaN { which: "ID", index: 0 });
    }

    #[test]
    fn all_equal_scores_are_an_error() {
        let error = detection_metrics(&[0.5, 0.5], &[0.5, 0.5, 0.5]).expect_err("all equal");
        assert_eq!(error, Error::AllEqual { count: 5, value: 0.5 });
        assert_eq!(
            error.to_string(),
            "all 5 scores are equal (0.5): the score separates nothing"
        );
        // Equal within each set but different across sets is fine.
        assert_close(metrics(&[1.0, 1.0], &[0.0]).auroc, 1.0);
        // An error is a std error.
        let boxed: Box<dyn std::error::Error> = Box::new(error);
        assert!(boxed.to_string().starts_with("all 5"));
    }
}
