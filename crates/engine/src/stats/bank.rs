//! The KNN bank: every fit image's feature, normalised (`ẑ = z/‖z‖₂`), and the exact search for
//! each query's k-th nearest bank vector. A bank that fits a memory budget lives on the device; a
//! larger one stays in the fit file and is read in blocks for every batch, so memory is bounded by
//! the block, not the bank (a 1 000 000 × 512 bank is 2 GB on disk).

use std::sync::Arc;

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use super::best::RunningBest;
use super::fit_file::Reader;
use super::{StatsError, StatsResult};

/// Banks up to this size are loaded onto the device (`OODSCOPE_BANK_MEMORY_MB` overrides).
pub const DEFAULT_MEMORY_BUDGET: usize = 256 << 20;
/// A block of bank rows is at most about this large (a bank on disk is read a block at a time)...
const BLOCK_BYTES: usize = 64 << 20;
/// ...and its similarity matrix with the queries at most about this large: wider blocks mean fewer
/// top-k passes, which cost more than the products at 2048 rows (8192 queries × 50 000 × 512 on 2
/// cores: 4.7 s with 2048-row blocks, 3.7 s with 8192-row ones, in PyTorch).
const SIMILARITY_BYTES: usize = 256 << 20;
/// Candidates kept beyond k, and measured exactly around the k-th (float32 similarities can swap
/// neighbours whose distances differ by less than their rounding).
const MARGIN: usize = 8;

/// Where the bank's rows are.
pub enum Rows {
    /// `[N, D]` float32 on the device.
    Loaded(Tensor),
    /// In the fit file at `offset` (little-endian float32, row after row).
    OnDisk { reader: Arc<Reader>, offset: u64 },
}

pub struct Bank {
    pub rows: Rows,
    pub len: usize,
    pub width: usize,
    device: Device,
    /// At most this many rows per block (below the memory bounds only in tests).
    max_block_rows: usize,
}

impl Bank {
    /// The bank stored in `reader` under `name`: on the device if it fits `budget` bytes.
    pub fn open(reader: Arc<Reader>, name: &str, device: Device, budget: usize) -> Result<Option<Bank>, String> {
        let Some((offset, shape, _)) = reader.location(name) else {
            return Ok(None);
        };
        let [len, width] = shape[..] else {
            return Err(format!("the bank has shape {shape:?}, expected [N, D]"));
        };
        let rows = if len * width * 4 <= budget {
            let t = reader.tensor(name)?.f_to_device(device).map_err(|e| e.to_string())?;
            Rows::Loaded(t)
        } else {
            Rows::OnDisk { reader, offset }
        };
        Ok(Some(Bank {
            rows,
            len,
            width,
            device,
            max_block_rows: usize::MAX,
        }))
    }

    /// Whether the bank is read from disk for every search.
    pub fn on_disk(&self) -> bool {
        matches!(self.rows, Rows::OnDisk { .. })
    }

    /// For each row of `features` `[n, D]`: the Euclidean distance from its normalised vector to the
    /// `k`-th nearest bank vector (float64 `[n]`), exactly.
    ///
    /// The scan ranks the bank by float32 similarity (matrix products, as faiss's flat index) and
    /// keeps the best `k + MARGIN`; the distances of the candidates ranked near k are then computed
    /// in float64 from the vectors themselves (`√(2 − 2·s)` in float32 loses a small distance to
    /// cancellation), and the k-th smallest of them is the answer.
    pub fn kth_distance(&self, features: &Tensor, k: usize) -> StatsResult<Tensor> {
        if k == 0 || k > self.len {
            return Err(StatsError(format!(
                "k = {k}, but the fit bank holds {} images (k must be between 1 and {0})",
                self.len
            )));
        }
        let q = normalise(&features.f_to_kind(Kind::Double)?)?;
        let q32 = q.f_to_kind(Kind::Float)?;
        let keep = (k + MARGIN).min(self.len);
        let (_, best_index) = self.best(&q32, keep, None)?;
        // The candidates whose float32 rank is within MARGIN of k, measured exactly.
        let lo = k.saturating_sub(MARGIN + 1);
        let hi = (k + MARGIN).min(self.len);
        let window = best_index.f_narrow(1, lo as i64, (hi - lo) as i64)?;
        match &self.rows {
            Rows::Loaded(rows) if self.device == Device::Cpu => {
                kth_of_window_cpu(&q, cpu_values(rows)?, &window, k - 1 - lo)
            }
            _ => self.kth_of_window(&q, &window, k - 1 - lo),
        }
    }

    /// For each query `q` (float64 `[n, D]`): the `pick`-th smallest (0-based) float64 distance to the
    /// bank rows of its `window` (`[n, w]`), as tensors on the device (a GPU's path, and a bank read
    /// from disk).
    fn kth_of_window(&self, q: &Tensor, window: &Tensor, pick: usize) -> StatsResult<Tensor> {
        let rows = self.rows_at(window)?; // [n, w, D] float64
        let exact = q
            .f_unsqueeze(1)?
            .f_sub(&rows)?
            .f_square()?
            .f_sum_dim_intlist(&[2i64][..], false, Kind::Double)?
            .f_sqrt()?;
        let (sorted, _) = exact.f_sort(1, false)?;
        Ok(sorted.f_select(1, pick as i64)?)
    }

    /// NNGuide's guidance: for each row of `features` `[n, D]`, the mean of the `k` largest inner
    /// products `⟨ẑ, s_i·b_i⟩` between its normalised vector and the bank vectors `b_i`, each scaled
    /// by its own `scale` entry (`[len]`, float64, on the device), in float64 `[n]`.
    ///
    /// The same block scan as [`Bank::kth_distance`]: float32 similarities of each block (matrix
    /// products), scaled in float64, and the best `k` kept across blocks. The mean of the k largest
    /// values moves continuously with them, so float32 rounding needs no exact re-measurement here.
    pub fn mean_top_scaled(&self, features: &Tensor, k: usize, scale: &Tensor) -> StatsResult<Tensor> {
        if k == 0 || k > self.len {
            return Err(StatsError(format!(
                "k = {k}, but the fit bank holds {} images (k must be between 1 and {0})",
                self.len
            )));
        }
        if scale.size() != [self.len as i64] {
            return Err(StatsError(format!(
                "the bank's scale has shape {:?}, expected [{}]",
                scale.size(),
                self.len
            )));
        }
        let q32 = normalise(&features.f_to_kind(Kind::Double)?)?.f_to_kind(Kind::Float)?;
        let (best, _) = self.best(&q32, k, Some(scale))?;
        Ok(best.f_mean_dim(&[1i64][..], false, Kind::Double)?)
    }

    /// Each query's `keep` largest similarities `⟨q, b_i⟩` (float32 products, times `scale[i]` in
    /// float64 where given), largest first, as float64 `[n, keep]`, and the bank rows they come
    /// from (`[n, keep]`), on the device (float32 values on a GPU without `scale`). On the CPU the
    /// blocks' products are written into one reused buffer and scanned by [`RunningBest`];
    /// elsewhere libtorch's `topk` merges them.
    fn best(&self, q32: &Tensor, keep: usize, scale: Option<&Tensor>) -> StatsResult<(Tensor, Tensor)> {
        if self.device != Device::Cpu {
            return self.best_on_device(q32, keep, scale);
        }
        let n = q32.size()[0];
        let block_rows = self.block_rows(n).min(self.len);
        let buffer = Tensor::f_empty([n * block_rows as i64], (Kind::Float, Device::Cpu))?;
        let scale = scale
            .map(|s| Vec::<f64>::try_from(&s.f_to_kind(Kind::Double)?))
            .transpose()?;
        let mut best = RunningBest::new(n as usize, keep);
        self.for_each_block(n, &mut |block, first_row| {
            let rows = block.size()[0];
            let similarity = buffer.f_narrow(0, 0, n * rows)?.f_view([n, rows])?;
            let _ = q32.f_mm_out(&similarity, &block.f_transpose(0, 1)?)?;
            let weights = scale
                .as_ref()
                .map(|s| &s[first_row as usize..(first_row + rows) as usize]);
            best.offer(cpu_values(&similarity)?, rows as usize, first_row, weights);
            Ok(())
        })?;
        let (values, index) = best.finish().ok_or_else(|| {
            StatsError("the KNN search found NaN similarities: the features or the bank hold NaN".into())
        })?;
        Ok((
            Tensor::from_slice(&values).f_view([n, keep as i64])?,
            Tensor::from_slice(&index).f_view([n, keep as i64])?,
        ))
    }

    /// [`Bank::best`] with libtorch's `topk` (a GPU's): each block's own best first, then those
    /// merged with the best so far, so the top-k runs over `keep` columns per block.
    fn best_on_device(&self, q32: &Tensor, keep: usize, scale: Option<&Tensor>) -> StatsResult<(Tensor, Tensor)> {
        let n = q32.size()[0];
        let keep = keep as i64;
        // Scaled values are float64; plain similarities stay float32 (a GPU's fast kind).
        let kind = if scale.is_some() { Kind::Double } else { Kind::Float };
        let mut best = Tensor::f_empty([n, 0], (kind, self.device))?;
        let mut best_index = Tensor::f_empty([n, 0], (Kind::Int64, self.device))?;
        self.for_each_block(n, &mut |block, first_row| {
            let rows = block.size()[0];
            let mut similarity = q32.f_mm(&block.f_transpose(0, 1)?)?;
            if let Some(scale) = scale {
                let weights = scale.f_narrow(0, first_row, rows)?.f_unsqueeze(0)?;
                similarity = similarity.f_to_kind(Kind::Double)?.f_mul(&weights)?;
            }
            let (values, at) = similarity.f_topk(keep.min(rows), 1, true, false)?;
            let all = Tensor::f_cat(&[&best, &values], 1)?;
            let all_index = Tensor::f_cat(&[&best_index, &at.f_add_scalar(first_row)?], 1)?;
            let (values, at) = all.f_topk(keep.min(all.size()[1]), 1, true, true)?;
            best_index = all_index.f_gather(1, &at, false)?;
            best = values;
            Ok(())
        })?;
        Ok((best, best_index))
    }

    /// Rows per block: the block within about 64 MB and its similarity matrix with `queries` rows
    /// within about 256 MB.
    fn block_rows(&self, queries: i64) -> usize {
        let by_rows = BLOCK_BYTES / 4 / self.width.max(1);
        let by_similarity = SIMILARITY_BYTES / 4 / (queries.max(1) as usize);
        by_rows.min(by_similarity).max(1024).min(self.max_block_rows)
    }

    /// Calls `merge(block, first row)` for every block of rows.
    fn for_each_block(&self, queries: i64, merge: &mut dyn FnMut(&Tensor, i64) -> StatsResult<()>) -> StatsResult<()> {
        let block_rows = self.block_rows(queries);
        match &self.rows {
            Rows::Loaded(rows) => {
                let block_rows = block_rows as i64;
                let total = self.len as i64;
                let mut start = 0;
                while start < total {
                    let len = block_rows.min(total - start);
                    merge(&rows.f_narrow(0, start, len)?, start)?;
                    start += len;
                }
            }
            Rows::OnDisk { reader, offset } => {
                let row_bytes = self.width * 4;
                let mut buffer = vec![0u8; block_rows * row_bytes];
                let mut start = 0;
                while start < self.len {
                    let len = block_rows.min(self.len - start);
                    let bytes = &mut buffer[..len * row_bytes];
                    reader
                        .read_at(bytes, offset + (start * row_bytes) as u64)
                        .map_err(|e| StatsError(format!("reading the KNN bank: {e}")))?;
                    let block = Tensor::f_from_data_size(bytes, &[len as i64, self.width as i64], Kind::Float)?
                        .f_to_device(self.device)?;
                    merge(&block, start as i64)?;
                    start += len;
                }
            }
        }
        Ok(())
    }

    /// The bank rows at `index` (`[n, w]`), as float64 `[n, w, D]`.
    fn rows_at(&self, index: &Tensor) -> StatsResult<Tensor> {
        let shape = index.size();
        let flat = index.f_reshape([-1])?;
        let rows = match &self.rows {
            Rows::Loaded(rows) => rows.f_index_select(0, &flat)?,
            Rows::OnDisk { reader, offset } => {
                let wanted = Vec::<i64>::try_from(flat.f_to_device(Device::Cpu)?)?;
                let row_bytes = self.width * 4;
                let mut bytes = vec![0u8; wanted.len() * row_bytes];
                for (slot, &row) in bytes.chunks_mut(row_bytes).zip(&wanted) {
                    reader
                        .read_at(slot, offset + row as u64 * row_bytes as u64)
                        .map_err(|e| StatsError(format!("reading the KNN bank: {e}")))?;
                }
                Tensor::f_from_data_size(&bytes, &[wanted.len() as i64, self.width as i64], Kind::Float)?
                    .f_to_device(self.device)?
            }
        };
        Ok(rows
            .f_to_kind(Kind::Double)?
            .f_reshape([shape[0], shape[1], self.width as i64])?)
    }
}

/// Rows divided by their Euclidean norm (a zero row stays zero, as `F.normalize`).
pub fn normalise(z: &Tensor) -> StatsResult<Tensor> {
    let norm = z.f_norm_scalaropt_dim(2.0, [1i64], true)?.f_clamp_min(1e-12)?;
    Ok(z.f_div(&norm)?)
}

/// [`Bank::kth_of_window`] for a bank loaded on the CPU, row by row in place of `[n, w, D]`
/// temporaries (half a gigabyte each for 8192 queries and w = 17, which the page faults of their
/// allocation made a tenth of the search).
fn kth_of_window_cpu(q: &Tensor, bank: &[f32], window: &Tensor, pick: usize) -> StatsResult<Tensor> {
    let (n, d) = (q.size()[0] as usize, q.size()[1] as usize);
    let w = window.size()[1] as usize;
    let queries = Vec::<f64>::try_from(&q.f_reshape([-1])?)?;
    let index = Vec::<i64>::try_from(&window.f_reshape([-1])?)?;
    let kth: Vec<f64> = queries
        .par_chunks(d.max(1))
        .zip(index.par_chunks(w.max(1)))
        .map(|(query, candidates)| {
            let mut distances: Vec<f64> = candidates
                .iter()
                .map(|&row| {
                    let start = row as usize * d;
                    bank.get(start..start + d).map_or(f64::NAN, |b| {
                        query
                            .iter()
                            .zip(b)
                            .map(|(&x, &y)| (x - f64::from(y)).powi(2))
                            .sum::<f64>()
                            .sqrt()
                    })
                })
                .collect();
            distances.sort_unstable_by(f64::total_cmp);
            distances.get(pick).copied().unwrap_or(f64::NAN)
        })
        .collect();
    debug_assert_eq!(kth.len(), n);
    Ok(Tensor::from_slice(&kth))
}

/// A contiguous float32 CPU tensor's values, borrowed.
fn cpu_values(t: &Tensor) -> StatsResult<&[f32]> {
    if t.device() != Device::Cpu || t.kind() != Kind::Float || !t.is_contiguous() {
        return Err(StatsError(
            "the similarity buffer is not a contiguous float32 CPU tensor".into(),
        ));
    }
    let len = t.numel();
    // SAFETY: `t` is a contiguous float32 tensor on the CPU, so its storage holds `len` f32 values
    // from `data_ptr`; the slice borrows `t`, which is not written while the slice lives.
    Ok(unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, len) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPU scan ([`RunningBest`]) and the libtorch `topk` merge (a GPU's path, run here on the
    /// CPU) keep the same neighbours, in the same order, with and without NNGuide's scale.
    #[test]
    fn the_cpu_scan_keeps_what_the_device_merge_keeps() {
        tch::manual_seed(3);
        let (len, width, queries, keep) = (3000, 16, 40, 23);
        let rows = normalise(&Tensor::randn([len, width], (Kind::Float, Device::Cpu))).unwrap();
        let bank = Bank {
            rows: Rows::Loaded(rows),
            len: len as usize,
            width: width as usize,
            device: Device::Cpu,
            max_block_rows: 1024,
        };
        let q = normalise(&Tensor::randn([queries, width], (Kind::Float, Device::Cpu))).unwrap();
        let scale = Tensor::randn([len], (Kind::Double, Device::Cpu))
            .f_mul_scalar(3.0)
            .unwrap();
        for scale in [None, Some(&scale)] {
            let (values, index) = bank.best(&q, keep, scale).unwrap();
            let (device_values, device_index) = bank.best_on_device(&q, keep, scale).unwrap();
            assert_eq!(index, device_index);
            let gap = values
                .f_sub(&device_values.f_to_kind(Kind::Double).unwrap())
                .unwrap()
                .abs()
                .max()
                .double_value(&[]);
            assert_eq!(gap, 0.0);
        }
        // The k-th distance measured row by row equals the tensors' (a GPU's path), to float64's
        // rounding (the sums run in another order).
        let q64 = q.f_to_kind(Kind::Double).unwrap();
        let (_, index) = bank.best(&q, keep, None).unwrap();
        let Rows::Loaded(rows) = &bank.rows else { unreachable!() };
        for pick in [0, 7, keep - 1] {
            let by_rows = kth_of_window_cpu(&q64, cpu_values(rows).unwrap(), &index, pick).unwrap();
            let by_tensors = bank.kth_of_window(&q64, &index, pick).unwrap();
            let gap = (by_rows - by_tensors).abs().max().double_value(&[]);
            assert!(gap < 1e-14, "pick {pick}: {gap}");
        }
    }
}
