//! Each class's covariance of the fit features, for gmm (`fit --class-covariances`): an opt-in
//! statistic, C·D² float64 values, refused above `stats::gaussians::LIMIT_BYTES` before the pass.
//!
//! Summed in the finishing pass over the stored features, around the final class means (two passes,
//! so no cancellation: `Σ_c = (1/n_c) Σ_{i∈c} (z_i − μ_c)(z_i − μ_c)ᵀ`), rather than streamed while
//! the images pass: the parts of a sharded fit then carry only each image's class (not C·D² sums
//! each), and a merged fit reads the same blocks in the same order as a single one, so its sums are
//! added in the same order and come out the same.

use tch::{Kind, Tensor};

type R<T> = Result<T, tch::TchError>;

/// The per-class sums of outer products of the centred features, block by block.
pub struct Scatter<'a> {
    /// `[C, D]` class means (NaN rows for classes without images), `[C, D, D]` sums.
    means: &'a Tensor,
    sums: Tensor,
    /// Each stored row's class, in order, and the next row's index.
    classes: &'a [u32],
    next: usize,
}

impl<'a> Scatter<'a> {
    /// Sums for the rows whose classes are `classes`, around `means` (float64 `[C, D]`, on the
    /// device the sums are kept on).
    pub fn new(means: &'a Tensor, classes: &'a [u32]) -> R<Scatter<'a>> {
        let size = means.size();
        let (c, d) = (size[0], size[1]);
        Ok(Scatter {
            means,
            sums: Tensor::f_zeros([c, d, d], (Kind::Double, means.device()))?,
            classes,
            next: 0,
        })
    }

    /// Adds the next block of stored rows (float64 `[n, D]`, on the sums' device).
    pub fn add_block(&mut self, z: &Tensor) -> R<()> {
        let n = z.size()[0] as usize;
        let end = (self.next + n).min(self.classes.len());
        let classes = &self.classes[self.next..end];
        self.next += n;
        // Row indices grouped by class (in row order within a class), then one product per class.
        let mut order: Vec<(u32, i64)> = classes.iter().enumerate().map(|(i, &c)| (c, i as i64)).collect();
        order.sort_unstable();
        let device = z.device();
        for group in order.chunk_by(|a, b| a.0 == b.0) {
            let class = i64::from(group[0].0);
            if class >= self.sums.size()[0] {
                continue;
            }
            let rows: Vec<i64> = group.iter().map(|&(_, i)| i).collect();
            let index = Tensor::from_slice(&rows).f_to_device(device)?;
            let y = z.f_index_select(0, &index)?.f_sub(&self.means.f_select(0, class)?)?;
            let outer = y.f_transpose(0, 1)?.f_mm(&y)?;
            let _ = self.sums.f_select(0, class)?.f_add_(&outer)?;
        }
        Ok(())
    }

    /// `[C, D, D]`: the covariances, dividing by each class's count (NaN for a class without images).
    pub fn finish(self, counts: &[u64]) -> R<Tensor> {
        let counts: Vec<f64> = counts.iter().map(|&n| n as f64).collect();
        let counts = Tensor::from_slice(&counts).f_to_device(self.sums.device())?;
        // In place: C·D² values are not copied.
        let mut sums = self.sums;
        let _ = sums.f_div_(&counts.f_view([-1, 1, 1])?)?;
        Ok(sums)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Blocks of any length give each class's population covariance, as torch.cov computes it.
    #[test]
    fn blocks_sum_into_each_class_covariance() {
        tch::manual_seed(5);
        let opts = (Kind::Double, Device::Cpu);
        let (n, d) = (40i64, 3i64);
        let z = Tensor::randn([n, d], opts) * 2.0 + 100.0;
        let classes: Vec<u32> = (0..n as u32).map(|i| (i * 7) % 3).collect();
        let labels = Tensor::from_slice(&classes.iter().map(|&c| i64::from(c)).collect::<Vec<_>>());
        let means = Tensor::stack(
            &(0..3)
                .map(|c| {
                    z.index_select(0, &labels.eq(c).nonzero().view([-1]))
                        .mean_dim(&[0i64][..], false, Kind::Double)
                })
                .collect::<Vec<_>>(),
            0,
        );
        let mut scatter = Scatter::new(&means, &classes).unwrap();
        for start in (0..n).step_by(7) {
            scatter.add_block(&z.narrow(0, start, 7.min(n - start))).unwrap();
        }
        let counts: Vec<u64> = (0..3)
            .map(|c| classes.iter().filter(|&&k| k == c).count() as u64)
            .collect();
        let ours = scatter.finish(&counts).unwrap();
        for c in 0..3 {
            let rows = z.index_select(0, &labels.eq(c).nonzero().view([-1]));
            let want = rows.tr().f_cov(0, None::<&Tensor>, None::<&Tensor>).unwrap();
            let diff = (ours.get(c) - &want).abs().max().double_value(&[]);
            assert!(diff <= 1e-12 * want.abs().max().double_value(&[]), "class {c}: {diff}");
        }
    }
}
