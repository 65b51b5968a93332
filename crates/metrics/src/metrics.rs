//! The detection metrics (FPR at 95% TPR with either class positive, detection error, AUROC,
//! AUPR-In and AUPR-Out) and the threshold that reaches 95% TPR.

use crate::error::Error;
use crate::rate::fraction;
use crate::sorted::SortedScores;

/// The standard OOD detection metrics for one pair of score sets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectionMetrics {
    /// Fraction of OOD scores `≥ δ*`, where `δ*` is the `⌈0.95·n_ID⌉`-th largest ID score.
    pub fpr_at_95_tpr: f64,
    /// The mirror image with OOD as the positive class (OpenOOD / pytorch-ood convention):
    /// fraction of ID scores `≤ t`, where `t` is the `⌈0.95·n_OOD⌉`-th smallest OOD score.
    pub fpr_at_95_tpr_ood_positive: f64,
    /// Minimum over all thresholds of `0.5·(1 − TPR) + 0.5·FPR` (at most 0.5).
    pub detection_error: f64,
    /// Area under the ROC curve: `P(id > ood) + ½·P(id = ood)`.
    pub auroc: f64,
    /// Average precision with ID as the positive class.
    pub aupr_in: f64,
    /// Average precision with OOD as the positive class (scores negated).
    pub aupr_out: f64,
    /// The threshold `δ` whose rule `score > δ` keeps exactly the ID scores `≥ δ*`
    /// (the largest `f32` below `δ*`), so TPR at `δ` is at least 95%.
    pub threshold_at_95_tpr: f32,
}

/// Computes every metric of [`DetectionMetrics`] in `O(n log n)`.
///
/// Fails on an empty set, a NaN score, or when all scores of both sets are equal.
pub fn detection_metrics(id: &[f32], ood: &[f32]) -> Result<DetectionMetrics, Error> {
    Ok(SortedScores::new(id, ood)?.metrics())
}

impl SortedScores {
    /// All metrics, in `O(n)` on the sorted scores.
    pub fn metrics(&self) -> DetectionMetrics {
        DetectionMetrics {
            fpr_at_95_tpr: self.fpr_at_95_tpr(),
            fpr_at_95_tpr_ood_positive: self.fpr_at_95_tpr_ood_positive(),
            detection_error: self.detection_error(),
            auroc: self.auroc(),
            aupr_in: self.aupr_in(),
            aupr_out: self.aupr_out(),
            threshold_at_95_tpr: self.threshold_at_95_tpr(),
        }
    }

    /// The `⌈0.95·n_ID⌉`-th largest ID score `δ*`: calling ID at `score ≥ δ*` keeps ≥ 95% of ID.
    pub fn id_score_at_95_tpr(&self) -> f32 {
        let k = ceil_95_percent(self.id().len());
        self.id()[self.id().len() - k]
    }

    /// The threshold `δ` for the rule `score > δ` that calls ID exactly the scores `≥ δ*`:
    /// the largest `f32` strictly below [`Self::id_score_at_95_tpr`].
    ///
    /// (If `δ*` is `-inf` no such `f32` exists; `-inf` is returned and `-inf` scores count as OOD.)
    pub fn threshold_at_95_tpr(&self) -> f32 {
        self.id_score_at_95_tpr().next_down()
    }

    /// Fraction of OOD scores `≥ δ*` (see [`Self::id_score_at_95_tpr`]).
    pub fn fpr_at_95_tpr(&self) -> f64 {
        let cutoff = self.id_score_at_95_tpr();
        let at_or_above = self.ood().len() - self.ood().partition_point(|&score| score < cutoff);
        fraction(at_or_above, self.ood().len())
    }

    /// FPR at 95% TPR with OOD as the positive class: with `t` the `⌈0.95·n_OOD⌉`-th smallest
    /// OOD score, the fraction of ID scores `≤ t`.
    pub fn fpr_at_95_tpr_ood_positive(&self) -> f64 {
        let k = ceil_95_percent(self.ood().len());
        let cutoff = self.ood()[k - 1];
        let at_or_below = self.id().partition_point(|&score| score <= cutoff);
        fraction(at_or_below, self.id().len())
    }

    /// Minimum over all cuts (including "all OOD" and "all ID", both 0.5) of `0.5·(1 − TPR) + 0.5·FPR`.
    pub fn detection_error(&self) -> f64 {
        let (n_id, n_ood) = self.counts();
        self.cuts().fold(0.5, |best, cut| {
            let missed_id = fraction(n_id - cut.id_above, n_id);
            let false_id = fraction(cut.ood_above, n_ood);
            best.min(0.5 * (missed_id + false_id))
        })
    }

    /// Area under the ROC curve by the trapezoidal rule through every cut, which equals the
    /// Mann–Whitney statistic `P(id > ood) + ½·P(id = ood)`. Summed exactly in integers.
    pub fn auroc(&self) -> f64 {
        let (n_id, n_ood) = self.counts();
        let twice_area: u128 = self
            .steps()
            .map(|(prev, cut)| {
                let new_ood = (cut.ood_above - prev.ood_above) as u128;
                new_ood * (prev.id_above + cut.id_above) as u128
            })
            .sum();
        twice_area as f64 / (2.0 * n_id as f64 * n_ood as f64)
    }

    /// Average precision with ID positive: `Σ (Rₙ − Rₙ₋₁)·Pₙ` over the cuts in descending order,
    /// as scikit-learn's `average_precision_score`.
    pub fn aupr_in(&self) -> f64 {
        let (n_id, _) = self.counts();
        self.steps()
            .filter(|(prev, cut)| cut.id_above > prev.id_above)
            .map(|(prev, cut)| {
                let recall_gain = fraction(cut.id_above - prev.id_above, n_id);
                recall_gain * fraction(cut.id_above, cut.id_above + cut.ood_above)
            })
            .sum()
    }

    /// Average precision with OOD positive and the scores negated, so cuts run in ascending
    /// order of the original scores. At the tie group below cut `prev`, the OOD scores called
    /// positive are those `≤` the group's value: `n_OOD − prev.ood_above`, and likewise for ID.
    pub fn aupr_out(&self) -> f64 {
        let (n_id, n_ood) = self.counts();
        self.steps()
            .filter(|(prev, cut)| cut.ood_above > prev.ood_above)
            .map(|(prev, cut)| {
                let recall_gain = fraction(cut.ood_above - prev.ood_above, n_ood);
                let ood_at_or_below = n_ood - prev.ood_above;
                let id_at_or_below = n_id - prev.id_above;
                recall_gain * fraction(ood_at_or_below, ood_at_or_below + id_at_or_below)
            })
            .sum()
    }
}

/// `⌈0.95·n⌉` in exact integer arithmetic: `n − ⌊n/20⌋` (equal to `(95·n + 99) / 100`, without overflow).
fn ceil_95_percent(n: usize) -> usize {
    n - n / 20
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operating_point;
    use crate::test_support::{assert_close, metrics};

    /// 1, 2, …, n as f32.
    fn one_to(n: u16) -> Vec<f32> {
        (1..=n).map(f32::from).collect()
    }

    #[test]
    fn ceil_95_percent_matches_the_integer_formula() {
        for n in 1..=100_000_usize {
            assert_eq!(ceil_95_percent(n), (95 * n).div_ceil(100), "n = {n}");
        }
    }

    #[test]
    fn fpr_at_95_tpr_by_hand() {
        // k = ⌈0.95·20⌉ = 19, so δ* is the 19th largest of 1..=20: 2.
        // OOD scores ≥ 2: 2, 2.5, 3, 25 → 4 of 8.
        let id = one_to(20);
        let ood = [0.5, 1.5, 2.0, 2.5, 3.0, 25.0, 1.0, 0.0];
        let scores = SortedScores::new(&id, &ood).expect("valid scores");
        assert_eq!(scores.id_score_at_95_tpr(), 2.0);
        assert_close(scores.fpr_at_95_tpr(), 0.5);
        // The threshold helper keeps exactly the ID scores ≥ 2 (19 of 20).
        let threshold = scores.threshold_at_95_tpr();
        assert!(threshold < 2.0 && threshold > 1.999_999);
        let point = operating_point(&id, &ood, threshold);
        assert_eq!(
            (point.id_as_id, point.id_as_ood, point.ood_as_id, point.ood_as_ood),
            (19, 1, 4, 4)
        );
        assert_close(point.tpr, 0.95);
        assert_close(point.fpr, 0.5);
    }

    #[test]
    fn ood_positive_fpr_differs_from_id_positive_fpr() {
        // ID 10..=29 (20 scores), OOD 0..=39 (40 scores).
        // ID positive: δ* = 19th largest ID = 11; OOD ≥ 11: 11..=39 → 29/40.
        // OOD positive: t = ⌈0.95·40⌉ = 38th smallest OOD = 37; ID ≤ 37: all 20 → 1.
        let id: Vec<f32> = (10..=29_u16).map(f32::from).collect();
        let ood: Vec<f32> = (0..=39_u16).map(f32::from).collect();
        let m = metrics(&id, &ood);
        assert_close(m.fpr_at_95_tpr, 29.0 / 40.0);
        assert_close(m.fpr_at_95_tpr_ood_positive, 1.0);
    }

    #[test]
    fn ood_positive_is_the_mirror_image() {
        // Negating the scores and swapping the sets turns one variant into the other.
        let id = [0.3, 1.2, 5.0, 5.0, 2.2, -1.0, 0.0, 7.5, 3.3];
        let ood = [0.1, 5.0, -2.0, 1.2, 0.0, 0.7];
        let m = metrics(&id, &ood);
        let neg = |s: &[f32]| s.iter().map(|v| -v).collect::<Vec<f32>>();
        let mirrored = metrics(&neg(&ood), &neg(&id));
        assert_close(m.fpr_at_95_tpr_ood_positive, mirrored.fpr_at_95_tpr);
        assert_close(m.fpr_at_95_tpr, mirrored.fpr_at_95_tpr_ood_positive);
        assert_close(m.auroc, mirrored.auroc);
        assert_close(m.aupr_in, mirrored.aupr_out);
        assert_close(m.aupr_out, mirrored.aupr_in);
        assert_close(m.detection_error, mirrored.detection_error);
    }

    #[test]
    fn detection_error_is_the_minimum_not_the_value_at_95_tpr() {
        // One low ID outlier (0.5) among ID 5..=13; OOD 0..=4.
        // Cut between 5 and 4: TPR 9/10, FPR 0 → 0.5·0.1 = 0.05 (the minimum).
        // At 95% TPR: δ* = 10th largest = 0.5, FPR = 4/5 → 0.5·0.8 = 0.4.
        let id = [0.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0];
        let ood = [0.0, 1.0, 2.0, 3.0, 4.0];
        let m = metrics(&id, &ood);
        assert_close(m.detection_error, 0.05);
        assert_close(m.fpr_at_95_tpr, 0.8);
        // AUROC: 9 IDs beat all 5 OODs, 0.5 beats one → 46/50.
        assert_close(m.auroc, 0.92);
    }

    #[test]
    fn ties_count_half_in_auroc() {
        // Pairs: (1,1) twice → ½ each; (1,0) twice → 1 each. (1 + 2) / 4.
        let m = metrics(&[1.0, 1.0], &[1.0, 0.0]);
        assert_close(m.auroc, 0.75);
        // One cut at 1: TP 2, FP 1 → AP = 1 · 2/3.
        assert_close(m.aupr_in, 2.0 / 3.0);
        // Ascending: at 0 → 1 OOD, precision 1, recall ½; at 1 → precision 2/4, recall 1.
        assert_close(m.aupr_out, 0.5 + 0.25);
        // Cut at 1: TPR 1, FPR ½ → 0.25.
        assert_close(m.detection_error, 0.25);
        // δ* = 1 → FPR ½; OOD positive: t = 2nd smallest OOD = 1 → every ID ≤ 1.
        assert_close(m.fpr_at_95_tpr, 0.5);
        assert_close(m.fpr_at_95_tpr_ood_positive, 1.0);
    }

    #[test]
    fn average_precision_matches_the_scikit_learn_doc_example() {
        // sklearn docs: y_true = [0, 0, 1, 1], scores = [0.1, 0.4, 0.35, 0.8] → AP 0.8333…, AUROC 0.75.
        let m = metrics(&[0.35, 0.8], &[0.1, 0.4]);
        assert_close(m.aupr_in, 5.0 / 6.0);
        assert_close(m.auroc, 0.75);
    }

    #[test]
    fn separated_and_reversed_scores() {
        let separated = metrics(&[2.0, 3.0, 4.0], &[0.0, 1.0]);
        assert_close(separated.auroc, 1.0);
        assert_close(separated.aupr_in, 1.0);
        assert_close(separated.aupr_out, 1.0);
        assert_close(separated.detection_error, 0.0);
        assert_close(separated.fpr_at_95_tpr, 0.0);
        assert_close(separated.fpr_at_95_tpr_ood_positive, 0.0);

        let reversed = metrics(&[0.0, 1.0], &[2.0, 3.0, 4.0]);
        assert_close(reversed.auroc, 0.0);
        assert_close(reversed.detection_error, 0.5);
        assert_close(reversed.fpr_at_95_tpr, 1.0);
        // Every ID is ranked last: precision at recall ½ is 1/4, at recall 1 it is 2/5.
        assert_close(reversed.aupr_in, 0.5 * 0.25 + 0.5 * 0.4);
    }

    #[test]
    fn auroc_equals_the_brute_force_mann_whitney_statistic() {
        // Small pseudo-random integer scores with many ties (a fixed LCG, no dependencies).
        let mut state = 12_345_u32;
        let mut next = |modulus: u32| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            ((state >> 16) % modulus) as f32
        };
        let id: Vec<f32> = (0..37).map(|_| next(7) + 1.0).collect();
        let ood: Vec<f32> = (0..23).map(|_| next(6)).collect();
        let mut wins = 0.0;
        for &i in &id {
            for &o in &ood {
                wins += if i > o {
                    1.0
                } else if i == o {
                    0.5
                } else {
                    0.0
                };
            }
        }
        assert_close(metrics(&id, &ood).auroc, wins / (id.len() * ood.len()) as f64);
    }

    #[test]
    fn infinite_scores_are_allowed() {
        let m = metrics(&[f32::INFINITY, 1.0], &[f32::NEG_INFINITY, 1.0]);
        // Pairs: (inf,-inf) 1, (inf,1) 1, (1,-inf) 1, (1,1) ½ → 3.5/4.
        assert_close(m.auroc, 0.875);
        assert!(m.aupr_in.is_finite() && m.aupr_out.is_finite() && m.detection_error.is_finite());
        // δ* = 1 → threshold is the f32 just below 1.
        assert_eq!(m.threshold_at_95_tpr, 1.0_f32.next_down());
    }

    #[test]
    fn signed_zeros_are_one_tie_group() {
        let m = metrics(&[0.0, 1.0], &[-0.0, -1.0]);
        // (0, -0) ties → ½; the other three pairs are wins → 3.5/4.
        assert_close(m.auroc, 0.875);
    }

    #[test]
    fn threshold_at_95_tpr_reproduces_fpr_at_95_tpr() {
        let id = [
            1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 0.0, 0.0, 0.5, 4.0, 4.0, 4.0, 4.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0,
            1.0,
        ];
        let ood = [0.0, 0.5, 0.5, 1.0, 2.0, -3.0, 0.0];
        let m = metrics(&id, &ood);
        let point = operating_point(&id, &ood, m.threshold_at_95_tpr);
        assert!(point.tpr >= 0.95, "tpr {}", point.tpr);
        assert_eq!(point.fpr, m.fpr_at_95_tpr);
    }
}
