//! Streaming fit statistics in float64: per-class counts and feature sums, the sum of outer
//! products, the softmax sums of KL matching, the feature sums of the correctly classified images
//! (SHE) and temperature scaling's NLL grid, updated batch by batch in memory that does not grow
//! with the number of images.
//!
//! Features are accumulated after subtracting a shift (the first batch's mean), so that the
//! covariances `(Σ y yᵀ − N ȳ ȳᵀ)/N` lose no precision to large means. Every sum carries its rounding
//! error, so the shards of a fit (`fit --shard`) merge into exactly the sums of a single pass.

use tch::{Device, Kind, Tensor};

use super::block_scatter::BlockScatter;

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
    /// `[C, D]`: each class's mean feature over its correctly classified images (SHE's patterns;
    /// rows of classes without one are 0).
    pub she_patterns: Option<Tensor>,
    /// Temperature scaling's fitted T, when the images have labels.
    pub temperature: Option<f64>,
    /// Each inner block's class means and shared covariance (multi-mahalanobis), in card order.
    pub blocks: Vec<super::block_scatter::BlockMoments>,
    /// Gram's bounds and held-out deviations, when the model has blocks.
    pub gram: Option<super::gram_bounds::GramFit>,
    pub images: u64,
}

/// A float64 sum kept with its rounding error, element by element (Knuth's TwoSum): `value + error`
/// holds the exact sum of the terms to about ε², so the total rounds to the same value whatever
/// order the terms were added in, or however partial sums (of shards) are merged.
pub struct CompensatedSum {
    value: Tensor,
    error: Tensor,
}

impl CompensatedSum {
    pub fn zeros(shape: &[i64], device: Device) -> R<Self> {
        Ok(CompensatedSum {
            value: Tensor::f_zeros(shape, (Kind::Double, device))?,
            error: Tensor::f_zeros(shape, (Kind::Double, device))?,
        })
    }

    /// A sum read back from its two parts.
    pub fn from_parts(value: Tensor, error: Tensor) -> Self {
        CompensatedSum { value, error }
    }

    /// The stored value and error.
    pub fn parts(&self) -> (&Tensor, &Tensor) {
        (&self.value, &self.error)
    }

    /// Adds `t` (float64, the sum's shape).
    pub fn add(&mut self, t: &Tensor) -> R<()> {
        let s = self.value.f_add(t)?;
        let t_part = s.f_sub(&self.value)?;
        let value_part = s.f_sub(&t_part)?;
        let rounding = self.value.f_sub(&value_part)?.f_add(&t.f_sub(&t_part)?)?;
        self.error = self.error.f_add(&rounding)?;
        self.value = s;
        Ok(())
    }

    /// Adds another sum of the same shape.
    pub fn merge(&mut self, other: &CompensatedSum) -> R<()> {
        self.add(&other.value)?;
        self.error = self.error.f_add(&other.error)?;
        Ok(())
    }

    pub fn total(&self) -> R<Tensor> {
        self.value.f_add(&self.error)
    }

    pub(super) fn copy(&self) -> Self {
        CompensatedSum {
            value: self.value.copy(),
            error: self.error.copy(),
        }
    }
}

/// Accumulators of one fit pass, or of several merged (the shards of a fit).
pub struct Accumulator {
    classes: usize,
    device: Device,
    images: u64,
    counts: Vec<u64>,
    predicted_counts: Vec<u64>,
    /// `[C, C]` softmax sums by predicted class.
    softmax_sums: CompensatedSum,
    /// `[D]` shift; `[C, D]` sums of shifted features by class; `[D, D]` sum of their outer products.
    shift: Option<Tensor>,
    class_sums: Option<CompensatedSum>,
    outer: Option<CompensatedSum>,
    /// `Σ_i max_k ℓ_k(z_i)` (a 0-d tensor), when a head is given.
    max_logit_sum: Option<CompensatedSum>,
    /// `[C, D]` sums of the (unshifted) features of correctly classified images, and `[C]` their
    /// counts.
    correct_sums: Option<CompensatedSum>,
    correct_counts: Option<CompensatedSum>,
    /// `[3, G]`: temperature scaling's NLL grid ([`super::temperature`]), when labels are given.
    nll_grid: Option<CompensatedSum>,
    /// The listing index of the next image added (a shard starts at its first image's), for the
    /// temperature's image budget ([`super::temperature::image_budget`]).
    next_index: u64,
    /// The inner blocks' class sums (multi-mahalanobis), when the model has blocks.
    blocks: BlockScatter,
}

type R<T> = Result<T, tch::TchError>;

/// Adds `t` to the sum in `slot`, starting it at zero.
fn add_to(slot: &mut Option<CompensatedSum>, t: &Tensor) -> R<()> {
    if slot.is_none() {
        *slot = Some(CompensatedSum::zeros(&t.size(), t.device())?);
    }
    match slot {
        Some(sum) => sum.add(t),
        None => Ok(()),
    }
}

/// The names under which [`Accumulator::named_sums`] gives the sums (each also as `<name>.error`).
pub const SUM_NAMES: [&str; 7] = [
    "softmax_sums",
    "class_sums",
    "outer",
    "max_logit_sum",
    "correct_sums",
    "correct_counts",
    "nll_grid",
];

impl Accumulator {
    pub fn new(classes: usize, device: Device) -> R<Self> {
        Ok(Accumulator {
            classes,
            device,
            images: 0,
            counts: vec![0; classes],
            predicted_counts: vec![0; classes],
            softmax_sums: CompensatedSum::zeros(&[classes as i64, classes as i64], device)?,
            shift: None,
            class_sums: None,
            outer: None,
            max_logit_sum: None,
            correct_sums: None,
            correct_counts: None,
            nll_grid: None,
            next_index: 0,
            blocks: BlockScatter::default(),
        })
    }

    /// Where in the listing this accumulator's first image is (a shard's first image; 0 for a
    /// whole fit), so that the temperature's image budget covers the same images either way.
    pub fn set_first_index(&mut self, first: u64) {
        self.next_index = first;
    }

    /// The shift a batch of features `[n, D]` gives when it is the first: its mean, in float64.
    pub fn shift_of(features: &Tensor) -> R<Tensor> {
        features
            .f_to_kind(Kind::Double)?
            .f_mean_dim(&[0i64][..], false, Kind::Double)
    }

    /// Fixes the shift before the first batch (a shard uses the one of the whole listing's first
    /// batch, so that the sums of all shards add up exactly).
    pub fn set_shift(&mut self, shift: Tensor) -> R<()> {
        let d = shift.size()[0];
        self.class_sums = Some(CompensatedSum::zeros(&[self.classes as i64, d], self.device)?);
        self.outer = Some(CompensatedSum::zeros(&[d, d], self.device)?);
        self.shift = Some(shift.f_to_device(self.device)?);
        Ok(())
    }

    pub fn shift(&self) -> Option<&Tensor> {
        self.shift.as_ref()
    }

    /// Adds a batch: `logits` `[n, C]`, `features` `[n, D]` where the model has them, the class of
    /// each image (`labels`: folder labels, or `None` to use the predictions), the head's float64
    /// `(W, b)` for ViM's mean largest logit, and the inner blocks' spatial means (none without).
    pub fn add(
        &mut self,
        logits: &Tensor,
        features: Option<&Tensor>,
        labels: Option<&[usize]>,
        head: Option<(&Tensor, &Tensor)>,
        blocks: (&[Tensor], Option<&Tensor>),
    ) -> R<()> {
        let n = logits.size()[0];
        let logits64 = logits.f_to_kind(Kind::Double)?;
        let probs = logits64.f_softmax(1, Kind::Double)?;
        let pred = logits64.f_argmax(1, false)?;
        let pred_vec = Vec::<i64>::try_from(pred.f_to_device(Device::Cpu)?)?;
        for &p in &pred_vec {
            self.predicted_counts[p as usize] += 1;
        }
        let c = self.classes as i64;
        let batch_softmax = Tensor::f_zeros([c, c], (Kind::Double, self.device))?.f_index_add(0, &pred, &probs)?;
        self.softmax_sums.add(&batch_softmax)?;
        let classes: Vec<i64> = match labels {
            Some(l) => l.iter().map(|&c| c as i64).collect(),
            None => pred_vec,
        };
        for &c in &classes {
            self.counts[c as usize] += 1;
        }
        let index = Tensor::from_slice(&classes).f_to_device(self.device)?;
        let (block_means, gram) = blocks;
        if !block_means.is_empty() {
            self.blocks
                .add(block_means, gram, &index, self.next_index, self.classes, self.device)?;
        }
        // The temperature's grid costs GRID passes over a batch's logits: it takes only the
        // listing's first images, up to a budget of logit values.
        let budget = super::temperature::image_budget(self.classes);
        let within = budget.saturating_sub(self.next_index).min(n as u64) as i64;
        self.next_index += n as u64;
        if labels.is_some() && within > 0 {
            let grid =
                super::temperature::batch_sums(&logits64.f_narrow(0, 0, within)?, &index.f_narrow(0, 0, within)?)?;
            add_to(&mut self.nll_grid, &grid)?;
        }
        if let Some(z32) = features {
            let z = z32.f_to_kind(Kind::Double)?;
            let correct = pred.f_eq_tensor(&index)?.f_to_kind(Kind::Double)?;
            let d = z.size()[1];
            let sums = Tensor::f_zeros([c, d], (Kind::Double, self.device))?.f_index_add(
                0,
                &index,
                &z.f_mul(&correct.f_unsqueeze(1)?)?,
            )?;
            add_to(&mut self.correct_sums, &sums)?;
            let counts = Tensor::f_zeros([c], (Kind::Double, self.device))?.f_index_add(0, &index, &correct)?;
            add_to(&mut self.correct_counts, &counts)?;
            if self.shift.is_none() {
                self.set_shift(Self::shift_of(&z)?)?;
            }
            if let (Some(shift), Some(sums), Some(outer)) = (&self.shift, &mut self.class_sums, &mut self.outer) {
                let y = z.f_sub(shift)?;
                let batch_sums = Tensor::f_zeros([c, d], (Kind::Double, self.device))?.f_index_add(0, &index, &y)?;
                sums.add(&batch_sums)?;
                outer.add(&y.f_transpose(0, 1)?.f_mm(&y)?)?;
            }
            if let Some((w, b)) = head {
                // Each row's largest logit `W·z + b` in float64: the class ranked first by a float32
                // product (half a float64 one's cost), then measured in float64 on its row of W.
                let (w32, b32) = (w.f_to_kind(Kind::Float)?, b.f_to_kind(Kind::Float)?);
                let top = z32
                    .f_to_kind(Kind::Float)?
                    .f_linear(&w32, Some(&b32))?
                    .f_argmax(1, false)?;
                let largest = z
                    .f_mul(&w.f_index_select(0, &top)?)?
                    .f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?
                    .f_add(&b.f_index_select(0, &top)?)?;
                let sum = largest.f_sum(Kind::Double)?;
                if self.max_logit_sum.is_none() {
                    self.max_logit_sum = Some(CompensatedSum::zeros(&[], self.device)?);
                }
                if let Some(total) = &mut self.max_logit_sum {
                    total.add(&sum)?;
                }
            }
        }
        self.images += n as u64;
        Ok(())
    }

    /// The per-class image counts by label (or prediction) and by prediction.
    pub fn counts(&self) -> (&[u64], &[u64]) {
        (&self.counts, &self.predicted_counts)
    }

    /// Every sum by name ([`SUM_NAMES`], and `<name>.error`), the shift and the blocks' tensors, as
    /// stored in a fit part.
    pub fn named_sums(&self) -> R<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        let sums = [
            Some(&self.softmax_sums),
            self.class_sums.as_ref(),
            self.outer.as_ref(),
            self.max_logit_sum.as_ref(),
            self.correct_sums.as_ref(),
            self.correct_counts.as_ref(),
            self.nll_grid.as_ref(),
        ];
        for (name, sum) in SUM_NAMES.iter().zip(sums) {
            if let Some(sum) = sum {
                out.push((name.to_string(), sum.value.shallow_clone()));
                out.push((format!("{name}.error"), sum.error.shallow_clone()));
            }
        }
        if let Some(shift) = &self.shift {
            out.push(("shift".into(), shift.shallow_clone()));
        }
        out.extend(self.blocks.named_sums()?);
        Ok(out)
    }

    /// An accumulator read back from a fit part: its counts, and its tensors by name (as
    /// [`Accumulator::named_sums`] gave them) moved to `device`.
    pub fn from_named(
        classes: usize,
        device: Device,
        images: u64,
        counts: Vec<u64>,
        predicted_counts: Vec<u64>,
        get: &mut dyn FnMut(&str) -> Result<Option<Tensor>, String>,
    ) -> Result<Self, String> {
        if counts.len() != classes || predicted_counts.len() != classes {
            return Err(format!("its counts are not for {classes} classes"));
        }
        let shift = get("shift")?
            .map(|t| t.f_to_kind(Kind::Double).and_then(|t| t.f_to_device(device)))
            .transpose()
            .map_err(|e| e.to_string())?;
        let mut sum = |name: &str, shape: &[i64]| -> Result<Option<CompensatedSum>, String> {
            match (get(name)?, get(&format!("{name}.error"))?) {
                (Some(value), Some(error)) => {
                    if value.size() != shape || error.size() != shape {
                        return Err(format!("`{name}` has shape {:?}, expected {shape:?}", value.size()));
                    }
                    let on = |t: Tensor| t.f_to_kind(Kind::Double).and_then(|t| t.f_to_device(device));
                    let (value, error) = (on(value), on(error));
                    Ok(Some(CompensatedSum::from_parts(
                        value.map_err(|e| e.to_string())?,
                        error.map_err(|e| e.to_string())?,
                    )))
                }
                (None, None) => Ok(None),
                _ => Err(format!("`{name}` lacks its value or its error")),
            }
        };
        let c = classes as i64;
        let softmax_sums = sum("softmax_sums", &[c, c])?.ok_or("it has no `softmax_sums`")?;
        let (class_sums, outer, correct_sums, correct_counts) = match &shift {
            Some(s) => {
                let d = s.size().first().copied().unwrap_or(0);
                let class_sums = sum("class_sums", &[c, d])?.ok_or("it has a shift but no `class_sums`")?;
                let outer = sum("outer", &[d, d])?.ok_or("it has a shift but no `outer`")?;
                (
                    Some(class_sums),
                    Some(outer),
                    sum("correct_sums", &[c, d])?,
                    sum("correct_counts", &[c])?,
                )
            }
            None => (None, None, None, None),
        };
        Ok(Accumulator {
            classes,
            device,
            images,
            counts,
            predicted_counts,
            softmax_sums,
            shift,
            class_sums,
            outer,
            max_logit_sum: sum("max_logit_sum", &[])?,
            correct_sums,
            correct_counts,
            nll_grid: sum("nll_grid", &[3, super::temperature::GRID as i64])?,
            // A part read back only merges: where its images were is in its header.
            next_index: 0,
            blocks: BlockScatter::from_named(classes, device, get)?,
        })
    }

    /// Adds everything `other` accumulated (another shard of the same listing). The sums add
    /// exactly when both used the same shift (as shards of one listing do); otherwise `other`'s
    /// moments are first moved to this shift.
    pub fn merge(&mut self, other: &Accumulator) -> R<()> {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        for (a, b) in self.predicted_counts.iter_mut().zip(&other.predicted_counts) {
            *a += b;
        }
        self.images += other.images;
        self.softmax_sums.merge(&other.softmax_sums)?;
        self.blocks.merge(&other.blocks)?;
        for (mine, theirs) in [
            (&mut self.max_logit_sum, &other.max_logit_sum),
            (&mut self.correct_sums, &other.correct_sums),
            (&mut self.correct_counts, &other.correct_counts),
            (&mut self.nll_grid, &other.nll_grid),
        ] {
            if let Some(total) = theirs {
                match mine {
                    Some(mine) => mine.merge(total)?,
                    None => *mine = Some(total.copy()),
                }
            }
        }
        let (Some(their_shift), Some(their_sums), Some(their_outer)) = (&other.shift, &other.class_sums, &other.outer)
        else {
            return Ok(());
        };
        if self.shift.is_none() {
            self.set_shift(their_shift.shallow_clone())?;
        }
        let (Some(shift), Some(sums), Some(outer)) = (&self.shift, &mut self.class_sums, &mut self.outer) else {
            return Ok(());
        };
        if shift.f_equal(their_shift)? {
            sums.merge(their_sums)?;
            outer.merge(their_outer)?;
            return Ok(());
        }
        // y = z − b = (z − b') + δ with δ = b' − b: S_c gains n_c δ, and
        // Σ y yᵀ = O' + S' δᵀ + δ S'ᵀ + n δ δᵀ (S' = Σ_c S'_c).
        let delta = their_shift.f_sub(shift)?;
        let counts: Vec<f64> = other.counts.iter().map(|&n| n as f64).collect();
        let counts = Tensor::from_slice(&counts).f_to_device(self.device)?;
        let s = their_sums.total()?;
        let moved_sums = s.f_add(&counts.f_unsqueeze(1)?.f_mul(&delta.f_unsqueeze(0)?)?)?;
        let total = s.f_sum_dim_intlist(&[0i64][..], false, Kind::Double)?;
        let cross = total.f_unsqueeze(1)?.f_mm(&delta.f_unsqueeze(0)?)?;
        let moved_outer = their_outer
            .total()?
            .f_add(&cross)?
            .f_add(&cross.f_transpose(0, 1)?)?
            .f_add(
                &delta
                    .f_unsqueeze(1)?
                    .f_mm(&delta.f_unsqueeze(0)?)?
                    .f_mul_scalar(other.images as f64)?,
            )?;
        sums.add(&moved_sums)?;
        outer.add(&moved_outer)?;
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
        let klm_templates = per_class(&self.softmax_sums.total()?, &self.predicted_counts)?;
        let (mut class_means, mut shared_cov, mut global_mean, mut global_cov) = (None, None, None, None);
        if let (Some(shift), Some(sums), Some(outer)) = (&self.shift, &self.class_sums, &self.outer) {
            let (sums, outer) = (&sums.total()?, &outer.total()?);
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
        let she_patterns = match (&self.correct_sums, &self.correct_counts) {
            (Some(sums), Some(counts)) => {
                let counts = counts.total()?.f_unsqueeze(1)?;
                let some = counts.f_gt(0.0)?;
                let means = sums.total()?.f_div(&counts.f_clamp_min(1.0)?)?;
                Some(means.f_where_self(&some, &means.f_zeros_like()?)?)
            }
            _ => None,
        };
        Ok(Moments {
            counts: self.counts.clone(),
            class_means,
            shared_cov,
            global_mean,
            global_cov,
            predicted_counts: self.predicted_counts.clone(),
            klm_templates,
            mean_max_logit: self
                .max_logit_sum
                .as_ref()
                .map(|s| s.total().and_then(|t| t.f_double_value(&[])))
                .transpose()?
                .map(|s| s / n),
            she_patterns,
            temperature: self
                .nll_grid
                .as_ref()
                .map(|s| s.total().and_then(|t| super::temperature::fitted(&t)))
                .transpose()?,
            blocks: self.blocks.finish(&self.counts)?,
            gram: self.blocks.finish_gram()?,
            images: self.images,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Tensor, b: &Tensor, tol: f64) -> bool {
        let diff = a.f_sub(b).unwrap().abs().max().double_value(&[]);
        let scale = b.abs().max().double_value(&[]).max(1.0);
        diff <= tol * scale
    }

    /// Shards accumulated under different shifts (as on machines whose models round differently)
    /// merge into the moments of one pass, and both match libtorch's own mean and covariance.
    #[test]
    fn parts_under_other_shifts_merge_into_the_single_pass() {
        tch::manual_seed(7);
        let (n, d, c) = (100i64, 5i64, 3usize);
        let z = Tensor::randn([n, d], (Kind::Double, Device::Cpu))
            .f_mul_scalar(3.0)
            .unwrap()
            + 1000.0;
        let logits = Tensor::randn([n, c as i64], (Kind::Float, Device::Cpu));
        let labels: Vec<usize> = (0..n as usize).map(|i| i % c).collect();
        let add = |acc: &mut Accumulator, rows: std::ops::Range<i64>| {
            for start in rows.clone().step_by(16) {
                let end = (start + 16).min(rows.end);
                acc.add(
                    &logits.narrow(0, start, end - start),
                    Some(&z.narrow(0, start, end - start)),
                    Some(&labels[start as usize..end as usize]),
                    None,
                    (&[], None),
                )
                .unwrap();
            }
        };
        let mut single = Accumulator::new(c, Device::Cpu).unwrap();
        add(&mut single, 0..n);
        let mut first = Accumulator::new(c, Device::Cpu).unwrap();
        add(&mut first, 0..40);
        let mut second = Accumulator::new(c, Device::Cpu).unwrap();
        add(&mut second, 40..n);
        assert!(!first.shift().unwrap().equal(second.shift().unwrap()));
        first.merge(&second).unwrap();
        let (a, b) = (single.finish().unwrap(), first.finish().unwrap());
        assert_eq!((a.images, &a.counts), (b.images, &b.counts));
        for (x, y) in [
            (&a.global_cov, &b.global_cov),
            (&a.shared_cov, &b.shared_cov),
            (&a.global_mean, &b.global_mean),
            (&a.class_means, &b.class_means),
        ] {
            assert!(close(x.as_ref().unwrap(), y.as_ref().unwrap(), 1e-12));
        }
        assert!(close(&a.klm_templates, &b.klm_templates, 1e-15));
        // torch.cov takes variables as rows.
        let cov = z.tr().f_cov(0, None::<&Tensor>, None::<&Tensor>).unwrap();
        assert!(close(b.global_cov.as_ref().unwrap(), &cov, 1e-12));
        let mean = z.mean_dim(&[0i64][..], false, Kind::Double);
        assert!(close(b.global_mean.as_ref().unwrap(), &mean, 1e-14));
    }
}
