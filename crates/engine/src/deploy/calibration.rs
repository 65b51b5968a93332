//! The decision of a saved detector: the threshold δ (score ≥ δ → in-distribution), chosen for a
//! target false-alarm rate α by the conformal rule on held-out ID calibration scores or given, and
//! each score's conformal p-value against those scores.
//!
//! With `n` sorted calibration scores `c₁ ≤ … ≤ cₙ` and `k = ⌊α·(n + 1)⌋`, δ = `c_k`. A new ID
//! image exchangeable with the calibration images is flagged (`s < δ`) with probability
//! `k / (n + 1) ≤ α`: the conformal guarantee, for any score distribution and any `n`. The
//! p-value `p(s) = (1 + #{cᵢ ≤ s}) / (n + 1)` agrees with it: `p(s) ≤ α` exactly when `s < δ`.

/// δ, how it was chosen, and the sorted calibration scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// The calibration scores, sorted ascending (every one a number).
    pub scores: Vec<f32>,
    /// δ: a score ≥ δ is in-distribution, below it out-of-distribution.
    pub threshold: f32,
    /// α, when δ came from the conformal rule; `None` when it was given.
    pub false_alarm: Option<f64>,
}

impl Calibration {
    /// δ by the conformal rule for a false-alarm rate of at most `alpha` on ID images.
    pub fn conformal(scores: Vec<f32>, alpha: f64) -> Result<Calibration, String> {
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(format!(
                "the false-alarm rate must be between 0 and 1 (exclusive), not {alpha}"
            ));
        }
        let scores = sorted(scores)?;
        let n = scores.len();
        let k = rank(alpha, n);
        if k == 0 {
            let needed = (1.0 / alpha).ceil() as usize - 1;
            return Err(format!(
                "{n} calibration images are too few for a false-alarm rate of {alpha}: the conformal rule needs at least {needed} (⌈1/α⌉ − 1)"
            ));
        }
        Ok(Calibration {
            threshold: scores[k - 1],
            scores,
            false_alarm: Some(alpha),
        })
    }

    /// A given δ, with the calibration scores for the p-values.
    pub fn given(scores: Vec<f32>, threshold: f32) -> Result<Calibration, String> {
        if !threshold.is_finite() {
            return Err(format!("the threshold must be a finite number, not {threshold}"));
        }
        Ok(Calibration {
            scores: sorted(scores)?,
            threshold,
            false_alarm: None,
        })
    }

    /// `(1 + #{calibration scores ≤ s}) / (n + 1)`: small when `s` is lower than most ID scores. A
    /// score that is not a number gets the smallest p-value.
    pub fn p_value(&self, score: f32) -> f64 {
        let at_most = if score.is_nan() {
            0
        } else {
            self.scores.partition_point(|&c| c <= score)
        };
        (1 + at_most) as f64 / (self.scores.len() + 1) as f64
    }

    /// Whether a score is out-of-distribution: below δ (or not a number).
    pub fn is_ood(&self, score: f32) -> bool {
        // Written so that NaN (which compares false) is out-of-distribution.
        score.partial_cmp(&self.threshold).is_none_or(std::cmp::Ordering::is_lt)
    }

    /// The share of the calibration scores below δ (what δ flags of the calibration set itself).
    pub fn calibration_false_alarm(&self) -> f64 {
        self.scores.partition_point(|&c| c < self.threshold) as f64 / self.scores.len().max(1) as f64
    }
}

/// `⌊α·(n + 1)⌋`, robust to α·(n + 1) landing a rounding error below a whole number.
fn rank(alpha: f64, n: usize) -> usize {
    (alpha * (n + 1) as f64 + 1e-9).floor() as usize
}

fn sorted(mut scores: Vec<f32>) -> Result<Vec<f32>, String> {
    if scores.is_empty() {
        return Err("no calibration scores: the calibration set gave no usable image".into());
    }
    if let Some(bad) = scores.iter().find(|s| !s.is_finite()) {
        return Err(format!(
            "a calibration score is {bad}: the method does not give finite scores on this calibration set"
        ));
    }
    scores.sort_by(f32::total_cmp);
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conformal_threshold_is_the_kth_smallest_and_agrees_with_the_p_value() {
        let scores: Vec<f32> = (1..=99).rev().map(|i| i as f32).collect();
        let c = Calibration::conformal(scores, 0.05).unwrap();
        // k = ⌊0.05 · 100⌋ = 5: δ is the 5th smallest score.
        assert_eq!(c.threshold, 5.0);
        for s in [0.0f32, 4.0, 4.99, 5.0, 5.5, 50.0, 120.0] {
            assert_eq!(c.is_ood(s), c.p_value(s) <= 0.05, "score {s}");
        }
        assert_eq!(c.p_value(0.5), 0.01);
        assert_eq!(c.p_value(1000.0), 1.0);
        assert_eq!(c.p_value(f32::NAN), 0.01);
        assert!(c.is_ood(f32::NAN));
        assert!((c.calibration_false_alarm() - 4.0 / 99.0).abs() < 1e-12);
    }

    #[test]
    fn too_few_calibration_scores_or_bad_values_are_refused_in_a_line() {
        let e = Calibration::conformal(vec![1.0; 10], 0.05).unwrap_err();
        assert!(
            e.contains("10 calibration images are too few") && e.contains("at least 19"),
            "{e}"
        );
        assert!(Calibration::conformal(vec![1.0; 19], 0.05).is_ok());
        assert!(
            Calibration::conformal(vec![1.0, f32::NAN], 0.5)
                .unwrap_err()
                .contains("NaN")
        );
        assert!(Calibration::conformal(vec![1.0], 1.5).is_err());
        assert!(Calibration::conformal(Vec::new(), 0.1).is_err());
        assert!(Calibration::given(vec![1.0], f32::INFINITY).is_err());
        let g = Calibration::given(vec![3.0, 1.0, 2.0], 2.0).unwrap();
        assert_eq!(g.scores, [1.0, 2.0, 3.0]);
        assert_eq!(g.false_alarm, None);
        assert!(g.is_ood(1.5) && !g.is_ood(2.0));
    }
}
