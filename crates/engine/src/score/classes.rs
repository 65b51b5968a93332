//! Class probabilities and the top classes of one image from its cached logits, for display (the
//! detail view and dropped-image cards), without the model.

/// How a row of cached logits is laid out.
#[derive(Debug, Clone, PartialEq)]
pub enum LogitLayout {
    /// One model's logits over all classes.
    Single,
    /// The members' logits, concatenated; each member's class indices in its output order.
    Ensemble { members: Vec<Vec<usize>> },
}

fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Class probabilities at T = 1: softmax of the logits, or an ensemble's averaged, scattered
/// member probabilities.
pub fn class_probabilities(row: &[f32], layout: &LogitLayout, num_classes: usize) -> Vec<f64> {
    match layout {
        LogitLayout::Single => softmax(row),
        LogitLayout::Ensemble { members } => {
            let mut averaged = vec![0.0; num_classes];
            for (chunk, classes) in member_chunks(row, members).zip(members) {
                for (p, &c) in softmax(chunk).into_iter().zip(classes) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_model_probabilities_are_the_softmax() {
        let p = class_probabilities(&[0.0, (2.0f32).ln()], &LogitLayout::Single, 2);
        assert!((p[0] - 1.0 / 3.0).abs() < 1e-7 && (p[1] - 2.0 / 3.0).abs() < 1e-7);
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
