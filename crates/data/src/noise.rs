//! Synthetic OOD images: uniform and Gaussian noise, seeded per image so runs are reproducible.

use std::fmt;

use crate::rng::SplitMix64;

/// Which noise a synthetic set holds (docs/methods.md: "Synthetic OOD sets").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseKind {
    /// Every pixel i.i.d. U[0, 1].
    Uniform,
    /// Every pixel i.i.d. N(0.5, 1), clipped to [0, 1].
    Gaussian,
}

impl NoiseKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::Gaussian => "gaussian",
        }
    }

    fn seed(self) -> u64 {
        match self {
            Self::Uniform => 0x6f6f_6473_636f_7065,
            Self::Gaussian => 0x9e37_79b9_7f4a_7c15,
        }
    }
}

impl fmt::Display for NoiseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Image `index` of a noise set: `len` pixel values in [0, 1]. The same index always gives the same image.
pub fn noise_image(kind: NoiseKind, index: usize, len: usize) -> Vec<f32> {
    let mut rng = SplitMix64(kind.seed() ^ (index as u64).wrapping_mul(0xd1b5_4a32_d192_ed03));
    match kind {
        NoiseKind::Uniform => (0..len).map(|_| rng.next_unit_f32()).collect(),
        NoiseKind::Gaussian => (0..len)
            .map(|_| (0.5 + rng.next_standard_normal() as f32).clamp(0.0, 1.0))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_index_same_image_and_different_index_differs() {
        assert_eq!(
            noise_image(NoiseKind::Uniform, 3, 64),
            noise_image(NoiseKind::Uniform, 3, 64)
        );
        assert_ne!(
            noise_image(NoiseKind::Uniform, 3, 64),
            noise_image(NoiseKind::Uniform, 4, 64)
        );
    }

    #[test]
    fn uniform_statistics() {
        let v = noise_image(NoiseKind::Uniform, 0, 100_000);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        assert!(v.iter().all(|x| (0.0..1.0).contains(x)));
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn gaussian_is_clipped_with_mass_at_the_ends() {
        let v = noise_image(NoiseKind::Gaussian, 0, 100_000);
        assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
        // P(N(0.5,1) < 0) = Φ(−0.5) ≈ 0.3085.
        let at_zero = v.iter().filter(|&&x| x == 0.0).count() as f64 / v.len() as f64;
        assert!((at_zero - 0.3085).abs() < 0.01, "{at_zero}");
    }
}
