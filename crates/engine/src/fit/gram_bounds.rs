//! Gram's fit statistics (Sastry & Oore 2020): per inner block, pole and class, the least and the
//! greatest value of each Gram row sum over the fit's images, and the deviation that held-out fit
//! images show from those bounds, `E[δ_{b,p}]`, which scales each block's deviation at scoring.
//!
//! Every tenth image of the listing (listing index `i` with `i mod 10 = 9`) is held out: it sets
//! no bound and is measured against the bounds once they are final. The rule depends on the
//! listing index only, so the shards of a fit hold out the same images as a single pass; minima
//! and maxima merge exactly, and the held-out rows (kept with their listing index and class) are
//! measured in listing order.

use tch::{Device, Kind, Tensor};

use crate::model::blocks::GRAM_POLES;
use crate::stats::gram::deviation;

type R<T> = Result<T, tch::TchError>;

/// Images of the listing held out of the bounds: index `i` with `i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1`.
pub const HELD_OUT_EVERY: u64 = 10;

/// The bounds and held-out rows of one fit pass (or of its merged shards).
#[derive(Default)]
pub struct GramBounds {
    /// Per block, `[P, K, C_b]` float64 minima and maxima (`+∞` / `−∞` where a class has no image).
    mins: Vec<Tensor>,
    maxs: Vec<Tensor>,
    /// Held-out rows `[k, P·Σ C_b]` (float32 values, on the CPU), batch after batch, with each
    /// row's listing index and class.
    held_rows: Vec<Tensor>,
    held_index: Vec<i64>,
    held_class: Vec<i64>,
}

/// The finished statistics: per block `[P, K, C_b]` bounds (a class without bounded images takes
/// the bounds of all classes together), and `[L, P]` mean held-out deviations (0 without any).
pub struct GramFit {
    pub mins: Vec<Tensor>,
    pub maxs: Vec<Tensor>,
    pub expected: Tensor,
    /// The held-out images measured.
    pub held_out: usize,
}

impl GramBounds {
    /// Adds a batch: its Gram rows `[n, P·Σ C_b]`, the blocks' widths, each row's class (`index`,
    /// `[n]`) and the listing index of its first row.
    pub fn add(&mut self, gram: &Tensor, widths: &[i64], index: &Tensor, first: u64, classes: usize) -> R<()> {
        let device = index.device();
        let p = GRAM_POLES as i64;
        if self.mins.is_empty() {
            for &w in widths {
                let shape = [p, classes as i64, w];
                self.mins
                    .push(Tensor::f_full(shape, f64::INFINITY, (Kind::Double, device))?);
                self.maxs
                    .push(Tensor::f_full(shape, f64::NEG_INFINITY, (Kind::Double, device))?);
            }
        }
        let n = gram.size()[0];
        let held: Vec<bool> = (0..n as u64)
            .map(|i| (first + i) % HELD_OUT_EVERY == HELD_OUT_EVERY - 1)
            .collect();
        let pick = |keep: bool| -> R<Tensor> {
            let rows: Vec<i64> = (0..n).filter(|&i| held[i as usize] == keep).collect();
            Tensor::from_slice(&rows).f_to_device(device)
        };
        let (train, out) = (pick(false)?, pick(true)?);
        if out.numel() > 0 {
            let rows = gram.f_index_select(0, &out.f_to_device(gram.device())?)?;
            self.held_rows
                .push(rows.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?);
            let classes = Vec::<i64>::try_from(index.f_index_select(0, &out)?.f_to_device(Device::Cpu)?)?;
            self.held_class.extend(classes);
            self.held_index.extend(
                held.iter()
                    .enumerate()
                    .filter(|&(_, &h)| h)
                    .map(|(i, _)| (first + i as u64) as i64),
            );
        }
        if train.numel() == 0 {
            return Ok(());
        }
        let g = gram
            .f_to_device(device)?
            .f_index_select(0, &train)?
            .f_to_kind(Kind::Double)?;
        let class = Vec::<i64>::try_from(index.f_index_select(0, &train)?.f_to_device(Device::Cpu)?)?;
        let rows = train.numel() as i64;
        let mut present = class.clone();
        present.sort_unstable();
        present.dedup();
        let mut column = 0;
        for ((mins, maxs), &w) in self.mins.iter_mut().zip(self.maxs.iter_mut()).zip(widths) {
            // [n, P·C_b] → [P, n, C_b]; each class's rows reduced into its column of `[P, K, C_b]`.
            // (libtorch's index_reduce does it in one call, but warns in every process that it is
            // in beta.)
            let block = g
                .f_narrow(1, column, p * w)?
                .f_reshape([rows, p, w])?
                .f_transpose(0, 1)?;
            for &c in &present {
                let of_c: Vec<i64> = (0..rows).filter(|&i| class[i as usize] == c).collect();
                let of_c = Tensor::from_slice(&of_c).f_to_device(device)?;
                let at = Tensor::from_slice(&[c]).f_to_device(device)?;
                let values = block.f_index_select(1, &of_c)?;
                let low = values.f_amin([1], true)?.f_minimum(&mins.f_index_select(1, &at)?)?;
                let high = values.f_amax([1], true)?.f_maximum(&maxs.f_index_select(1, &at)?)?;
                *mins = mins.f_index_copy(1, &at, &low)?;
                *maxs = maxs.f_index_copy(1, &at, &high)?;
            }
            column += p * w;
        }
        Ok(())
    }

    /// Every tensor by name (`gram.block<b>.min` / `.max`, `gram.held_out` with `.index` and
    /// `.class`), as stored in a fit part.
    pub fn named(&self) -> R<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for (b, (lo, hi)) in self.mins.iter().zip(&self.maxs).enumerate() {
            out.push((format!("gram.block{b}.min"), lo.shallow_clone()));
            out.push((format!("gram.block{b}.max"), hi.shallow_clone()));
        }
        if !self.mins.is_empty() {
            let rows = self.held_rows()?;
            let as_f64 = |v: &[i64]| Tensor::from_slice(&v.iter().map(|&x| x as f64).collect::<Vec<_>>());
            out.push(("gram.held_out".into(), rows));
            out.push(("gram.held_out.index".into(), as_f64(&self.held_index)));
            out.push(("gram.held_out.class".into(), as_f64(&self.held_class)));
        }
        Ok(out)
    }

    /// `[k, P·Σ C_b]`: the held-out rows, in the order they were added.
    fn held_rows(&self) -> R<Tensor> {
        let width = GRAM_POLES as i64 * self.mins.iter().map(|m| m.size()[2]).sum::<i64>();
        if self.held_rows.is_empty() {
            return Tensor::f_zeros([0, width], (Kind::Float, Device::Cpu));
        }
        Tensor::f_cat(&self.held_rows, 0)
    }

    /// The bounds read back from a fit part, on `device` (none when the part has no blocks).
    pub fn from_named(
        classes: usize,
        device: Device,
        get: &mut dyn FnMut(&str) -> Result<Option<Tensor>, String>,
    ) -> Result<GramBounds, String> {
        let mut bounds = GramBounds::default();
        let torch = |e: tch::TchError| e.to_string();
        loop {
            let b = bounds.mins.len();
            let (Some(lo), Some(hi)) = (get(&format!("gram.block{b}.min"))?, get(&format!("gram.block{b}.max"))?)
            else {
                break;
            };
            let size = lo.size();
            if size.len() != 3 || size[0] != GRAM_POLES as i64 || size[1] != classes as i64 || hi.size() != size {
                return Err(format!(
                    "block {b}'s Gram bounds have shapes {size:?} and {:?}, not [{GRAM_POLES}, {classes}, W]",
                    hi.size()
                ));
            }
            let on = |t: Tensor| t.f_to_kind(Kind::Double).and_then(|t| t.f_to_device(device));
            bounds.mins.push(on(lo).map_err(torch)?);
            bounds.maxs.push(on(hi).map_err(torch)?);
        }
        if bounds.mins.is_empty() {
            return Ok(bounds);
        }
        let (Some(rows), Some(index), Some(class)) = (
            get("gram.held_out")?,
            get("gram.held_out.index")?,
            get("gram.held_out.class")?,
        ) else {
            return Err("it has Gram bounds but not its held-out rows".into());
        };
        let to_i64 = |t: Tensor| -> Result<Vec<i64>, String> {
            let v = Vec::<f64>::try_from(t.f_to_kind(Kind::Double).map_err(torch)?).map_err(torch)?;
            Ok(v.into_iter().map(|x| x as i64).collect())
        };
        let (index, class) = (to_i64(index)?, to_i64(class)?);
        let width = GRAM_POLES as i64 * bounds.mins.iter().map(|m| m.size()[2]).sum::<i64>();
        let k = index.len() as i64;
        if rows.size() != [k, width] || class.len() != index.len() {
            return Err(format!(
                "its held-out Gram rows have shape {:?} for {k} indices and {} classes, expected [{k}, {width}]",
                rows.size(),
                class.len()
            ));
        }
        if let Some(bad) = class.iter().find(|&&c| c < 0 || c >= classes as i64) {
            return Err(format!(
                "its held-out Gram rows name class {bad}, not one of 0 to {}",
                classes - 1
            ));
        }
        bounds.held_rows = vec![rows.f_to_kind(Kind::Float).map_err(torch)?];
        bounds.held_index = index;
        bounds.held_class = class;
        Ok(bounds)
    }

    /// Adds another pass's bounds and held-out rows (a shard of the same listing and model).
    pub fn merge(&mut self, other: &GramBounds) -> R<()> {
        if self.mins.is_empty() {
            self.mins = other.mins.iter().map(Tensor::copy).collect();
            self.maxs = other.maxs.iter().map(Tensor::copy).collect();
        } else {
            for (mine, theirs) in self.mins.iter_mut().zip(&other.mins) {
                *mine = mine.f_minimum(theirs)?;
            }
            for (mine, theirs) in self.maxs.iter_mut().zip(&other.maxs) {
                *mine = mine.f_maximum(theirs)?;
            }
        }
        self.held_rows.extend(other.held_rows.iter().map(Tensor::shallow_clone));
        self.held_index.extend(&other.held_index);
        self.held_class.extend(&other.held_class);
        Ok(())
    }

    /// The final bounds and the mean deviation of the held-out images per block and pole,
    /// measured in listing order (so a merged fit equals a single pass). `None` without blocks.
    pub fn finish(&self) -> R<Option<GramFit>> {
        if self.mins.is_empty() {
            return Ok(None);
        }
        let device = self.mins[0].device();
        let (mut mins, mut maxs) = (Vec::new(), Vec::new());
        for (lo, hi) in self.mins.iter().zip(&self.maxs) {
            // A class no bounded image has takes the bounds of all classes together.
            let all_lo = lo.f_amin([1], true)?.f_expand_as(lo)?;
            let all_hi = hi.f_amax([1], true)?.f_expand_as(hi)?;
            let empty = lo.f_isinf()?;
            mins.push(all_lo.f_where_self(&empty, lo)?);
            maxs.push(all_hi.f_where_self(&empty, hi)?);
        }
        let mut order: Vec<usize> = (0..self.held_index.len()).collect();
        order.sort_by_key(|&i| self.held_index[i]);
        let order_t = Tensor::from_slice(&order.iter().map(|&i| i as i64).collect::<Vec<_>>());
        let rows = self
            .held_rows()?
            .f_index_select(0, &order_t)?
            .f_to_kind(Kind::Double)?
            .f_to_device(device)?;
        let class: Vec<i64> = order.iter().map(|&i| self.held_class[i]).collect();
        let class = Tensor::from_slice(&class).f_to_device(device)?;
        let (k, p) = (rows.size()[0], GRAM_POLES as i64);
        let mut expected = Vec::with_capacity(mins.len());
        let mut column = 0;
        for (lo, hi) in mins.iter().zip(&maxs) {
            let w = lo.size()[2];
            if k == 0 {
                expected.push(Tensor::f_zeros([p], (Kind::Double, device))?);
                continue;
            }
            let g = rows
                .f_narrow(1, column, p * w)?
                .f_reshape([k, p, w])?
                .f_transpose(0, 1)?;
            let (lo_k, hi_k) = (lo.f_index_select(1, &class)?, hi.f_index_select(1, &class)?);
            // [P, k] deviations, averaged over the held-out images (summed in listing order).
            let dev = deviation(&g, &lo_k, &hi_k)?;
            expected.push(
                dev.f_sum_dim_intlist(&[1i64][..], false, Kind::Double)?
                    .f_div_scalar(k as f64)?,
            );
            column += p * w;
        }
        Ok(Some(GramFit {
            mins,
            maxs,
            expected: Tensor::f_stack(&expected, 0)?,
            held_out: k as usize,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20 rows of one block (width 2): class 2's only images are the held-out rows 9 and 19.
    fn rows() -> (Tensor, Tensor) {
        tch::manual_seed(9);
        let gram = Tensor::randn([20, GRAM_POLES as i64 * 2], (Kind::Float, Device::Cpu));
        let classes: Vec<i64> = (0..20).map(|i| if i % 10 == 9 { 2 } else { i % 2 }).collect();
        (gram, Tensor::from_slice(&classes))
    }

    #[test]
    fn held_out_rows_set_no_bound_and_shards_merge_into_the_single_pass() {
        let (gram, class) = rows();
        let mut single = GramBounds::default();
        single.add(&gram, &[2], &class, 0, 3).unwrap();
        let fit = single.finish().unwrap().unwrap();
        assert_eq!(fit.held_out, 2);
        // Class 0's bounds come from its own bounded rows (0, 2, …, 18), not rows 9 and 19.
        let bounded: Vec<i64> = (0..20).filter(|i| i % 2 == 0).collect();
        let of_0 = gram
            .index_select(0, &Tensor::from_slice(&bounded))
            .to_kind(Kind::Double);
        let expected = of_0.amin([0], false).view([GRAM_POLES as i64, 2]);
        assert!(fit.mins[0].select(1, 0).equal(&expected));
        // Class 2 has no bounded row: it takes all classes' bounds.
        assert!(fit.mins[0].select(1, 2).equal(&fit.mins[0].amin([1], false)));
        assert!(fit.maxs[0].select(1, 2).equal(&fit.maxs[0].amax([1], false)));

        let (mut first, mut second) = (GramBounds::default(), GramBounds::default());
        second
            .add(&gram.narrow(0, 7, 13), &[2], &class.narrow(0, 7, 13), 7, 3)
            .unwrap();
        first
            .add(&gram.narrow(0, 0, 7), &[2], &class.narrow(0, 0, 7), 0, 3)
            .unwrap();
        second.merge(&first).unwrap();
        let merged = second.finish().unwrap().unwrap();
        assert!(merged.mins[0].equal(&fit.mins[0]) && merged.maxs[0].equal(&fit.maxs[0]));
        assert!(merged.expected.equal(&fit.expected));
    }
}
