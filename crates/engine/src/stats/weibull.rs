//! OpenMax's extreme-value models: the tails of the distances of each class's correctly classified
//! fit images to its mean logit vector (stored by the fit at a few Euclidean weights), and the
//! Weibull distribution fitted to a tail as libMR's `FitHigh` does (pytorch-ood's `LibNotMR`).
//!
//! libMR shifts the tail so that its smallest value lies at [`TRANSLATION`] and fits a two-parameter
//! Weibull (location 0) by maximum likelihood; its CDF at a shifted distance is the probability that
//! the distance is an outlier's. The fit is written here (about forty lines): no well-kept Rust crate
//! fits a Weibull by maximum likelihood (`statrs` has the distribution, not its fit), and scipy's
//! `exponweib.fit`, which pytorch-ood calls, is a general Nelder–Mead search on the same likelihood,
//! which this solves exactly (its score equation, by bisection).

/// The Euclidean weights the fit stores tails at (pytorch-ood's grid): the distance is
/// `w·‖ℓ − μ_c‖₂ + (1 − w)·(1 − cos(ℓ, μ_c))`.
pub const EUCLID_WEIGHTS: [f64; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];
/// The largest tail the fit keeps per class (the largest `tailsize`).
pub const TAIL_MAX: usize = 100;
/// libMR's shift of the tail: its smallest value goes to this.
pub const TRANSLATION: f64 = 10_000.0;

/// A Weibull distribution fitted to one class's tail, on distances shifted by `shift`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weibull {
    /// Added to a distance before the CDF: `TRANSLATION − min(tail)`.
    pub shift: f64,
    pub shape: f64,
    pub scale: f64,
}

impl Weibull {
    /// The maximum-likelihood fit to `tail` (finite values), or `None` for an empty tail. A tail
    /// whose values are all equal has no finite maximum-likelihood shape: its CDF is then the step
    /// at that value (shape +∞).
    pub fn fit(tail: &[f64]) -> Option<Weibull> {
        let min = tail.iter().copied().fold(f64::INFINITY, f64::min);
        let max = tail.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if tail.is_empty() || !min.is_finite() || !max.is_finite() {
            return None;
        }
        let shift = TRANSLATION - min;
        let top = max + shift;
        if max == min {
            return Some(Weibull {
                shift,
                shape: f64::INFINITY,
                scale: top,
            });
        }
        // In units of the largest value, y ∈ (0, 1]: the likelihood equation for the shape k,
        // Σ yᵏ ln y / Σ yᵏ − 1/k − mean(ln y) = 0, is increasing in k and free of the unit.
        let logs: Vec<f64> = tail.iter().map(|&x| ((x + shift) / top).ln()).collect();
        let mean_log = logs.iter().sum::<f64>() / logs.len() as f64;
        let equation = |k: f64| {
            let (mut weights, mut weighted) = (0.0, 0.0);
            for &l in &logs {
                let w = (k * l).exp();
                weights += w;
                weighted += w * l;
            }
            weighted / weights - 1.0 / k - mean_log
        };
        // Bisection on ln k over [1e-6, 1e12]: 200 halvings reach the float64 resolution of k.
        let (mut lo, mut hi) = (1e-6f64.ln(), 1e12f64.ln());
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if equation(mid.exp()) < 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let shape = (0.5 * (lo + hi)).exp();
        let mean_power = logs.iter().map(|&l| (shape * l).exp()).sum::<f64>() / logs.len() as f64;
        Some(Weibull {
            shift,
            shape,
            scale: top * mean_power.powf(1.0 / shape),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fitted shape and scale make the likelihood's two score equations zero on the shifted
    /// tail, whose smallest value is at [`TRANSLATION`].
    #[test]
    fn the_fit_solves_the_likelihood_equations() {
        // Quantiles of a Weibull(k = 3, λ = 2) at (i − 0.5)/n: a tail without randomness.
        let n = 500;
        let tail: Vec<f64> = (1..=n)
            .map(|i| 2.0 * (-(1.0 - (i as f64 - 0.5) / n as f64).ln()).powf(1.0 / 3.0))
            .collect();
        let w = Weibull::fit(&tail).unwrap();
        let xs: Vec<f64> = tail.iter().map(|x| x + w.shift).collect();
        let smallest = xs.iter().copied().fold(f64::INFINITY, f64::min);
        assert!((smallest - TRANSLATION).abs() < 1e-9, "{smallest}");
        // ∂/∂λ: mean (x/λ)ᵏ = 1; ∂/∂k: 1/k + mean ln x − mean (x/λ)ᵏ ln x = 0 (with the first).
        let m = xs.len() as f64;
        let power = xs.iter().map(|x| (x / w.scale).powf(w.shape)).sum::<f64>() / m;
        assert!((power - 1.0).abs() < 1e-9, "{power}");
        let score = 1.0 / w.shape + xs.iter().map(|x| x.ln()).sum::<f64>() / m
            - xs.iter().map(|x| (x / w.scale).powf(w.shape) * x.ln()).sum::<f64>() / m;
        assert!(score.abs() * w.shape < 1e-6, "{score} at shape {}", w.shape);
        // A tail this narrow next to its shift has a very large shape.
        assert!(w.shape > 1000.0, "{}", w.shape);
    }

    #[test]
    fn an_empty_tail_has_no_fit_and_a_constant_one_a_step() {
        assert_eq!(Weibull::fit(&[]), None);
        let w = Weibull::fit(&[2.0, 2.0]).unwrap();
        assert_eq!(w.shape, f64::INFINITY);
        assert_eq!(w.scale, TRANSLATION);
    }
}
