//! What the views draw, derived once from a result (not every frame): scores per set, sorted
//! scores, metrics and curves per OOD set, the histogram's bins. Moving δ needs none of it again.

use oodscope_data::Role;
use oodscope_metrics::{Curves, DetectionMetrics, OperatingPoint, SortedScores, histogram, shared_range};

/// One OOD set against the pooled ID scores.
pub struct OodView {
    pub name: String,
    pub count: usize,
    pub sorted: Result<SortedScores, String>,
    pub metrics: Option<DetectionMetrics>,
    pub curves: Option<Curves>,
}

impl OodView {
    pub fn operating_point(&self, threshold: f32) -> Option<OperatingPoint> {
        self.sorted.as_ref().ok().map(|s| s.operating_point(threshold))
    }
}

/// A set's scores as drawn in the histogram.
pub struct SetBins {
    pub name: String,
    pub role: Role,
    pub count: usize,
    pub counts: Vec<u32>,
}

pub struct Derived {
    pub id_scores: Vec<f32>,
    pub ood: Vec<OodView>,
    pub range: (f32, f32),
    pub bins: Vec<SetBins>,
    pub bin_count: usize,
    /// δ that keeps 95% of ID images (`score > δ`).
    pub threshold_95: Option<f32>,
}

impl Derived {
    /// `sets`: (name, role, scores) of each enabled set in order.
    pub fn new(sets: &[(String, Role, Vec<f32>)], bin_count: usize) -> Derived {
        let id_scores: Vec<f32> = sets
            .iter()
            .filter(|s| s.1 == Role::Id)
            .flat_map(|s| s.2.iter().copied())
            .collect();
        let ood = sets
            .iter()
            .filter(|s| s.1 == Role::Ood)
            .map(|(name, _, scores)| {
                let sorted = SortedScores::new(&id_scores, scores).map_err(|e| e.to_string());
                let (metrics, curves) = match &sorted {
                    Ok(s) => (Some(s.metrics()), Some(s.curves())),
                    Err(_) => (None, None),
                };
                OodView {
                    name: name.clone(),
                    count: scores.len(),
                    sorted,
                    metrics,
                    curves,
                }
            })
            .collect();
        let slices: Vec<&[f32]> = sets.iter().map(|s| s.2.as_slice()).collect();
        let range = shared_range(&slices).unwrap_or((0.0, 1.0));
        let threshold_95 = SortedScores::new(&id_scores, &id_scores)
            .ok()
            .map(|s| s.threshold_at_95_tpr());
        let mut derived = Derived {
            id_scores,
            ood,
            range,
            bins: Vec::new(),
            bin_count: 0,
            threshold_95,
        };
        derived.rebin(sets, bin_count);
        derived
    }

    /// Recomputes the histogram bins (when the bin count changes).
    pub fn rebin(&mut self, sets: &[(String, Role, Vec<f32>)], bin_count: usize) {
        let (lo, hi) = self.range;
        self.bin_count = bin_count.max(1);
        self.bins = sets
            .iter()
            .map(|(name, role, scores)| SetBins {
                name: name.clone(),
                role: *role,
                count: scores.len(),
                counts: histogram(scores, lo, hi, self.bin_count),
            })
            .collect();
    }
}
