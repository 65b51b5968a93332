//! Per-block class statistics of a fit (multi-mahalanobis): for each inner block of the card, the
//! class sums of its spatial means `m_b` and the sum of their outer products, as compensated
//! float64 sums, finished into class means and the shared covariance
//! `(1/N) Σ_c Σ_{i∈c} (m_i − μ_c)(m_i − μ_c)ᵀ`; beside them, Gram's bounds ([`super::gram_bounds`]).
//!
//! Unlike the features' sums these take no shift: the sums of a fit's parts then add exactly,
//! whoever made them. What a shift would save is the cancellation in `Σ m mᵀ − Σ_c s_c s_cᵀ / n_c`,
//! about `ε·(|μ|/σ)²` of the covariance: 1e-14 for means ten spreads from zero.

use tch::{Device, Kind, Tensor};

use super::accumulate::CompensatedSum;
use super::gram_bounds::{GramBounds, GramFit};

type R<T> = Result<T, tch::TchError>;

/// One block's sums: `[C, W]` class sums of the spatial means and `[W, W]` their outer products.
struct Sums {
    class_sums: CompensatedSum,
    outer: CompensatedSum,
}

/// The block sums of one fit pass (empty for a model without blocks).
#[derive(Default)]
pub struct BlockScatter {
    blocks: Vec<Sums>,
    gram: GramBounds,
}

/// The finished statistics of one block: `[C, W]` class means (NaN rows for classes without
/// images) and the `[W, W]` shared covariance.
pub struct BlockMoments {
    pub class_means: Tensor,
    pub shared_cov: Tensor,
}

impl BlockScatter {
    /// Adds a batch: each block's spatial means `[n, W_b]`, its Gram rows, each row's class
    /// (`index`, `[n]`) and the listing index of its first row.
    pub fn add(
        &mut self,
        means: &[Tensor],
        gram: Option<&Tensor>,
        index: &Tensor,
        first: u64,
        classes: usize,
        device: Device,
    ) -> R<()> {
        if let Some(gram) = gram {
            let widths: Vec<i64> = means.iter().map(|m| m.size()[1]).collect();
            self.gram.add(gram, &widths, index, first, classes)?;
        }
        if self.blocks.is_empty() {
            for m in means {
                let w = m.size()[1];
                self.blocks.push(Sums {
                    class_sums: CompensatedSum::zeros(&[classes as i64, w], device)?,
                    outer: CompensatedSum::zeros(&[w, w], device)?,
                });
            }
        }
        for (sums, m) in self.blocks.iter_mut().zip(means) {
            let m = m.f_to_kind(Kind::Double)?.f_to_device(device)?;
            let w = m.size()[1];
            let batch = Tensor::f_zeros([classes as i64, w], (Kind::Double, device))?.f_index_add(0, index, &m)?;
            sums.class_sums.add(&batch)?;
            sums.outer.add(&m.f_transpose(0, 1)?.f_mm(&m)?)?;
        }
        Ok(())
    }

    /// Every sum by name (`block<b>.class_sums`, `block<b>.outer`, each also as `<name>.error`),
    /// and Gram's tensors, as stored in a fit part.
    pub fn named_sums(&self) -> R<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for (b, sums) in self.blocks.iter().enumerate() {
            for (name, sum) in [("class_sums", &sums.class_sums), ("outer", &sums.outer)] {
                let (value, error) = sum.parts();
                out.push((format!("block{b}.{name}"), value.shallow_clone()));
                out.push((format!("block{b}.{name}.error"), error.shallow_clone()));
            }
        }
        out.extend(self.gram.named()?);
        Ok(out)
    }

    /// The sums read back from a fit part (blocks `0, 1, …` while there are any), on `device`.
    pub fn from_named(
        classes: usize,
        device: Device,
        get: &mut dyn FnMut(&str) -> Result<Option<Tensor>, String>,
    ) -> Result<BlockScatter, String> {
        let mut blocks = Vec::new();
        loop {
            let b = blocks.len();
            let mut sum = |name: &str| -> Result<Option<CompensatedSum>, String> {
                let name = format!("block{b}.{name}");
                match (get(&name)?, get(&format!("{name}.error"))?) {
                    (Some(value), Some(error)) => {
                        let on = |t: Tensor| {
                            t.f_to_kind(Kind::Double)
                                .and_then(|t| t.f_to_device(device))
                                .map_err(|e| e.to_string())
                        };
                        Ok(Some(CompensatedSum::from_parts(on(value)?, on(error)?)))
                    }
                    (None, None) => Ok(None),
                    _ => Err(format!("`{name}` lacks its value or its error")),
                }
            };
            let (Some(class_sums), Some(outer)) = (sum("class_sums")?, sum("outer")?) else {
                break;
            };
            let (s, o) = (class_sums.parts().0.size(), outer.parts().0.size());
            if s.len() != 2 || s[0] != classes as i64 || o != [s[1], s[1]] {
                return Err(format!(
                    "block {b}'s sums have shapes {s:?} and {o:?}, not [{classes}, W] and [W, W]"
                ));
            }
            blocks.push(Sums { class_sums, outer });
        }
        let gram = GramBounds::from_named(classes, device, get)?;
        Ok(BlockScatter { blocks, gram })
    }

    /// Adds another pass's sums (a shard of the same listing and model: the same blocks, which
    /// `fit-merge` checks in the parts' headers).
    pub fn merge(&mut self, other: &BlockScatter) -> R<()> {
        self.gram.merge(&other.gram)?;
        if self.blocks.is_empty() {
            self.blocks = other
                .blocks
                .iter()
                .map(|s| Sums {
                    class_sums: s.class_sums.copy(),
                    outer: s.outer.copy(),
                })
                .collect();
            return Ok(());
        }
        for (mine, theirs) in self.blocks.iter_mut().zip(&other.blocks) {
            mine.class_sums.merge(&theirs.class_sums)?;
            mine.outer.merge(&theirs.outer)?;
        }
        Ok(())
    }

    /// Each block's class means and shared covariance, given the class counts (the pass's).
    pub fn finish(&self, counts: &[u64]) -> R<Vec<BlockMoments>> {
        let n = counts.iter().sum::<u64>().max(1) as f64;
        let mut out = Vec::with_capacity(self.blocks.len());
        for sums in &self.blocks {
            let (class_sums, outer) = (sums.class_sums.total()?, sums.outer.total()?);
            let device = class_sums.device();
            let values: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
            let counts_t = Tensor::from_slice(&values).f_to_device(device)?.f_unsqueeze(1)?;
            // Rows of classes without images are 0/0 = NaN, and are left out downstream.
            let class_means = class_sums.f_div(&counts_t)?;
            let present: Vec<i64> = (0..counts.len() as i64).filter(|&c| counts[c as usize] > 0).collect();
            let present = Tensor::from_slice(&present).f_to_device(device)?;
            let sums_present = class_sums.f_index_select(0, &present)?;
            let between = sums_present
                .f_div(&counts_t.f_index_select(0, &present)?)?
                .f_transpose(0, 1)?
                .f_mm(&sums_present)?;
            out.push(BlockMoments {
                class_means,
                shared_cov: outer.f_sub(&between)?.f_div_scalar(n)?,
            });
        }
        Ok(out)
    }

    /// Gram's bounds and held-out deviations, finished (`None` without blocks).
    pub fn finish_gram(&self) -> R<Option<GramFit>> {
        self.gram.finish()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}
