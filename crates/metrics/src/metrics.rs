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

use std::fmt;
use std::iter;

/// Name of the in-distribution set in error messages.
const ID_SET: &str = "ID";
/// Name of the out-of-distribution set in error messages.
const OOD_SET: &str = "OOD";

/// Why a metric cannot be computed from the given scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricsError {
    /// One of the two sets has no scores (`which` is `"ID"` or `"OOD"`).
    EmptySet { which: &'static str },
    /// A score is NaN (`which` is `"ID"` or `"OOD"`; `index` is its position in that slice).
    NaN { which: &'static str, index: usize },
    /// Every score of both sets is the same value, so no threshold separates anything.
    AllEqual { count: usize, value: f32 },
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptySet { which } => write!(f, "the {which} set has no scores"),
            Self::NaN { which, index } => write!(f, "{which} score at index {index} is NaN"),
            Self::AllEqual { count, value } => {
                write!(f, "all {count} scores are equal ({value}): the score separates nothing")
            }
        }
    }
}

impl std::error::Error for MetricsError {}

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

/// Points for plotting, one per cut between tie groups of the descending merged scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Curves {
    /// ROC points `(fpr, tpr)`, from `(0, 0)` to `(1, 1)`.
    pub roc: Vec<(f64, f64)>,
    /// Precision–recall points `(recall, precision)` with ID positive. The first point is
    /// `(0, 1)` by convention (as scikit-learn does); the rest follow the cuts down to recall 1.
    pub pr: Vec<(f64, f64)>,
}

/// Computes every metric of [`DetectionMetrics`] in `O(n log n)`.
///
/// Fails on an empty set, a NaN score, or when all scores of both sets are equal.
pub fn detection_metrics(id: &[f32], ood: &[f32]) -> Result<DetectionMetrics, MetricsError> {
    Ok(SortedScores::new(id, ood)?.metrics())
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

/// ROC and precision–recall points for plotting, in `O(n log n)`.
pub fn curves(id: &[f32], ood: &[f32]) -> Result<Curves, MetricsError> {
    Ok(SortedScores::new(id, ood)?.curves())
}

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
    pub fn new(id: &[f32], ood: &[f32]) -> Result<Self, MetricsError> {
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

    /// Counts the detector's decisions at `threshold` in `O(log n)` by binary search.
    /// Agrees with the free function [`operating_point`] (a NaN threshold calls everything OOD).
    pub fn operating_point(&self, threshold: f32) -> OperatingPoint {
        OperatingPoint::from_counts(
            threshold,
            self.id.len(),
            self.ood.len(),
            count_above(&self.id, threshold),
            count_above(&self.ood, threshold),
        )
    }

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
        let k = ceil_95_percent(self.id.len());
        self.id[self.id.len() - k]
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
        let at_or_above = self.ood.len() - self.ood.partition_point(|&score| score < cutoff);
        fraction(at_or_above, self.ood.len())
    }

    /// FPR at 95% TPR with OOD as the positive class: with `t` the `⌈0.95·n_OOD⌉`-th smallest
    /// OOD score, the fraction of ID scores `≤ t`.
    pub fn fpr_at_95_tpr_ood_positive(&self) -> f64 {
        let k = ceil_95_percent(self.ood.len());
        let cutoff = self.ood[k - 1];
        let at_or_below = self.id.partition_point(|&score| score <= cutoff);
        fraction(at_or_below, self.id.len())
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

    /// Number of ID and OOD scores.
    fn counts(&self) -> (usize, usize) {
        (self.id.len(), self.ood.len())
    }

    /// The cuts between tie groups of the descending merged scores.
    fn cuts(&self) -> Cuts<'_> {
        Cuts {
            id: &self.id,
            ood: &self.ood,
            n_id: self.id.len(),
            n_ood: self.ood.len(),
        }
    }

    /// Each cut paired with the one before it (the first with the "all OOD" cut).
    fn steps(&self) -> impl Iterator<Item = (Cut, Cut)> + '_ {
        iter::once(Cut::ALL_OOD).chain(self.cuts()).zip(self.cuts())
    }

    /// Fails when the lowest and highest score over both sets are equal.
    fn check_not_all_equal(&self) -> Result<(), MetricsError> {
        let (Some(&id_min), Some(&id_max), Some(&ood_min), Some(&ood_max)) =
            (self.id.first(), self.id.last(), self.ood.first(), self.ood.last())
        else {
            return Ok(());
        };
        if id_min == id_max && ood_min == ood_max && id_min == ood_min {
            return Err(MetricsError::AllEqual {
                count: self.id.len() + self.ood.len(),
                value: id_min,
            });
        }
        Ok(())
    }
}

/// Counts at one cut of the descending merged scores: everything at or above the cut is called ID.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cut {
    /// ID scores above the cut (true positives).
    id_above: usize,
    /// OOD scores above the cut (false positives).
    ood_above: usize,
}

impl Cut {
    /// The cut above every score: everything is called OOD.
    const ALL_OOD: Self = Self {
        id_above: 0,
        ood_above: 0,
    };
}

/// Iterator over the cuts below each tie group, from the highest score down; the last cut
/// calls everything ID. Walks both ascending slices from their ends, `O(n)` in total.
struct Cuts<'a> {
    /// ID scores not yet passed, ascending.
    id: &'a [f32],
    /// OOD scores not yet passed, ascending.
    ood: &'a [f32],
    n_id: usize,
    n_ood: usize,
}

impl Iterator for Cuts<'_> {
    type Item = Cut;

    fn next(&mut self) -> Option<Cut> {
        let top = match (self.id.last(), self.ood.last()) {
            (None, None) => return None,
            (Some(&id), None) => id,
            (None, Some(&ood)) => ood,
            (Some(&id), Some(&ood)) => id.max(ood),
        };
        self.id = without_top_group(self.id, top);
        self.ood = without_top_group(self.ood, top);
        Some(Cut {
            id_above: self.n_id - self.id.len(),
            ood_above: self.n_ood - self.ood.len(),
        })
    }
}

/// The ascending slice without its trailing scores equal to `value` (`-0.0 == 0.0`).
fn without_top_group(sorted: &[f32], value: f32) -> &[f32] {
    let kept = sorted
        .iter()
        .rposition(|&score| score != value)
        .map_or(0, |last| last + 1);
    &sorted[..kept]
}

/// Number of scores in an ascending NaN-free slice that are `> threshold` (none for a NaN threshold).
fn count_above(sorted: &[f32], threshold: f32) -> usize {
    if threshold.is_nan() {
        return 0;
    }
    sorted.len() - sorted.partition_point(|&score| score <= threshold)
}

/// `⌈0.95·n⌉` in exact integer arithmetic: `n − ⌊n/20⌋` (equal to `(95·n + 99) / 100`, without overflow).
fn ceil_95_percent(n: usize) -> usize {
    n - n / 20
}

/// `count / total` as `f64`, or 0 when `total` is 0.
fn fraction(count: usize, total: usize) -> f64 {
    if total == 0 { 0.0 } else { count as f64 / total as f64 }
}

/// A sorted (ascending, total order) copy of NaN-free scores.
fn sorted(scores: &[f32]) -> Vec<f32> {
    let mut copy = scores.to_vec();
    copy.sort_unstable_by(f32::total_cmp);
    copy
}

fn check_not_empty(scores: &[f32], which: &'static str) -> Result<(), MetricsError> {
    if scores.is_empty() {
        Err(MetricsError::EmptySet { which })
    } else {
        Ok(())
    }
}

fn check_no_nan(scores: &[f32], which: &'static str) -> Result<(), MetricsError> {
    match scores.iter().position(|score| score.is_nan()) {
        Some(index) => Err(MetricsError::NaN { which, index }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f64 = 1e-12;

    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() < EPS, "expected {expected}, got {actual}");
    }

    fn metrics(id: &[f32], ood: &[f32]) -> DetectionMetrics {
        detection_metrics(id, ood).expect("valid scores")
    }

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
    fn empty_sets_are_errors() {
        let empty_id = detection_metrics(&[], &[1.0]);
        assert_eq!(empty_id, Err(MetricsError::EmptySet { which: "ID" }));
        assert_eq!(
            empty_id.map_err(|e| e.to_string()),
            Err("the ID set has no scores".to_string())
        );
        let empty_ood = detection_metrics(&[1.0], &[]);
        assert_eq!(empty_ood, Err(MetricsError::EmptySet { which: "OOD" }));
        assert_eq!(curves(&[], &[]), Err(MetricsError::EmptySet { which: "ID" }));
    }

    #[test]
    fn nan_scores_are_errors_naming_set_and_index() {
        let error = detection_metrics(&[1.0, 2.0], &[0.0, 0.5, f32::NAN]).expect_err("NaN in OOD");
        assert_eq!(error, MetricsError::NaN { which: "OOD", index: 2 });
        assert_eq!(error.to_string(), "OOD score at index 2 is NaN");
        let error = SortedScores::new(&[f32::NAN], &[0.0]).expect_err("NaN in ID");
        assert_eq!(error, MetricsError::NaN { which: "ID", index: 0 });
    }

    #[test]
    fn all_equal_scores_are_an_error() {
        let error = detection_metrics(&[0.5, 0.5], &[0.5, 0.5, 0.5]).expect_err("all equal");
        assert_eq!(error, MetricsError::AllEqual { count: 5, value: 0.5 });
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
