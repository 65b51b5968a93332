//! Each class's Gaussian for `gmm`: the fit's per-class covariances Σ_c (an opt-in statistic, C·D²
//! float64 values, refused above [`LIMIT_BYTES`]), and, per ridge `reg`, the Cholesky factors of
//! `Σ_c + reg·I` with each class's log normaliser, made once and reused for every batch.

use tch::{Kind, Tensor};

/// The fit tensor of the per-class covariances, `[C, D, D]` float64 (NaN where a class has no image).
pub const CLASS_COVARIANCES: &str = "class_covariances";

/// The most bytes of per-class covariances a fit keeps (4 GB: 1000 classes of 512 features take
/// 2.1 GB; the factors of one `reg` take as much again when scoring).
pub const LIMIT_BYTES: f64 = 4e9;

/// The bytes of `classes` covariances of `width × width` float64 values.
pub fn covariance_bytes(classes: usize, width: usize) -> f64 {
    classes as f64 * (width as f64).powi(2) * 8.0
}

/// Refuses per-class covariances over [`LIMIT_BYTES`], before anything is allocated; one line saying
/// what to use instead.
pub fn check_size(classes: usize, width: usize) -> Result<(), String> {
    let bytes = covariance_bytes(classes, width);
    if bytes <= LIMIT_BYTES {
        return Ok(());
    }
    Err(format!(
        "gmm needs C·D² = {classes}·{width}² float64 values ({:.1} GB) of per-class covariances, over oodscope's limit of {:.0} GB: use mahalanobis (one shared covariance) or rmds instead",
        bytes / 1e9,
        LIMIT_BYTES / 1e9
    ))
}

/// Classes per chunk while scoring: `chunk · N · D` differences held at once stay under this many
/// values (64 MB of float64).
const CHUNK_VALUES: i64 = 1 << 23;

/// The Gaussians `N(μ_k, Σ_k + reg·I)` of the present classes, with their weights, ready to score.
pub struct ClassGaussians {
    /// `[K, D]`.
    means: Tensor,
    /// `[K, D, D]`: lower Cholesky factors L_k, `L_k L_kᵀ = Σ_k + reg·I`.
    factors: Tensor,
    /// `[K]`: `log π_k − Σ_i log (L_k)_ii − (D/2)·log 2π`.
    log_norms: Tensor,
}

impl ClassGaussians {
    /// From the present classes' means `[K, D]`, covariances `[K, D, D]` (float64, one device), image
    /// counts and names (for messages). A matrix that is not positive definite even with the ridge
    /// is an error naming its class, never a panic.
    pub fn new(
        means: &Tensor,
        covariances: &Tensor,
        counts: &[u64],
        names: &[String],
        reg: f64,
    ) -> Result<ClassGaussians, String> {
        let torch = |e: tch::TchError| crate::model::first_line(&e.to_string());
        let size = covariances.size();
        let (k, d) = match size.as_slice() {
            &[k, d, e] if d == e && k as usize == counts.len() => (k, d),
            _ => {
                return Err(format!(
                    "the class covariances have shape {size:?}, expected [{}, D, D]",
                    counts.len()
                ));
            }
        };
        let device = covariances.device();
        let factors = Tensor::f_zeros([k, d, d], (Kind::Double, device)).map_err(torch)?;
        let ridge = Tensor::f_eye(d, (Kind::Double, device))
            .and_then(|i| i.f_mul_scalar(reg))
            .map_err(torch)?;
        // Factored a few classes at a time, into place: the whole `Σ + reg·I` is never held beside
        // the covariances and the factors.
        let step = (CHUNK_VALUES / (d * d).max(1)).max(1);
        let mut start = 0;
        while start < k {
            let len = step.min(k - start);
            let chunk = covariances
                .f_narrow(0, start, len)
                .and_then(|c| c.f_add(&ridge))
                .map_err(torch)?;
            let (factor, info) = chunk.f_linalg_cholesky_ex(false, false).map_err(torch)?;
            let info = crate::tensor::to_vec_i64(&info).map_err(torch)?;
            if let Some(bad) = info.iter().position(|&i| i != 0) {
                let class = start as usize + bad;
                return Err(format!(
                    "gmm: the covariance of class `{}` ({} fit images) plus reg·I is not positive definite at reg = {reg}: give a larger reg (e.g. --param gmm.reg={})",
                    names.get(class).map_or("?", String::as_str),
                    counts[class],
                    suggest(reg)
                ));
            }
            factors
                .f_narrow(0, start, len)
                .and_then(|mut f| f.f_copy_(&factor))
                .map_err(torch)?;
            start += len;
        }
        let total: u64 = counts.iter().sum();
        let weights: Vec<f64> = counts.iter().map(|&n| (n as f64 / total.max(1) as f64).ln()).collect();
        let half_log_det = factors
            .f_diagonal(0, 1, 2)
            .and_then(|diag| diag.f_log())
            .and_then(|l| l.f_sum_dim_intlist(&[1i64][..], false, Kind::Double))
            .map_err(torch)?;
        let log_norms = Tensor::from_slice(&weights)
            .f_to_device(device)
            .and_then(|w| w.f_sub(&half_log_det))
            .and_then(|w| w.f_sub_scalar(0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln()))
            .map_err(torch)?;
        Ok(ClassGaussians {
            means: means.shallow_clone(),
            factors,
            log_norms,
        })
    }

    /// `[N]`: `log Σ_k π_k N(z | μ_k, Σ_k + reg·I)` for each row of `z` (float64 `[N, D]`).
    pub fn log_likelihood(&self, z: &Tensor) -> Result<Tensor, tch::TchError> {
        let (n, d) = (z.size()[0], z.size()[1]);
        let k = self.means.size()[0];
        let step = (CHUNK_VALUES / (n * d).max(1)).max(1);
        let mut parts = Vec::new();
        let mut start = 0;
        while start < k {
            let len = step.min(k - start);
            // [len, D, N]: z − μ_k as columns, then x = L_k⁻¹ (z − μ_k), and ‖x‖² the squared
            // Mahalanobis distance under Σ_k + reg·I.
            let diff = z
                .f_unsqueeze(0)?
                .f_sub(&self.means.f_narrow(0, start, len)?.f_unsqueeze(1)?)?
                .f_transpose(1, 2)?;
            let x = self
                .factors
                .f_narrow(0, start, len)?
                .f_linalg_solve_triangular(&diff, false, true, false)?;
            let squared = x.f_square()?.f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?;
            let log_density = self
                .log_norms
                .f_narrow(0, start, len)?
                .f_unsqueeze(1)?
                .f_sub(&squared.f_mul_scalar(0.5)?)?;
            parts.push(log_density);
            start += len;
        }
        Tensor::f_cat(&parts, 0)?.f_logsumexp([0i64], false)
    }

    /// Another handle on the same tensors.
    pub fn shallow_clone(&self) -> ClassGaussians {
        ClassGaussians {
            means: self.means.shallow_clone(),
            factors: self.factors.shallow_clone(),
            log_norms: self.log_norms.shallow_clone(),
        }
    }
}

/// A ridge a hundred times `reg` (1e-6 when it was 0), to suggest.
fn suggest(reg: f64) -> String {
    let next = if reg > 0.0 { reg * 100.0 } else { 1e-6 };
    format!("{next:e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn too_many_covariances_are_refused_with_their_size_and_what_to_use() {
        assert!(check_size(1000, 512).is_ok());
        let message = check_size(1000, 2048).unwrap_err();
        assert!(
            message.contains("C·D² = 1000·2048²") && message.contains("(33.6 GB)") && message.contains("mahalanobis"),
            "{message}"
        );
    }

    /// The mixture's log-density equals a direct float64 evaluation with the inverse and the
    /// determinant, and a singular covariance without a ridge is refused naming its class.
    #[test]
    fn log_likelihood_is_the_mixture_of_the_class_gaussians() {
        tch::manual_seed(3);
        let opts = (Kind::Double, Device::Cpu);
        let (k, d, n) = (3i64, 4i64, 5i64);
        let a = Tensor::randn([k, d, d], opts);
        let cov = a.matmul(&a.transpose(1, 2)) + Tensor::eye(d, opts).unsqueeze(0) * 0.1;
        let means = Tensor::randn([k, d], opts);
        let z = Tensor::randn([n, d], opts);
        let counts = [2u64, 5, 3];
        let names: Vec<String> = ["a", "b", "c"].iter().map(ToString::to_string).collect();
        let reg = 0.01;
        let g = ClassGaussians::new(&means, &cov, &counts, &names, reg).unwrap();
        let ours = Vec::<f64>::try_from(g.log_likelihood(&z).unwrap()).unwrap();
        for (i, &got) in ours.iter().enumerate() {
            let mut terms = Vec::new();
            for c in 0..k {
                let s = cov.get(c) + Tensor::eye(d, opts) * reg;
                let diff = z.get(i as i64) - means.get(c);
                let m = diff.dot(&s.inverse().mv(&diff)).double_value(&[]);
                let log_det = s.logdet().double_value(&[]);
                let pi = counts[c as usize] as f64 / 10.0;
                terms.push(pi.ln() - 0.5 * (m + log_det + d as f64 * (2.0 * std::f64::consts::PI).ln()));
            }
            let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let want = top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln();
            assert!((got - want).abs() <= 1e-10 * want.abs(), "row {i}: {got} vs {want}");
        }
        let singular = Tensor::zeros([k, d, d], opts);
        let message = ClassGaussians::new(&means, &singular, &counts, &names, 0.0)
            .err()
            .unwrap();
        assert!(
            message.contains("class `a` (2 fit images)") && message.contains("give a larger reg"),
            "{message}"
        );
    }
}
