//! ROC and precision–recall curves for plotting, one point per cut between tie groups.

use crate::error::Error;
use crate::rate::fraction;
use crate::sorted::SortedScores;

/// Points for plotting, one per cut between tie groups of the descending merged scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Curves {
    /// ROC points `(fpr, tpr)`, from `(0, 0)` to `(1, 1)`.
    pub roc: Vec<(f64, f64)>,
    /// Precision–recall points `(recall, precision)` with ID positive. The first point is
    /// `(0, 1)` by convention (as scikit-learn does); the rest follow the cuts down to recall 1.
    pub pr: Vec<(f64, f64)>,
}

/// ROC and precision–recall points for plotting, in `O(n log n)`.
pub fn curves(id: &[f32], ood: &[f32]) -> Result<Curves, Error> {
    Ok(SortedScores::new(id, ood)?.curves())
}

impl SortedScores {
    /// ROC and precision–recall points at every cut.
    pub fn curves(&self) -> Curves {
        let (n_id, n_ood) = self.counts();
        let mut roc = vec![(0.0, 0.0)];
        let mut pr = vec![(0.0, 1.0)];
        for cut in self.cuts() {
            let tpr = fraction(cut.id_above, n_id);
            roc.push((fraction(cut.ood_above, n_ood), tpr));
            pr.push((tpr, fraction(cut.id_above, cut.id_above + cut.ood_above)));
        }
        Curves { roc, pr }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_close, metrics};

    #[test]
    fn curves_run_from_origin_to_one_and_match_auroc() {
        let id = [0.35, 0.8, 0.8, 0.1];
        let ood = [0.1, 0.4, 0.8];
        let c = curves(&id, &ood).expect("valid scores");
        // Tie groups 0.8, 0.4, 0.35, 0.1 → 4 cuts plus the start.
        assert_eq!(
            c.roc,
            vec![
                (0.0, 0.0),
                (1.0 / 3.0, 0.5),
                (2.0 / 3.0, 0.5),
                (2.0 / 3.0, 0.75),
                (1.0, 1.0)
            ]
        );
        assert_eq!(c.pr.first(), Some(&(0.0, 1.0)));
        assert_eq!(c.pr.get(1), Some(&(0.5, 2.0 / 3.0)));
        assert_eq!(c.pr.last(), Some(&(1.0, 4.0 / 7.0)));
        let trapezoid: f64 = c
            .roc
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum();
        assert_close(trapezoid, metrics(&id, &ood).auroc);
    }
}
