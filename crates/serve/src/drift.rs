//! Drift of live traffic from the calibration: the recent scores and verdicts, the OOD rate over a
//! sliding window (to hold against α), the two-sample Kolmogorov–Smirnov statistic of the recent
//! scores against the calibration scores, and per-second counts for the window's watch view.

use std::collections::VecDeque;

use serde::Serialize;

use crate::detector::Verdict;

/// Recent scores kept (the watch view's `recent_scores`).
pub const RECENT_KEPT: usize = 2000;
/// The sliding window of the OOD rate and the KS statistic, in images.
pub const WINDOW: usize = 1000;
/// Seconds of per-second counts kept.
pub const SECONDS_KEPT: u64 = 600;

/// Images scored and flagged in one second of wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SecondCount {
    /// Unix time, whole seconds.
    pub t: u64,
    /// Images scored in that second.
    pub requests: u64,
    /// Of them, flagged out-of-distribution.
    pub ood: u64,
}

/// Verdicts so far, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub id: u64,
    pub ood: u64,
}

/// The state of live traffic against the calibration.
#[derive(Debug)]
pub struct Drift {
    calibration: Vec<f32>,
    recent: VecDeque<(f32, bool)>,
    seconds: VecDeque<SecondCount>,
    totals: Totals,
}

impl Drift {
    /// `calibration`: the detector's calibration scores (sorted here again, to be sure).
    pub fn new(mut calibration: Vec<f32>) -> Drift {
        calibration.sort_by(f32::total_cmp);
        Drift {
            calibration,
            recent: VecDeque::with_capacity(RECENT_KEPT),
            seconds: VecDeque::new(),
            totals: Totals::default(),
        }
    }

    /// Adds a batch's verdicts, scored at unix second `now`.
    pub fn record(&mut self, now: u64, verdicts: &[Verdict]) {
        let ood = verdicts.iter().filter(|v| v.is_ood).count() as u64;
        self.totals.ood += ood;
        self.totals.id += verdicts.len() as u64 - ood;
        for v in verdicts {
            if self.recent.len() == RECENT_KEPT {
                self.recent.pop_front();
            }
            self.recent.push_back((v.score, v.is_ood));
        }
        match self.seconds.back_mut() {
            Some(last) if last.t == now => {
                last.requests += verdicts.len() as u64;
                last.ood += ood;
            }
            _ => self.seconds.push_back(SecondCount {
                t: now,
                requests: verdicts.len() as u64,
                ood,
            }),
        }
        self.forget_before(now);
    }

    fn forget_before(&mut self, now: u64) {
        while self.seconds.front().is_some_and(|s| s.t + SECONDS_KEPT <= now) {
            self.seconds.pop_front();
        }
    }

    fn window(&self) -> impl Iterator<Item = &(f32, bool)> {
        self.recent.iter().skip(self.recent.len().saturating_sub(WINDOW))
    }

    /// The share flagged among the last [`WINDOW`] images; `None` before any.
    pub fn window_ood_rate(&self) -> Option<f64> {
        let n = self.recent.len().min(WINDOW);
        (n > 0).then(|| self.window().filter(|(_, ood)| *ood).count() as f64 / n as f64)
    }

    /// KS statistic of the last [`WINDOW`] scores against the calibration scores; `None` before any.
    pub fn ks_statistic(&self) -> Option<f64> {
        let mut recent: Vec<f32> = self.window().map(|(s, _)| *s).collect();
        if recent.is_empty() || self.calibration.is_empty() {
            return None;
        }
        recent.sort_by(f32::total_cmp);
        Some(ks_two_sample(&recent, &self.calibration))
    }

    /// Verdicts so far.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// The sorted calibration scores.
    pub fn calibration(&self) -> &[f32] {
        &self.calibration
    }

    /// The last [`RECENT_KEPT`] scores, oldest first.
    pub fn recent_scores(&self) -> Vec<f32> {
        self.recent.iter().map(|(s, _)| *s).collect()
    }

    /// The seconds with traffic among the last [`SECONDS_KEPT`] before `now`, oldest first.
    pub fn seconds(&self, now: u64) -> Vec<SecondCount> {
        self.seconds
            .iter()
            .filter(|s| s.t + SECONDS_KEPT > now)
            .copied()
            .collect()
    }
}

/// The two-sample Kolmogorov–Smirnov statistic `sup |F_a(x) − F_b(x)|` of two ascending samples
/// (ties counted on both sides at once, as `scipy.stats.ks_2samp`). By hand: a merge of two sorted
/// lists, and no maintained crate offers the two-sample statistic on presorted `f32` samples.
/// Ordered by `total_cmp`, so every step advances even through NaNs.
pub fn ks_two_sample(a: &[f32], b: &[f32]) -> f64 {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return 0.0;
    }
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < n && j < m {
        let x = if a[i].total_cmp(&b[j]).is_le() { a[i] } else { b[j] };
        while i < n && a[i].total_cmp(&x).is_le() {
            i += 1;
        }
        while j < m && b[j].total_cmp(&x).is_le() {
            j += 1;
        }
        d = d.max((i as f64 / n as f64 - j as f64 / m as f64).abs());
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(score: f32, is_ood: bool) -> Verdict {
        Verdict {
            score,
            is_ood,
            p_value: 0.5,
            class: 0,
            probability: 1.0,
        }
    }

    #[test]
    fn ks_of_known_samples() {
        assert_eq!(ks_two_sample(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 0.0);
        assert_eq!(ks_two_sample(&[1.0, 2.0], &[3.0, 4.0]), 1.0);
        // F_a jumps to 1/2 at 1 and to 1 at 3; F_b is 0 below 2 and 1 from 2: the gap at 2 is 1/2.
        assert_eq!(ks_two_sample(&[1.0, 3.0], &[2.0]), 0.5);
        assert_eq!(ks_two_sample(&[f32::NAN, f32::NAN], &[f32::NAN]), 0.0);
    }

    #[test]
    fn window_rate_seconds_and_totals_follow_the_traffic() {
        let mut drift = Drift::new(vec![3.0, 1.0, 2.0]);
        assert_eq!(drift.calibration(), [1.0, 2.0, 3.0]);
        assert_eq!(drift.window_ood_rate(), None);
        assert_eq!(drift.ks_statistic(), None);
        drift.record(100, &[verdict(0.5, true), verdict(2.5, false)]);
        drift.record(100, &[verdict(2.0, false)]);
        drift.record(105, &[verdict(0.1, true)]);
        assert_eq!(drift.totals(), Totals { id: 2, ood: 2 });
        assert_eq!(drift.window_ood_rate(), Some(0.5));
        assert_eq!(
            drift.seconds(105),
            [
                SecondCount {
                    t: 100,
                    requests: 3,
                    ood: 1
                },
                SecondCount {
                    t: 105,
                    requests: 1,
                    ood: 1
                }
            ]
        );
        assert_eq!(
            drift.seconds(700),
            [SecondCount {
                t: 105,
                requests: 1,
                ood: 1
            }]
        );
        for _ in 0..RECENT_KEPT {
            drift.record(800, &[verdict(5.0, false)]);
        }
        assert_eq!(drift.recent_scores().len(), RECENT_KEPT);
        assert_eq!(drift.window_ood_rate(), Some(0.0));
        assert_eq!(drift.ks_statistic(), Some(1.0));
        assert_eq!(
            drift.seconds(800),
            [SecondCount {
                t: 800,
                requests: RECENT_KEPT as u64,
                ood: 0
            }]
        );
    }
}
