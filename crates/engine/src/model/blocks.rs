//! Inner blocks' feature maps (the card's `blocks`), reduced per image to what the block methods
//! read, right after the forward pass: each block's spatial mean, the last block's spatial mean
//! after its rank-1 part is removed (RankFeat), and each block's Gram row sums at poles 1…10 (Gram).
//! A map is `[N, C, H, W]` and too large to keep for re-scoring (layer1 of a ResNet at 224 px is
//! 800 KB per image); its reductions are `[N, C]` each.

use tch::{Device, Kind, TchError, Tensor};

use super::Outputs;

/// The poles `p = 1…GRAM_POLES` at which the Gram method measures each block (Sastry & Oore's 10).
pub const GRAM_POLES: usize = 10;

/// The reductions of one batch's block maps.
pub struct BlockReductions {
    /// `[N, C_b]` per block, in card order: `mean_hw X_b`.
    pub means: Vec<Tensor>,
    /// `[N, C_last]`: `mean_hw (X − σ₁u₁v₁ᵀ)` of the last block, where `X` is its map as a
    /// `C × HW` matrix and `σ₁u₁v₁ᵀ` the best rank-1 approximation of it.
    pub rank1_removed: Tensor,
    /// `[N, P·Σ C_b]`: each block's [`gram_rows`] at poles 1…P, block after block, when asked for
    /// (ten passes over every map: only when a method of the pass, or the fit, reads them).
    pub gram: Option<Tensor>,
}

/// The card's `blocks`, checked: named, each once, and only after features (the tuple is
/// `(logits, [confidence,] features, block maps…)`).
pub fn check_names(blocks: Vec<String>, outputs: super::card::OutputKind) -> Result<Vec<String>, String> {
    if blocks.is_empty() {
        return Ok(blocks);
    }
    if !outputs.has_features() {
        return Err(format!(
            "`blocks` is set but outputs = \"{}\" has no features: block maps follow the features (use \"logits+features\")",
            outputs.name()
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for name in &blocks {
        if name.trim().is_empty() || !seen.insert(name.as_str()) {
            return Err(format!(
                "`blocks` must name each block once (a submodule's name, as \"layer4\"), got {blocks:?}"
            ));
        }
    }
    Ok(blocks)
}

/// Checks `maps` (the items after the features, one per name in `names`) and reduces them, with the
/// Gram rows when `with_gram`. The reductions are computed without autograd, in float64, and stored
/// in float32.
pub fn reduce(maps: &[&Tensor], names: &[String], batch: i64, with_gram: bool) -> Result<BlockReductions, String> {
    if maps.len() != names.len() {
        return Err(format!(
            "returns {} block maps after the features, but the card lists {} blocks ({})",
            maps.len(),
            names.len(),
            names.join(", ")
        ));
    }
    let mut means = Vec::with_capacity(maps.len());
    let mut gram = Vec::with_capacity(maps.len());
    let mut last = None;
    for (map, name) in maps.iter().zip(names) {
        let size = map.size();
        if size.len() != 4 || size[0] != batch || size[1] < 1 || size[2] < 1 || size[3] < 1 {
            return Err(format!(
                "block `{name}` has shape {size:?}, expected a feature map [{batch}, C, H, W] (a convolutional block's output)"
            ));
        }
        if matches!(map.kind(), Kind::Half | Kind::BFloat16) {
            return Err(super::probe::half_message("float16"));
        }
        // The mean accumulates in float64 straight from the float32 map (no float64 copy of it).
        let map = map.f_detach().map_err(|e| e.to_string())?;
        means.push(
            map.f_mean_dim(&[2i64, 3][..], false, Kind::Double)
                .and_then(|m| m.f_to_kind(Kind::Float))
                .map_err(|e| e.to_string())?,
        );
        if with_gram {
            gram.push(gram_rows_of(&map, &size).map_err(|e| e.to_string())?);
        }
        last = Some((map, size));
    }
    let Some((map, size)) = last else {
        return Err("the card's `blocks` is empty".into());
    };
    let rank1_removed = map
        .f_to_kind(Kind::Double)
        .and_then(|x| x.f_reshape([size[0], size[1], size[2] * size[3]]))
        .and_then(|x| without_rank1(&x))
        .and_then(|r| r.f_to_kind(Kind::Float))
        .map_err(|e| e.to_string())?;
    let gram = if with_gram {
        Some(Tensor::f_cat(&gram, 1).map_err(|e| e.to_string())?)
    } else {
        None
    };
    Ok(BlockReductions {
        means,
        rank1_removed,
        gram,
    })
}

/// A run's block reductions as plain values (kept to re-score without the model): per image, each
/// block's spatial mean (`widths[b]` values), the last block's rank-1-free mean, then, when `gram`,
/// the Gram rows (`GRAM_POLES · Σ widths` values: ten times the rest, so they are kept only when a
/// method of the run reads them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockRows {
    pub values: Vec<f32>,
    /// Each block's channels `C_b`, in card order (empty: no blocks).
    pub widths: Vec<usize>,
    /// Whether the rows hold the Gram row sums.
    pub gram: bool,
}

impl BlockRows {
    /// The reductions of a batch's outputs, with the Gram rows when `gram` (empty when the model
    /// has no blocks).
    pub fn of(outputs: &Outputs, gram: bool) -> Result<BlockRows, TchError> {
        let Some(rank1) = &outputs.rank1_removed else {
            return Ok(BlockRows::default());
        };
        let mut parts: Vec<&Tensor> = outputs.block_means.iter().collect();
        parts.push(rank1);
        let gram = match (&outputs.gram, gram) {
            (Some(rows), true) => {
                parts.push(rows);
                true
            }
            _ => false,
        };
        Ok(BlockRows {
            values: crate::tensor::to_vec_f32(&Tensor::f_cat(&parts, 1)?)?,
            widths: outputs.block_means.iter().map(|m| m.size()[1] as usize).collect(),
            gram,
        })
    }

    /// Values per image.
    pub fn row_width(&self) -> usize {
        let total = self.widths.iter().sum::<usize>();
        total + self.widths.last().copied().unwrap_or(0) + self.gram_width()
    }

    /// Values per image of the Gram rows (0 when not kept).
    fn gram_width(&self) -> usize {
        if self.gram {
            GRAM_POLES * self.widths.iter().sum::<usize>()
        } else {
            0
        }
    }

    pub fn is_empty(&self) -> bool {
        self.widths.is_empty()
    }

    /// Appends another batch's rows (of the same model).
    pub fn extend(&mut self, other: &BlockRows) {
        if self.widths.is_empty() {
            self.widths = other.widths.clone();
            self.gram = other.gram;
        }
        self.values.extend_from_slice(&other.values);
    }

    /// The given rows, in order.
    pub fn rows(&self, rows: &[usize]) -> BlockRows {
        let width = self.row_width();
        BlockRows {
            values: rows
                .iter()
                .flat_map(|&r| &self.values[r * width..(r + 1) * width])
                .copied()
                .collect(),
            widths: self.widths.clone(),
            gram: self.gram,
        }
    }

    /// Rows `start..start + len` as the outputs' `(block_means, rank1_removed, gram)` on `device`.
    pub fn tensors(&self, start: usize, len: usize, device: Device) -> Result<RowTensors, String> {
        if self.is_empty() {
            return Ok((Vec::new(), None, None));
        }
        let width = self.row_width();
        let slice = self
            .values
            .get(start * width..(start + len) * width)
            .ok_or("the cached block reductions are shorter than the run")?;
        let all = Tensor::from_slice(slice)
            .f_view([len as i64, width as i64])
            .and_then(|t| t.f_to_device(device))
            .map_err(|e| e.to_string())?;
        let mut column = 0;
        let mut parts = Vec::new();
        let gram_width = self.gram_width();
        for &w in self.widths.iter().chain(self.widths.last()).chain([&gram_width]) {
            parts.push(all.f_narrow(1, column, w as i64).map_err(|e| e.to_string())?);
            column += w as i64;
        }
        let gram = parts.pop().filter(|_| self.gram);
        let rank1 = parts.pop();
        Ok((parts, rank1, gram))
    }
}

/// Block rows as tensors: each block's means, the rank-1-free mean and the Gram rows.
pub type RowTensors = (Vec<Tensor>, Option<Tensor>, Option<Tensor>);

/// Bytes of float64 map that one step of [`gram_rows_of`] takes on the CPU: few enough images that
/// they stay in the cache across the ten poles (a whole batch of 64 ResNet-18 maps at 224 px at
/// once is 6× slower: every pole streams it through memory).
const GRAM_CHUNK_BYTES: i64 = 2 << 20;

/// `[N, P·C]` float32: [`gram_rows`] of a float32 map `[N, C, H, W]`, a few images at a time on the
/// CPU (whole on a GPU).
fn gram_rows_of(map: &Tensor, size: &[i64]) -> Result<Tensor, TchError> {
    let per_image = (size[1] * size[2] * size[3] * 8).max(1);
    let chunk = if map.device().is_cuda() {
        size[0]
    } else {
        (GRAM_CHUNK_BYTES / per_image).max(1)
    };
    let mut parts = Vec::new();
    let mut start = 0;
    while start < size[0] {
        let len = chunk.min(size[0] - start);
        let x = map
            .f_narrow(0, start, len)?
            .f_to_kind(Kind::Double)?
            .f_reshape([len, size[1], size[2] * size[3]])?;
        parts.push(gram_rows(&x)?.f_to_kind(Kind::Float)?);
        start += len;
    }
    Tensor::f_cat(&parts, 0)
}

/// `[N, P·C]`: for each pole `p = 1…P` (pole after pole), the row sums of the `p`-th order Gram
/// matrix `G_p = X^p (X^p)ᵀ` of each `C × HW` map `X` of `[N, C, HW]` (float64; powers taken
/// element by element), as `sign(g)·|g|^{1/p}`. A row sum needs no `C × C` matrix:
/// `G_p 1 = X^p ((X^p)ᵀ 1)`, the map times its column sums.
pub fn gram_rows(x: &Tensor) -> Result<Tensor, TchError> {
    let mut power = x.copy();
    let mut out = Vec::with_capacity(GRAM_POLES);
    for p in 1..=GRAM_POLES {
        if p > 1 {
            let _ = power.f_mul_(x)?;
        }
        let columns = power.f_sum_dim_intlist(&[1i64][..], true, Kind::Double)?;
        let sums = power.f_matmul(&columns.f_transpose(1, 2)?)?.f_squeeze_dim(2)?;
        let root = sums.f_abs()?.f_pow_tensor_scalar(1.0 / p as f64)?;
        out.push(root.f_mul(&sums.f_sign()?)?);
    }
    Tensor::f_cat(&out, 1)
}

/// `[N, C]`: the mean over the spatial positions of `[N, C, HW]`.
fn spatial_mean(x: &Tensor) -> Result<Tensor, TchError> {
    x.f_mean_dim(&[2i64][..], false, Kind::Double)
}

/// `[N, C]`: `mean_hw (X − σ₁u₁v₁ᵀ)` for each `C × HW` matrix `X` of `[N, C, HW]` (float64).
/// `σ₁u₁v₁ᵀ = X v₁v₁ᵀ = u₁u₁ᵀ X`, so only the top singular vector on the smaller side is needed: the
/// top eigenvector of `XᵀX` (`HW × HW`) or of `XXᵀ` (`C × C`), whose signs cancel. (libtorch's
/// `linalg_svd` cannot be called without a CUDA-only `driver` through tch.)
pub fn without_rank1(x: &Tensor) -> Result<Tensor, TchError> {
    let size = x.size();
    let (c, hw) = (size[1], size[2]);
    let mean = spatial_mean(x)?;
    let part = if hw <= c {
        let gram = x.f_transpose(1, 2)?.f_matmul(x)?;
        let (_, vectors) = gram.f_linalg_eigh("L")?;
        let v1 = vectors.f_select(2, hw - 1)?;
        let top = x.f_matmul(&v1.f_unsqueeze(2)?)?.f_squeeze_dim(2)?;
        top.f_mul(&v1.f_mean_dim(&[1i64][..], true, Kind::Double)?)?
    } else {
        let gram = x.f_matmul(&x.f_transpose(1, 2)?)?;
        let (_, vectors) = gram.f_linalg_eigh("L")?;
        let u1 = vectors.f_select(2, c - 1)?;
        let along = u1.f_mul(&mean)?.f_sum_dim_intlist(&[1i64][..], true, Kind::Double)?;
        u1.f_mul(&along)?
    };
    mean.f_sub(&part)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// X = Σ_k σ_k u_k v_kᵀ from orthonormal u's and v's (QR of random matrices), σ = 3, 1.5, 0.5:
    /// the removal takes `σ₁u₁·mean(v₁)` off the spatial mean, whichever side (C or HW) is smaller.
    #[test]
    fn rank1_removal_takes_off_the_largest_singular_part() {
        tch::manual_seed(3);
        for (c, hw) in [(5i64, 7i64), (7, 5)] {
            let opts = (Kind::Double, Device::Cpu);
            let (u, _) = Tensor::linalg_qr(&Tensor::randn([c, 3], opts), "reduced");
            let (v, _) = Tensor::linalg_qr(&Tensor::randn([hw, 3], opts), "reduced");
            let sigma = Tensor::from_slice(&[3.0f64, 1.5, 0.5]);
            let x = (&u * sigma.unsqueeze(0)).matmul(&v.transpose(0, 1)).unsqueeze(0);
            let expected = x.mean_dim(&[2i64][..], false, Kind::Double)
                - u.select(1, 0).unsqueeze(0) * 3.0 * v.select(1, 0).mean(Kind::Double);
            let diff = (without_rank1(&x).unwrap() - expected).abs().max().double_value(&[]);
            assert!(diff < 1e-12, "{c}×{hw}: {diff}");
        }
    }

    /// The row sums equal those of the full Gram matrix, `(X^p (X^p)ᵀ) 1`, rooted.
    #[test]
    fn gram_rows_are_the_rooted_row_sums_of_each_poles_gram_matrix() {
        tch::manual_seed(4);
        let x = Tensor::randn([2, 3, 5], (Kind::Double, Device::Cpu));
        let rows = gram_rows(&x).unwrap();
        assert_eq!(rows.size(), [2, 3 * GRAM_POLES as i64]);
        for p in 1..=GRAM_POLES {
            let xp = x.pow_tensor_scalar(p as f64);
            let sums = xp
                .matmul(&xp.transpose(1, 2))
                .sum_dim_intlist(&[2i64][..], false, Kind::Double);
            let expected = sums.sign() * sums.abs().pow_tensor_scalar(1.0 / p as f64);
            let got = rows.narrow(1, 3 * (p as i64 - 1), 3);
            let diff = ((got - &expected).abs() / expected.abs()).max().double_value(&[]);
            assert!(diff < 1e-12, "pole {p}: {diff}");
        }
    }

    #[test]
    fn maps_are_checked_against_the_card() {
        let names = vec!["layer3".to_string(), "layer4".to_string()];
        let map = Tensor::ones([2, 3, 4, 4], (Kind::Float, Device::Cpu));
        let flat = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
        let err = reduce(&[&map], &names, 2, true).err().unwrap();
        assert!(
            err.contains("returns 1 block maps") && err.contains("layer3, layer4"),
            "{err}"
        );
        let err = reduce(&[&map, &flat], &names, 2, true).err().unwrap();
        assert!(err.contains("block `layer4` has shape [2, 3]"), "{err}");
        let ok = reduce(&[&map, &map], &names, 2, true).unwrap();
        assert_eq!(ok.means.len(), 2);
        assert_eq!(ok.rank1_removed.size(), [2, 3]);
        assert_eq!(ok.gram.unwrap().size(), [2, 2 * 3 * GRAM_POLES as i64]);
        assert!(reduce(&[&map, &map], &names, 2, false).unwrap().gram.is_none());
        // A rank-1 map loses all of itself.
        let removed = ok.rank1_removed.abs().max().double_value(&[]);
        assert!(removed < 1e-6, "{removed}");
    }
}
