//! The finishing passes of a fit, shared by `fit` and `fit-merge`: from the float64 moments and the
//! raw features (a single pass's temporary file, or the parts of a sharded fit), the pseudo-inverses,
//! ViM's eigenvectors and α, ReAct's percentiles, VRA's per-feature quantiles, the normalised
//! bank, its images' energies (NNGuide), the pseudo-inverse of its Gram matrix (pNML) and, when
//! asked for, each class's covariance (gmm), written into the fit file.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use tch::{Device, Kind, Tensor};

use super::accumulate::{CompensatedSum, Moments};
use super::class_covariance::Scatter;
use super::pass::WriteError;
use crate::stats::fit_file::{Entry, Writer};
use crate::stats::gaussians::CLASS_COVARIANCES;
use crate::stats::info::{FORMAT, FitInfo};
use crate::stats::percentile::{Rereadable, column_quantiles, percentiles};
use crate::stats::weibull::{EUCLID_WEIGHTS, TAIL_MAX};
use crate::stats::{REACT_LEVELS, VRA_LEVELS, react_levels, vra_levels};

/// Feature values held in memory at once while sorting columns for VRA's quantiles (1 GiB of
/// float32): a fit of N images takes ⌈D·N / this⌉ passes over its features.
const COLUMN_BUDGET: usize = 1 << 28;

/// Rows of `width` features per block of a pass over the stored features (16 MiB). Every source
/// gives the same blocks, so that sums over blocks add in the same order for a single fit and a
/// merged one.
pub fn block_rows(width: usize) -> usize {
    ((16 << 20) / (width.max(1) * 4)).max(1)
}

/// The raw features of a fit, re-readable in blocks of [`block_rows`] whole rows (the last may be
/// shorter), in listing order.
pub trait FeatureBlocks {
    fn for_each_block(&self, width: usize, f: &mut dyn FnMut(&[f32])) -> std::io::Result<()>;
}

/// Every entry of the stored features, for the percentile passes.
struct AllEntries<'a>(&'a dyn FeatureBlocks, usize);

impl Rereadable for AllEntries<'_> {
    fn for_each_chunk(&mut self, f: &mut dyn FnMut(&[f32])) -> std::io::Result<()> {
        self.0.for_each_block(self.1, f)
    }
}

/// What the finishing passes work from besides the moments.
pub struct Finish<'a> {
    /// Where the closed-form statistics and ViM's residuals are computed.
    pub device: Device,
    pub feature_width: Option<usize>,
    /// The head `(W, b)` in float64, for ViM.
    pub head: Option<&'a (Tensor, Tensor)>,
    /// Keep the head in the file (`head_weight` `[C, D]`, `head_bias` `[C]`, float64).
    pub store_head: bool,
    pub features: &'a dyn FeatureBlocks,
    /// Rows `[class, logits]` of the correctly classified images (OpenMax), when the pass kept them.
    pub correct_logits: Option<&'a dyn FeatureBlocks>,
    /// Each stored feature row's class, when the fit keeps each class's covariance (gmm).
    pub row_classes: Option<&'a [u32]>,
}

impl Finish<'_> {
    /// Writes the fit file at `out` from `moments`, with `info` (its counts filled in here) in its
    /// header. Nothing is left at `out` on failure or cancel.
    pub fn write(
        &self,
        out: &Path,
        mut info: FitInfo,
        moments: &Moments,
        cancel: &AtomicBool,
        on_progress: &mut dyn FnMut(usize, usize),
    ) -> Result<FitInfo, WriteError> {
        let device = self.device;
        info.images = moments.images;
        info.counts = moments.counts.clone();
        info.predicted_counts = moments.predicted_counts.clone();
        info.block_widths = moments
            .blocks
            .iter()
            .map(|b| b.class_means.size()[1] as usize)
            .collect();
        let n = moments.images as usize;
        let d = self.feature_width;
        let derived = Derived::of(moments, self.head)?;

        let mut entries = Vec::new();
        if let Some(d) = d {
            entries.push(Entry::f32("knn_bank", &[n, d]));
        }
        let mut small = derived.tensors(moments)?;
        if let Some(rows) = self.correct_logits {
            let c = info.counts.len();
            let (means, tails) = super::openmax::tails(rows, c)?;
            small.push((
                "openmax_means",
                Tensor::from_slice(&means).f_view([c as i64, c as i64])?,
            ));
            let shape = [EUCLID_WEIGHTS.len() as i64, c as i64, TAIL_MAX as i64];
            small.push(("openmax_tails", Tensor::from_slice(&tails).f_view(shape)?));
        }
        if let (true, Some((w, b))) = (self.store_head, self.head) {
            small.push(("head_weight", w.shallow_clone()));
            small.push(("head_bias", b.shallow_clone()));
        }
        for (name, t) in &small {
            let shape: Vec<usize> = t.size().iter().map(|&s| s as usize).collect();
            entries.push(Entry::f64(name, &shape));
        }
        let energies = d.is_some() && self.head.is_some();
        if energies {
            entries.push(Entry::f64("nnguide_energies", &[n]));
        }
        // gmm's per-class covariances, around the class means, when asked for (and the features
        // have a row class each: a merged fit's parts all kept them).
        let scatter_of = match (d, self.row_classes, &moments.class_means) {
            (Some(_), Some(classes), Some(means)) if classes.len() == n => Some((classes, means)),
            _ => None,
        };
        info.class_covariances = scatter_of.is_some();
        if let Some(d) = d {
            entries.push(Entry::f64("pnml_gram_pinv", &[d, d]));
            if scatter_of.is_some() {
                entries.push(Entry::f64(CLASS_COVARIANCES, &[info.counts.len(), d, d]));
            }
            if derived.vim.is_some() {
                entries.push(Entry::f64("vim_alpha", &[d]));
            }
            entries.push(Entry::f64("react_percentiles", &[REACT_LEVELS]));
            entries.push(Entry::f64("vra_quantiles", &[VRA_LEVELS, d]));
        }
        entries.push(Entry::i64("counts", &[info.counts.len()]));
        let metadata: BTreeMap<String, String> = [
            ("format".to_string(), FORMAT.to_string()),
            ("oodscope".to_string(), serde_json::to_string(&info)?),
        ]
        .into();
        let mut writer = Writer::create(out, entries, &metadata)?;
        let passes = if d.is_some() { 4 } else { 1 };
        let check_cancel = || {
            if cancel.load(Ordering::Relaxed) {
                Err(WriteError::Cancelled)
            } else {
                Ok(())
            }
        };

        // Pass 1 over the features: the normalised bank, its images' energies `logsumexp(W·z + b)`
        // (NNGuide scales the bank by them), the Gram matrix `Σ ẑ ẑᵀ` of the normalised features in
        // float64 (pNML), and ViM's residual norms for every dim.
        let mut residual_sums: Option<Tensor> = None;
        let mut bank_energies: Vec<f64> = Vec::new();
        let mut gram: Option<CompensatedSum> = None;
        let class_means = scatter_of.map(|(_, means)| means.f_to_device(device)).transpose()?;
        let mut scatter = match (scatter_of, &class_means) {
            (Some((classes, _)), Some(means)) => Some(Scatter::new(means, classes)?),
            _ => None,
        };
        if let Some(d) = d {
            let mut failure = None;
            self.features.for_each_block(d, &mut |block| {
                if failure.is_some() {
                    return;
                }
                let mut step = || -> Result<(), WriteError> {
                    let rows = (block.len() / d) as i64;
                    let z = Tensor::from_slice(block).f_view([rows, d as i64])?;
                    writer.write_tensor(&crate::stats::bank::normalise(&z).map_err(|e| e.0)?)?;
                    let z64 = z.f_to_device(device)?.f_to_kind(Kind::Double)?;
                    if let (true, Some((w, b))) = (energies, self.head) {
                        let e = z64.f_linear(w, Some(b))?.f_logsumexp([1i64], false)?;
                        bank_energies.extend(crate::tensor::to_vec_f64(&e)?);
                    }
                    if let Some(scatter) = &mut scatter {
                        scatter.add_block(&z64)?;
                    }
                    let unit = crate::stats::bank::normalise(&z64).map_err(|e| e.0)?;
                    let outer = unit.f_transpose(0, 1)?.f_mm(&unit)?;
                    match &mut gram {
                        Some(sum) => sum.add(&outer)?,
                        None => {
                            let mut sum = CompensatedSum::zeros(&[d as i64, d as i64], device)?;
                            sum.add(&outer)?;
                            gram = Some(sum);
                        }
                    }
                    if let Some(vim) = &derived.vim {
                        let x = z64.f_sub(&vim.origin)?;
                        let p2 = x.f_mm(&vim.eigenvectors)?.f_square()?;
                        // Column j: Σ_{k ≥ j} p_k², the squared residual norm outside the first j.
                        let tail = p2.f_flip([1i64])?.f_cumsum(1, Kind::Double)?.f_flip([1i64])?;
                        let norms =
                            tail.f_clamp_min(0.0)?
                                .f_sqrt()?
                                .f_sum_dim_intlist(&[0i64][..], false, Kind::Double)?;
                        residual_sums = Some(match residual_sums.take() {
                            Some(s) => s.f_add(&norms)?,
                            None => norms,
                        });
                    }
                    Ok(())
                };
                if let Err(e) = step() {
                    failure = Some(e);
                }
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
            check_cancel()?;
            on_progress(1, passes);
        }
        for (_, t) in &small {
            writer.write_tensor(t)?;
        }
        if energies {
            writer.write_f64(&bank_energies)?;
        }
        if let Some(d) = d {
            // pNML's `pinv(XᵀX)` (X: the normalised fit features, a row per image).
            let gram = match &gram {
                Some(sum) => sum.total()?,
                None => Tensor::f_zeros([d as i64, d as i64], (Kind::Double, device))?,
            };
            writer.write_tensor(&pinv_symmetric(&gram)?)?;
            if let Some(scatter) = scatter.take() {
                // Class by class: the whole C·D² tensor is never copied at once for writing.
                let covariances = scatter.finish(&info.counts)?;
                for class in 0..info.counts.len() as i64 {
                    writer.write_tensor(&covariances.f_select(0, class)?)?;
                }
            }
            if let (Some(vim), Some(sums)) = (&derived.vim, &residual_sums) {
                let mean_norms = sums.f_div_scalar(n as f64)?;
                let alpha = mean_norms.f_reciprocal()?.f_mul_scalar(vim.mean_max_logit)?;
                writer.write_tensor(&alpha)?;
            }
            // Passes 2–4: the radix select of ReAct's percentiles over all N·D entries.
            let values = percentiles(&mut AllEntries(self.features, d), (n * d) as u64, &react_levels())?;
            check_cancel()?;
            writer.write_f64(&values)?;
            // VRA's quantiles of each feature, level by level.
            let columns = column_quantiles(&mut AllEntries(self.features, d), d, n, &vra_levels(), COLUMN_BUDGET)?;
            check_cancel()?;
            writer.write_f64(&columns.concat())?;
            on_progress(passes, passes);
        }
        let counts: Vec<i64> = info.counts.iter().map(|&c| c as i64).collect();
        writer.write_i64(&counts)?;
        info.tensors_sha256 = writer.finish()?;
        info.path = out.to_path_buf();
        Ok(info)
    }
}

/// ViM's principal space, before α.
struct VimSpace {
    /// `u = −pinv(W)·b`.
    origin: Tensor,
    /// Columns by descending eigenvalue.
    eigenvectors: Tensor,
    eigenvalues: Tensor,
    mean_max_logit: f64,
}

/// What the moments give in closed form: pseudo-inverses, ViM's space.
struct Derived {
    shared_pinv: Option<Tensor>,
    global_pinv: Option<Tensor>,
    vim: Option<VimSpace>,
    /// Each inner block's shared covariance's pseudo-inverse (multi-mahalanobis).
    block_pinvs: Vec<Tensor>,
}

/// `pinv(S)` of a symmetric matrix, cutting singular values below 1e-15 of the largest (numpy's
/// default `rcond`).
fn pinv_symmetric(s: &Tensor) -> Result<Tensor, tch::TchError> {
    s.f_linalg_pinv_atol_rtol_float(None, 1e-15, true)
}

impl Derived {
    fn of(m: &Moments, head: Option<&(Tensor, Tensor)>) -> Result<Derived, WriteError> {
        let shared_pinv = m.shared_cov.as_ref().map(pinv_symmetric).transpose()?;
        let global_pinv = m.global_cov.as_ref().map(pinv_symmetric).transpose()?;
        let vim = match (head, &m.global_cov, &m.global_mean, m.mean_max_logit) {
            (Some((w, b)), Some(cov), Some(mean), Some(mean_max_logit)) => {
                let u = w.f_linalg_pinv_atol_rtol_float(None, 1e-15, false)?.f_mv(b)?.f_neg()?;
                // (1/N) Σ (z − u)(z − u)ᵀ = Σ_global + (m − u)(m − u)ᵀ.
                let shift = mean.f_sub(&u)?;
                let around_u = cov.f_add(&shift.f_unsqueeze(1)?.f_mm(&shift.f_unsqueeze(0)?)?)?;
                let (values, vectors) = around_u.f_linalg_eigh("L")?;
                Some(VimSpace {
                    origin: u,
                    eigenvectors: vectors.f_flip([1i64])?,
                    eigenvalues: values.f_flip([0i64])?,
                    mean_max_logit,
                })
            }
            _ => None,
        };
        let block_pinvs = m
            .blocks
            .iter()
            .map(|b| pinv_symmetric(&b.shared_cov))
            .collect::<Result<_, _>>()?;
        Ok(Derived {
            shared_pinv,
            global_pinv,
            vim,
            block_pinvs,
        })
    }

    /// The float64 tensors written after the bank, by name.
    fn tensors(&self, m: &Moments) -> Result<Vec<(&'static str, Tensor)>, WriteError> {
        let mut out = vec![("klm_templates", m.klm_templates.shallow_clone())];
        let mut add = |name: &'static str, t: &Option<Tensor>| {
            if let Some(t) = t {
                out.push((name, t.shallow_clone()));
            }
        };
        add("class_means", &m.class_means);
        add("shared_cov", &m.shared_cov);
        add("shared_pinv", &self.shared_pinv);
        add("global_mean", &m.global_mean);
        add("global_cov", &m.global_cov);
        add("global_pinv", &self.global_pinv);
        add("she_patterns", &m.she_patterns);
        if let Some(vim) = &self.vim {
            out.push(("vim_u", vim.origin.shallow_clone()));
            out.push(("vim_eigenvectors", vim.eigenvectors.shallow_clone()));
            out.push(("vim_eigenvalues", vim.eigenvalues.shallow_clone()));
        }
        if let Some(t) = m.temperature {
            out.push(("temperature", Tensor::from_slice(&[t])));
        }
        if !m.blocks.is_empty() {
            // Blocks differ in width: the class means side by side, the pseudo-inverses flattened
            // one after the other (crate::stats::blocks reads them back).
            let widths: Vec<f64> = m.blocks.iter().map(|b| b.class_means.size()[1] as f64).collect();
            out.push(("block_widths", Tensor::from_slice(&widths)));
            let means: Vec<&Tensor> = m.blocks.iter().map(|b| &b.class_means).collect();
            out.push(("block_class_means", Tensor::f_cat(&means, 1)?));
            let flat = self
                .block_pinvs
                .iter()
                .map(|p| p.f_reshape([-1]))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(("block_shared_pinvs", Tensor::f_cat(&flat, 0)?));
        }
        if let Some(gram) = &m.gram {
            // Per block `[P, C, W_b]`, flattened one after the other (crate::stats::gram).
            let flat = |ts: &[Tensor]| -> Result<Tensor, tch::TchError> {
                let parts = ts.iter().map(|t| t.f_reshape([-1])).collect::<Result<Vec<_>, _>>()?;
                Tensor::f_cat(&parts, 0)
            };
            out.push(("gram_mins", flat(&gram.mins)?));
            out.push(("gram_maxs", flat(&gram.maxs)?));
            out.push(("gram_expected", gram.expected.f_reshape([-1])?));
        }
        Ok(out)
    }
}
