//! Streaming fit statistics in float64: per-class counts and feature sums, the sum of outer
//! products, and the softmax sums of KL matching, updated batch by batch in memory that does not
//! grow with the number of images.
//!
//! Features are accumulated after subtracting a shift (the first batch's mean), so that the
//! covariances `(Σ y yᵀ − N ȳ ȳᵀ)/N` lose no precision to large means.

use tch::{Device, Kind, Tensor};

/// The statistics of one pass, finished (float64 tensors on the device they were accumulated on).
pub struct Moments {
    /// Images per class (labels, or predictions where the folder has none).
    pub counts: Vec<u64>,
    /// `[C, D]`: each class's mean feature (rows of empty classes are NaN).
    pub class_means: Option<Tensor>,
    /// `[D, D]`: `(1/N) Σ_c Σ_{i∈c} (z_i − μ_c)(z_i − μ_c)ᵀ`.
    pub shared_cov: Option<Tensor>,
    /// `[D]` and `[D, D]`: the mean and covariance of all features.
    pub global_mean: Option<Tensor>,
    pub global_cov: Option<Tensor>,
    /// Images predicted as each class, and `[C, C]`: row k = mean softmax over those (NaN rows
    /// where none).
    pub predicted_counts: Vec<u64>,
    pub klm_templates: Tensor,
    /// `mean_i max_k ℓ_k(z_i)` with ℓ recomputed from the head in float64, when there is a head.
    pub mean_max_logit: Option<f64>,
    pub images: u64,
}

/// Accumulators of one fit pass.
pub struct Accumulator {
    classes: usize,
    device: Device,
    images: u64,
    counts: Vec<u64>,
    predicted_counts: Vec<u64>,
    /// `[C, C]` softmax sums by predicted class.
    softmax_sums: Tensor,
    /// `[D]` shift; `[C, D]` sums of shifted features by class; `[D, D]` sum of their outer products.
    shift: Option<Tensor>,
    class_sums: Option<Tensor>,
    outer: Option<Tensor>,
    /// `Σ_i max_k ℓ_k(z_i)`, when a head is given.
    max_logit_sum: Option<f64>,
}

type R<T> = Result<T, tch::TchError>;

impl Accumulator {
    pub fn new(classes: usize, device: Device) -> R<Self> {
        Ok(Accumulator {
            classes,
            device,
            images: 0,
            counts: vec![0; classes],
            predicted_counts: vec![0; classes],
            softmax_sums: Tensor::f_zeros([classes as i64, classes as i64], (Kind::Double, device))?,
            shift: None,
            class_sums: None,
            outer: None,
            max_logit_sum: None,
        })
    }

    /// Adds a batch: `logits` `[n, C]`, `features` `[n, D]` where the model has them, the class of
    /// each image (`labels`: folder labels, or `None` to use the predictions), and the head's
    /// float64 `(W, b)` for ViM's mean largest logit.
    pub fn add(
        &mut self,
        logits: &Tensor,
        features: Option<&Tensor>,
        labels: Option<&[usize]>,
        head: Option<(&Tensor, &Tensor)>,
    ) -> R<()> {
        let n = logits.size()[0];
        let logits64 = logits.f_to_kind(Kind::Double)?;
        let probs = logits64.f_softmax(1, Kind::Double)?;
        let pred = logits64.f_argmax(1, false)?;
        let pred_vec = Vec::<i64>::try_from(pred.f_to_device(Device::Cpu)?)?;
        for &p in &pred_vec {
            self.predicted_counts[p as usize] += 1;
        }
        self.softmax_sums = self.softmax_sums.f_index_add(0, &pred, &probs)?;
        let classes: Vec<i64> = match labels {
            Some(l) => l.iter().map(|&c| c as i64).collect(),
            None => pred_vec,
        };
        for &c in &classes {
            self.counts[c as usize] += 1;
        }
        if let Some(z) = features {
            let z = z.f_to_kind(Kind::Double)?;
            if self.shift.is_none() {
                let d = z.size()[1];
                self.shift = Some(z.f_mean_dim(&[0i64][..], false, Kind::Double)?);
                self.class_sums = Some(Tensor::f_zeros([self.classes as i64, d], (Kind::Double, self.device))?);
                self.outer = Some(Tensor::f_zeros([d, d], (Kind::Double, self.device))?);
            }
            if let (Some(shift), Some(sums), Some(outer)) = (&self.shift, &mut self.class_sums, &mut self.outer) {
                let y = z.f_sub(shift)?;
                let index = Tensor::from_slice(&classes).f_to_device(self.device)?;
                *sums = sums.f_index_add(0, &index, &y)?;
                *outer = outer.f_add(&y.f_transpose(0, 1)?.f_mm(&y)?)?;
            }
            if let Some((w, b)) = head {
                let l = z.f_linear(w, Some(b))?;
                let sum = l.f_amax([1], false)?.f_sum(Kind::Double)?.f_double_value(&[])?;
                self.max_logit_sum = Some(self.max_logit_sum.unwrap_or(0.0) + sum);
            }
        }
        self.images += n as u64;
        Ok(())
    }

    pub fn images(&self) -> u64 {
        self.images
    }

    /// The means and covariances of everything added.
    pub fn finish(&self) -> R<Moments> {
        let n = self.images.max(1) as f64;
        let count_tensor = |counts: &[u64]| -> R<Tensor> {
            let v: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
            Tensor::from_slice(&v).f_to_device(self.device)
        };
        // Rows of classes without images become NaN (0/0), and are left out downstream.
        let per_class =
            |sums: &Tensor, counts: &[u64]| -> R<Tensor> { sums.f_div(&count_tensor(counts)?.f_unsqueeze(1)?) };
        let klm_templates = per_class(&self.softmax_sums, &self.predicted_counts)?;
        let (mut class_means, mut shared_cov, mut global_mean, mut global_cov) = (None, None, None, None);
        if let (Some(shift), Some(sums), Some(outer)) = (&self.shift, &self.class_sums, &self.outer) {
            let counts = count_tensor(&self.counts)?;
            let present: Vec<i64> = (0..self.classes as i64)
                .filter(|&c| self.counts[c as usize] > 0)
                .collect();
            let present = Tensor::from_slice(&present).f_to_device(self.device)?;
            let sums_present = sums.f_index_select(0, &present)?;
            let counts_present = counts.f_index_select(0, &present)?;
            // Σ_c n_c ȳ_c ȳ_cᵀ = Σ_c s_c s_cᵀ / n_c.
            let between = sums_present
                .f_div(&counts_present.f_unsqueeze(1)?)?
                .f_transpose(0, 1)?
                .f_mm(&sums_present)?;
            shared_cov = Some(outer.f_sub(&between)?.f_div_scalar(n)?);
            let total = sums.f_sum_dim_intlist(&[0i64][..], false, Kind::Double)?;
            let mean_y = total.f_div_scalar(n)?;
            global_cov = Some(
                outer
                    .f_div_scalar(n)?
                    .f_sub(&mean_y.f_unsqueeze(1)?.f_mm(&mean_y.f_unsqueeze(0)?)?)?,
            );
            global_mean = Some(shift.f_add(&mean_y)?);
            class_means = Some(per_class(sums, &self.counts)?.f_add(&shift.f_unsqueeze(0)?)?);
        }
        Ok(Moments {
            counts: self.counts.clone(),
            class_means,
            shared_cov,
            global_mean,
            global_cov,
            predicted_counts: self.predicted_counts.clone(),
            klm_templates,
            mean_max_logit: self.max_logit_sum.map(|s| s / n),
            images: self.images,
        })
    }
}
