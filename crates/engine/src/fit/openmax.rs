//! OpenMax's fit (Bendale & Boult 2016): from the logits of the correctly classified fit images
//! (a temporary file of rows `[class, ℓ_0 … ℓ_{C−1}]`, written during the pass), each class's mean
//! logit vector μ_c, then, in a second pass over the rows, the [`TAIL_MAX`] largest distances of
//! the class's images to μ_c at each of the [`EUCLID_WEIGHTS`] (the Weibull fits of
//! `crate::stats::weibull` are made from them when scoring, for any `tailsize` up to TAIL_MAX).
//!
//! The tails need the final means, so they cannot be summed while the images stream like the other
//! statistics: the rows are kept on disk (4·(C + 1) bytes per correctly classified image).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::finish::FeatureBlocks;
use crate::stats::weibull::{EUCLID_WEIGHTS, TAIL_MAX};

/// A distance ordered by `f64::total_cmp`, for the heaps of the largest.
#[derive(PartialEq)]
struct Ordered(f64);
impl Eq for Ordered {}
impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The distance `w·‖ℓ − μ‖₂ + (1 − w)·(1 − ℓ·μ/(‖ℓ‖‖μ‖))` at every weight of [`EUCLID_WEIGHTS`].
pub fn distances(logits: &[f64], mean: &[f64]) -> [f64; EUCLID_WEIGHTS.len()] {
    let (mut squared, mut dot, mut norm_l, mut norm_m) = (0.0, 0.0, 0.0, 0.0);
    for (&l, &m) in logits.iter().zip(mean) {
        squared += (l - m) * (l - m);
        dot += l * m;
        norm_l += l * l;
        norm_m += m * m;
    }
    let euclid = squared.sqrt();
    let cosine = 1.0 - dot / (norm_l.sqrt() * norm_m.sqrt());
    EUCLID_WEIGHTS.map(|w| w * euclid + (1.0 - w) * cosine)
}

/// The means `[C·C]` (row c: class c's mean logit vector, NaN where it has no row) and the tails
/// `[W·C·TAIL_MAX]` (largest first, NaN beyond a class's rows) of `rows`.
pub fn tails(rows: &dyn FeatureBlocks, classes: usize) -> std::io::Result<(Vec<f64>, Vec<f64>)> {
    let width = classes + 1;
    let mut sums = vec![0.0f64; classes * classes];
    let mut counts = vec![0u64; classes];
    rows.for_each_block(width, &mut |block| {
        for row in block.chunks_exact(width) {
            let c = row[0] as usize;
            if c < classes {
                counts[c] += 1;
                for (s, &l) in sums[c * classes..(c + 1) * classes].iter_mut().zip(&row[1..]) {
                    *s += f64::from(l);
                }
            }
        }
    })?;
    let means: Vec<f64> = sums
        .chunks_exact(classes.max(1))
        .zip(&counts)
        .flat_map(|(s, &n)| s.iter().map(move |v| if n > 0 { v / n as f64 } else { f64::NAN }))
        .collect();
    // Per weight and class, a min-heap of the largest distances so far.
    let mut heaps: Vec<BinaryHeap<Reverse<Ordered>>> = (0..EUCLID_WEIGHTS.len() * classes)
        .map(|_| BinaryHeap::with_capacity(TAIL_MAX + 1))
        .collect();
    let mut logits = vec![0.0f64; classes];
    rows.for_each_block(width, &mut |block| {
        for row in block.chunks_exact(width) {
            let c = row[0] as usize;
            if c >= classes {
                continue;
            }
            for (l, &v) in logits.iter_mut().zip(&row[1..]) {
                *l = f64::from(v);
            }
            let mean = &means[c * classes..(c + 1) * classes];
            for (w, d) in distances(&logits, mean).into_iter().enumerate() {
                if d.is_nan() {
                    continue; // a zero logit vector has no cosine
                }
                let heap = &mut heaps[w * classes + c];
                heap.push(Reverse(Ordered(d)));
                if heap.len() > TAIL_MAX {
                    heap.pop();
                }
            }
        }
    })?;
    let mut out = vec![f64::NAN; EUCLID_WEIGHTS.len() * classes * TAIL_MAX];
    for (slot, heap) in out.chunks_exact_mut(TAIL_MAX).zip(heaps) {
        let mut values: Vec<f64> = heap.into_iter().map(|Reverse(Ordered(d))| d).collect();
        values.sort_by(|a, b| b.total_cmp(a));
        slot[..values.len()].copy_from_slice(&values);
    }
    Ok((means, out))
}
