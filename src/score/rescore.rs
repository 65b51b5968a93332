//! Scores and class probabilities from cached logits, without the model: what a change of T with
//! ε = 0 needs (SCORING.md's formulas on plain `f32`, in f64 for accuracy).

use rayon::prelude::*;

use super::settings::Method;

/// How a row of cached logits is laid out.
#[derive(Debug, Clone, PartialEq)]
pub enum LogitLayout {
    /// One model's logits over all classes.
    Single,
    /// The members' logits, concatenated; each member's class indices in its output order.
    Ensemble { members: Vec<Vec<usize>> },
}

fn softmax(logits: &[f32], t: f64) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = logits.iter().map(|&l| ((l as f64 - max) / t).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// `max_i softmax(ℓ/T)_i` without building the softmax: the largest logit's term is `exp(0) = 1`, so
/// the maximum is `1 / Σ_i exp((ℓ_i − max ℓ)/T)` (the same value, bit for bit, as dividing first).
fn max_softmax(logits: &[f32], t: f64) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    1.0 / logits.iter().map(|&l| ((l as f64 - max) / t).exp()).sum::<f64>()
}

fn logsumexp(logits: &[f32], t: f64) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64 / t;
    max + logits.iter().map(|&l| (l as f64 / t - max).exp()).sum::<f64>().ln()
}

/// The score of `method` at temperature `t` with ε = 0, from one row of logits; `None` when the
/// method's score is not a function of the logits alone (the confidence branch).
pub fn score_from_logits(method: Method, t: f64, row: &[f32], layout: &LogitLayout) -> Option<f32> {
    let value = match (method, layout) {
        (Method::Msp, LogitLayout::Single) => max_softmax(row, 1.0),
        (Method::Odin, LogitLayout::Single) => max_softmax(row, t),
        (Method::Energy, LogitLayout::Single) => t * logsumexp(row, t),
        (Method::Ensemble, LogitLayout::Ensemble { members }) => {
            let mut total = 0.0;
            for chunk in member_chunks(row, members) {
                let p = softmax(chunk, t);
                let entropy: f64 = -p.iter().filter(|&&q| q > 0.0).map(|q| q * q.ln()).sum::<f64>();
                total += max(&p) - entropy;
            }
            total
        }
        _ => return None,
    };
    Some(value as f32)
}

/// [`score_from_logits`] for each of `rows` rows of `width` logits, in parallel (rayon); NaN where the
/// method's score is not a function of the logits.
pub fn scores_from_logits(
    method: Method,
    t: f64,
    logits: &[f32],
    rows: usize,
    width: usize,
    layout: &LogitLayout,
) -> Vec<f32> {
    (0..rows)
        .into_par_iter()
        .map(|i| {
            let row = logits.get(i * width..(i + 1) * width).unwrap_or(&[]);
            score_from_logits(method, t, row, layout).unwrap_or(f32::NAN)
        })
        .collect()
}

/// Class probabilities at T = 1: softmax of the logits, or an ensemble's averaged, scattered
/// member probabilities.
pub fn class_probabilities(row: &[f32], layout: &LogitLayout, num_classes: usize) -> Vec<f64> {
    match layout {
        LogitLayout::Single => softmax(row, 1.0),
        LogitLayout::Ensemble { members } => {
            let mut averaged = vec![0.0; num_classes];
            for (chunk, classes) in member_chunks(row, members).zip(members) {
                for (p, &c) in softmax(chunk, 1.0).into_iter().zip(classes) {
                    averaged[c] += p / members.len() as f64;
                }
            }
            averaged
        }
    }
}

/// The `k` most probable classes, best first.
pub fn top_classes(probabilities: &[f64], k: usize) -> Vec<(usize, f64)> {
    let mut ranked: Vec<(usize, f64)> = probabilities.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(k);
    ranked
}

fn member_chunks<'a>(row: &'a [f32], members: &'a [Vec<usize>]) -> impl Iterator<Item = &'a [f32]> + 'a {
    let mut start = 0;
    members.iter().map(move |m| {
        let chunk = &row[start..start + m.len()];
        start += m.len();
        chunk
    })
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odin_at_t1_equals_msp_and_energy_is_logsumexp() {
        let row = [1.0, 2.0, 0.5];
        let msp = score_from_logits(Method::Msp, 1.0, &row, &LogitLayout::Single).unwrap();
        assert_eq!(
            score_from_logits(Method::Odin, 1.0, &row, &LogitLayout::Single),
            Some(msp)
        );
        let energy = score_from_logits(Method::Energy, 2.0, &row, &LogitLayout::Single).unwrap() as f64;
        let expected = 2.0 * row.iter().map(|&l| (l as f64 / 2.0).exp()).sum::<f64>().ln();
        assert!((energy - expected).abs() < 1e-6);
        assert_eq!(
            score_from_logits(Method::Confidence, 1.0, &row, &LogitLayout::Single),
            None
        );
    }

    #[test]
    fn max_softmax_equals_the_largest_softmax_entry_bit_for_bit() {
        let mut state = 7u64;
        for _ in 0..1000 {
            let row: Vec<f32> = (0..10)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 40.0
                })
                .collect();
            for t in [1.0, 7.5, 1000.0] {
                assert_eq!(max_softmax(&row, t), max(&softmax(&row, t)), "{row:?} T={t}");
            }
        }
    }

    #[test]
    fn scores_of_all_rows_equal_row_by_row_scores() {
        let logits: Vec<f32> = (0..60).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        let all = scores_from_logits(Method::Energy, 3.0, &logits, 6, 10, &LogitLayout::Single);
        let one_by_one: Vec<f32> = logits
            .chunks(10)
            .map(|row| score_from_logits(Method::Energy, 3.0, row, &LogitLayout::Single).unwrap())
            .collect();
        assert_eq!(all, one_by_one);
        let confidence = scores_from_logits(Method::Confidence, 1.0, &logits, 6, 10, &LogitLayout::Single);
        assert!(confidence.iter().all(|s| s.is_nan()));
    }

    #[test]
    fn ensemble_probabilities_scatter_and_average() {
        let layout = LogitLayout::Ensemble {
            members: vec![vec![0, 1], vec![1, 2]],
        };
        let p = class_probabilities(&[0.0, 0.0, 0.0, 0.0], &layout, 3);
        assert_eq!(p, vec![0.25, 0.5, 0.25]);
        assert_eq!(top_classes(&p, 2), vec![(1, 0.5), (0, 0.25)]);
    }
}
