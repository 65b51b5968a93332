//! Each query's `keep` largest values of a similarity matrix scanned block by block on the CPU: a
//! candidate buffer per row behind a running threshold, as faiss's flat search keeps a heap per
//! query.
//!
//! Written by hand because libtorch's `topk` sorts every block's row anew (about 14 µs per
//! 8192-column row on 2 cores, a fifth of the KNN search at 50 000 bank rows), where a threshold
//! rejects nearly every value with one comparison once the first block has been seen; no crate
//! offers a streaming top-k over a borrowed matrix.

use rayon::prelude::*;

/// The best values seen so far for every row, with the column (bank row) each came from.
pub struct RunningBest {
    keep: usize,
    rows: Vec<RowBest>,
}

struct RowBest {
    /// Values at or below it cannot enter (the `keep`-th largest once `keep` are held).
    threshold: f64,
    candidates: Vec<(f64, i64)>,
}

impl RowBest {
    /// Keeps the `keep` largest candidates and raises the threshold to the smallest of them.
    fn shrink(&mut self, keep: usize) {
        if self.candidates.len() < keep {
            return;
        }
        if self.candidates.len() > keep {
            self.candidates
                .select_nth_unstable_by(keep - 1, |a, b| b.0.total_cmp(&a.0));
            self.candidates.truncate(keep);
        }
        self.threshold = self.candidates.iter().map(|c| c.0).fold(f64::INFINITY, f64::min);
    }

    fn offer(&mut self, row: &[f32], first: i64, weights: Option<&[f64]>, keep: usize) {
        let capacity = 2 * keep.max(32);
        let take = |value: f64, column: usize, best: &mut Self| {
            best.candidates.push((value, first + column as i64));
            if best.candidates.len() >= capacity {
                best.shrink(keep);
            }
        };
        match weights {
            None => {
                for (column, &s) in row.iter().enumerate() {
                    if f64::from(s) > self.threshold {
                        take(f64::from(s), column, self);
                    }
                }
            }
            Some(weights) => {
                for (column, (&s, &w)) in row.iter().zip(weights).enumerate() {
                    let value = f64::from(s) * w;
                    if value > self.threshold {
                        take(value, column, self);
                    }
                }
            }
        }
    }
}

impl RunningBest {
    /// Nothing seen yet, for `rows` queries keeping their `keep` largest values (`keep ≥ 1`).
    pub fn new(rows: usize, keep: usize) -> Self {
        let keep = keep.max(1);
        let rows = (0..rows)
            .map(|_| RowBest {
                threshold: f64::NEG_INFINITY,
                candidates: Vec::with_capacity(2 * keep.max(32)),
            })
            .collect();
        RunningBest { keep, rows }
    }

    /// Offers a block: `similarity` holds one row of `columns` values per query (row-major), column
    /// `j` standing for bank row `first + j`; each value is multiplied by `weights[j]` (float64)
    /// when weights are given.
    pub fn offer(&mut self, similarity: &[f32], columns: usize, first: i64, weights: Option<&[f64]>) {
        if columns == 0 {
            return;
        }
        let keep = self.keep;
        self.rows
            .par_iter_mut()
            .zip(similarity.par_chunks(columns))
            .for_each(|(best, row)| best.offer(row, first, weights, keep));
    }

    /// Every row's `keep` largest values, largest first, and their columns (`[rows · keep]` each,
    /// row after row); `None` where a row was offered fewer than `keep` values (NaN never enters).
    pub fn finish(mut self) -> Option<(Vec<f64>, Vec<i64>)> {
        let keep = self.keep;
        self.rows.par_iter_mut().for_each(|best| {
            best.shrink(keep);
            best.candidates
                .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        });
        if self.rows.iter().any(|r| r.candidates.len() != keep) {
            return None;
        }
        let values = self
            .rows
            .iter()
            .flat_map(|r| r.candidates.iter().map(|c| c.0))
            .collect();
        let columns = self
            .rows
            .iter()
            .flat_map(|r| r.candidates.iter().map(|c| c.1))
            .collect();
        Some((values, columns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The brute-force answer: each row's `keep` largest (value, column), largest first.
    fn brute(matrix: &[f32], columns: usize, keep: usize, weights: Option<&[f64]>) -> Vec<Vec<(f64, i64)>> {
        matrix
            .chunks(columns)
            .map(|row| {
                let mut all: Vec<(f64, i64)> = row
                    .iter()
                    .enumerate()
                    .map(|(j, &s)| (f64::from(s) * weights.map_or(1.0, |w| w[j]), j as i64))
                    .collect();
                all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                all.truncate(keep);
                all
            })
            .collect()
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn blocks_give_the_brute_force_best_with_and_without_weights() {
        let (rows, columns, keep) = (37, 1000, 58);
        let matrix = pseudo_random(rows * columns, 7);
        let weights: Vec<f64> = pseudo_random(columns, 9).iter().map(|&w| f64::from(w) * 3.0).collect();
        for weights in [None, Some(&weights[..])] {
            let mut best = RunningBest::new(rows, keep);
            // Uneven blocks, offered column range by column range as the bank scan does.
            for (first, last) in [(0, 100), (100, 101), (101, 640), (640, 1000)] {
                let width = last - first;
                let block: Vec<f32> = matrix
                    .chunks(columns)
                    .flat_map(|row| row[first..last].iter().copied())
                    .collect();
                best.offer(&block, width, first as i64, weights.map(|w| &w[first..last]));
            }
            let (values, index) = best.finish().expect("every row has keep values");
            let expected = brute(&matrix, columns, keep, weights);
            for (r, want) in expected.iter().enumerate() {
                let got: Vec<(f64, i64)> = (0..keep).map(|i| (values[r * keep + i], index[r * keep + i])).collect();
                assert_eq!(&got, want, "row {r}");
            }
        }
    }

    #[test]
    fn fewer_values_than_keep_is_none() {
        let mut best = RunningBest::new(2, 5);
        best.offer(&[1.0, 2.0, 3.0, 4.0], 2, 0, None);
        assert!(best.finish().is_none());
    }

    #[test]
    fn nan_never_enters() {
        let mut best = RunningBest::new(1, 2);
        best.offer(&[f32::NAN, 0.5, 0.25, f32::NAN], 4, 0, None);
        assert_eq!(best.finish(), Some((vec![0.5, 0.25], vec![1, 2])));
    }
}
