//! Exact percentiles of a stream too large to hold (every entry of the fit features: N·D values),
//! as numpy's `percentile` (linear interpolation) computes them, in bounded memory.
//!
//! Written by hand because no crate does exact multi-rank selection over a re-readable stream: a
//! radix select on the values' order-preserving 32-bit keys, 12 + 10 + 10 bits in three passes. The
//! first pass counts every value's top 12 bits; each later pass counts the next bits of the values
//! in the buckets that hold a wanted rank (at most one histogram of 1024 counts per wanted rank).

/// Bits resolved by each pass, most significant first.
const PASSES: [u32; 3] = [12, 10, 10];

/// A source that can be read from the start any number of times, in chunks.
pub trait Rereadable {
    /// Calls `f` on every chunk of values, in order, from the start.
    fn for_each_chunk(&mut self, f: &mut dyn FnMut(&[f32])) -> std::io::Result<()>;
}

impl Rereadable for &[f32] {
    fn for_each_chunk(&mut self, f: &mut dyn FnMut(&[f32])) -> std::io::Result<()> {
        for chunk in self.chunks(1 << 16) {
            f(chunk);
        }
        Ok(())
    }
}

/// An `f32`'s key: unsigned, in the same order as the values (negative values below positive).
fn key(v: f32) -> u32 {
    let bits = v.to_bits();
    if bits >> 31 == 1 { !bits } else { bits | 0x8000_0000 }
}

fn value(key: u32) -> f32 {
    if key >> 31 == 1 {
        f32::from_bits(key & 0x7fff_ffff)
    } else {
        f32::from_bits(!key)
    }
}

/// The values at the given 0-based ranks (of the sorted stream of `n` values), exactly.
pub fn values_at_ranks(source: &mut dyn Rereadable, n: u64, ranks: &[u64]) -> std::io::Result<Vec<f32>> {
    // For each rank: the key's bits found so far, and its rank among the values sharing them.
    let mut state: Vec<(u32, u64)> = ranks.iter().map(|&r| (0, r.min(n.saturating_sub(1)))).collect();
    let mut resolved = 0;
    for bits in PASSES {
        let shift = 32 - resolved - bits;
        let prefix_of = |k: u32| if resolved == 0 { 0 } else { k >> (32 - resolved) };
        // One histogram per distinct wanted prefix, found through a table indexed by the prefix
        // (at most 2²² entries): a lookup per value, which a hash map made the pass's main cost.
        let mut slot_of = vec![u32::MAX; 1usize << resolved];
        let mut histograms: Vec<Vec<u64>> = Vec::new();
        for &(prefix, _) in &state {
            if slot_of[prefix as usize] == u32::MAX {
                slot_of[prefix as usize] = histograms.len() as u32;
                histograms.push(vec![0u64; 1 << bits]);
            }
        }
        let mask = (1u32 << bits) - 1;
        source.for_each_chunk(&mut |chunk| {
            for &v in chunk {
                let k = key(v);
                let slot = slot_of[prefix_of(k) as usize];
                if slot != u32::MAX {
                    histograms[slot as usize][((k >> shift) & mask) as usize] += 1;
                }
            }
        })?;
        for (prefix, rank) in &mut state {
            let h = &histograms[slot_of[*prefix as usize] as usize];
            let mut below = 0;
            let digit = h
                .iter()
                .position(|&count| {
                    if *rank < below + count {
                        true
                    } else {
                        below += count;
                        false
                    }
                })
                .unwrap_or(h.len() - 1);
            *rank -= below.min(*rank);
            *prefix = (*prefix << bits) | digit as u32;
        }
        resolved += bits;
    }
    Ok(state.into_iter().map(|(k, _)| value(k)).collect())
}

/// numpy's `percentile(values, q)` (method "linear") for each `q` in `levels` (0–100), over a stream
/// of `n` values.
pub fn percentiles(source: &mut dyn Rereadable, n: u64, levels: &[f64]) -> std::io::Result<Vec<f64>> {
    if n == 0 {
        return Ok(vec![f64::NAN; levels.len()]);
    }
    let positions: Vec<(u64, u64, f64)> = levels
        .iter()
        .map(|&q| {
            let virtual_index = (q / 100.0) * (n - 1) as f64;
            let below = virtual_index.floor().clamp(0.0, (n - 1) as f64);
            let above = (below + 1.0).min((n - 1) as f64);
            (below as u64, above as u64, virtual_index - below)
        })
        .collect();
    let mut ranks: Vec<u64> = positions.iter().flat_map(|&(a, b, _)| [a, b]).collect();
    ranks.sort_unstable();
    ranks.dedup();
    let found = values_at_ranks(source, n, &ranks)?;
    let at = |r: u64| f64::from(found[ranks.binary_search(&r).unwrap_or(0)]);
    Ok(positions.iter().map(|&(a, b, t)| lerp(at(a), at(b), t)).collect())
}

/// numpy's `percentile(values, q)` of values already sorted ascending (a small array in memory).
pub fn percentile_of_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let virtual_index = (q / 100.0) * (n - 1) as f64;
    let below = virtual_index.floor().clamp(0.0, (n - 1) as f64);
    let above = (below + 1.0).min((n - 1) as f64);
    lerp(sorted[below as usize], sorted[above as usize], virtual_index - below)
}

/// numpy's `quantile(Z, q, axis=0)` (method "linear") for each `q` in `levels` (0–1), of a stream
/// of `n` rows of `width` values (row after row, chunked anywhere): `[level][column]`.
///
/// Each column is gathered and sorted in memory, as many columns at a time as `budget` values
/// allow (one pass over the stream per group): exact and simple, where a radix select per column
/// would need a histogram per column and wanted rank.
pub fn column_quantiles(
    source: &mut dyn Rereadable,
    width: usize,
    n: usize,
    levels: &[f64],
    budget: usize,
) -> std::io::Result<Vec<Vec<f64>>> {
    let mut out = vec![vec![f64::NAN; width]; levels.len()];
    if n == 0 || width == 0 {
        return Ok(out);
    }
    let group = (budget / n).clamp(1, width);
    let mut first = 0;
    while first < width {
        let end = (first + group).min(width);
        let mut columns: Vec<Vec<f32>> = (first..end).map(|_| Vec::with_capacity(n)).collect();
        let mut position = 0usize;
        source.for_each_chunk(&mut |chunk| {
            for &v in chunk {
                let column = position % width;
                if (first..end).contains(&column) {
                    columns[column - first].push(v);
                }
                position += 1;
            }
        })?;
        for (offset, column) in columns.iter_mut().enumerate() {
            column.sort_unstable_by(f32::total_cmp);
            let sorted: Vec<f64> = column.iter().map(|&v| f64::from(v)).collect();
            for (row, &q) in out.iter_mut().zip(levels) {
                row[first + offset] = percentile_of_sorted(&sorted, q * 100.0);
            }
        }
        first = end;
    }
    Ok(out)
}

/// numpy's `_lerp`: `a + (b − a)·t`, computed from `b` when `t ≥ 0.5`.
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let diff = b - a;
    if t >= 0.5 { b - diff * (1.0 - t) } else { a + diff * t }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numpy_style(values: &[f32], q: f64) -> f64 {
        let mut sorted: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        sorted.sort_by(f64::total_cmp);
        percentile_of_sorted(&sorted, q)
    }

    #[test]
    fn keys_keep_the_order_of_values() {
        let values = [-3.5f32, -0.0, 0.0, 1e-30, 0.5, 2.0, f32::MAX, f32::MIN];
        for a in values {
            for b in values {
                if a < b {
                    assert!(key(a) < key(b), "{a} {b}");
                }
            }
            assert_eq!(value(key(a)).to_bits(), a.to_bits());
        }
    }

    #[test]
    fn percentiles_equal_a_full_sort() {
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        // Many exact zeros (as ReLU features have), ties, negatives and a long tail.
        let values: Vec<f32> = (0..50_000)
            .map(|i| match i % 5 {
                0 => 0.0,
                1 => (next() * 10.0).round(),
                2 => -next(),
                _ => next().powi(3) * 100.0,
            })
            .collect();
        let levels: Vec<f64> = (0..=1000).map(|i| i as f64 / 10.0).collect();
        let ours = percentiles(&mut values.as_slice(), values.len() as u64, &levels).unwrap();
        for (q, got) in levels.iter().zip(ours) {
            assert_eq!(got, numpy_style(&values, *q), "q = {q}");
        }
        // Per column, in groups of any size, as a sort of each column.
        let width = 7;
        let rows = values.len() / width;
        let body = &values[..rows * width];
        let fractions: Vec<f64> = (0..=100).map(|i| i as f64 / 100.0).collect();
        let whole = column_quantiles(&mut &body[..], width, rows, &fractions, usize::MAX).unwrap();
        let grouped = column_quantiles(&mut &body[..], width, rows, &fractions, 2 * rows).unwrap();
        assert_eq!(whole, grouped);
        for column in 0..width {
            let own: Vec<f32> = values.iter().skip(column).step_by(width).take(rows).copied().collect();
            for (row, q) in whole.iter().zip(&fractions) {
                assert_eq!(row[column], numpy_style(&own, q * 100.0), "column {column}, q = {q}");
            }
        }
        let one = [7.0f32];
        assert_eq!(
            percentiles(&mut one.as_slice(), 1, &[0.0, 50.0, 100.0]).unwrap(),
            [7.0; 3]
        );
    }
}
