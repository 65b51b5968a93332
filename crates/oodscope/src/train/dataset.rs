//! Training data in memory: an ImageFolder tree decoded once into one tensor, with augmentation.

use std::path::Path;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use oodscope_data::scan::scan_folder;
use oodscope_data::{Preprocess, decode_file};

/// Images `[N, 1, H, W]` in [0, 1] pixel units and labels `[N]`, on a device.
pub struct Dataset {
    pub images: Tensor,
    pub labels: Tensor,
}

impl Dataset {
    /// Decodes every image under `root` (ImageFolder layout, sub-folders named as `classes`).
    /// `limit` keeps the first N per class (for quick runs).
    pub fn load(root: &Path, classes: &[String], size: usize, limit: Option<usize>, device: Device) -> Result<Dataset> {
        let scan = scan_folder(root, classes);
        if scan.files.is_empty() || !scan.labelled {
            bail!(
                "{}: expected class sub-folders named {:?} (run scripts/import_data.py)",
                root.display(),
                classes
            );
        }
        let mut per_class = vec![0usize; classes.len()];
        let files: Vec<_> = scan
            .files
            .into_iter()
            .filter(|f| {
                let c = f.label.unwrap_or(0);
                per_class[c] += 1;
                limit.is_none_or(|l| per_class[c] <= l)
            })
            .collect();
        let pre = Preprocess::new(1, size, size);
        let pixels: Vec<Vec<f32>> = files
            .par_iter()
            .map(|f| decode_file(&f.path, &pre).map_err(|e| anyhow::anyhow!("{}: {e}", f.path.display())))
            .collect::<Result<_>>()
            .with_context(|| format!("decoding {}", root.display()))?;
        let n = files.len() as i64;
        let flat: Vec<f32> = pixels.concat();
        let labels: Vec<i64> = files.iter().map(|f| f.label.unwrap_or(0) as i64).collect();
        Ok(Dataset {
            images: Tensor::from_slice(&flat)
                .view([n, 1, size as i64, size as i64])
                .to_device(device),
            labels: Tensor::from_slice(&labels).to_device(device),
        })
    }

    pub fn len(&self) -> i64 {
        self.labels.size()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The subset whose labels are in `classes`, relabelled 0.. in the order of `classes`.
    pub fn select_classes(&self, classes: &[usize]) -> Dataset {
        let device = self.labels.device();
        let mut mask = Tensor::zeros_like(&self.labels).to_kind(Kind::Bool);
        let relabel = Tensor::full([self.labels.max().int64_value(&[]) + 1], -1, (Kind::Int64, device));
        for (new, &old) in classes.iter().enumerate() {
            mask = mask.logical_or(&self.labels.eq(old as i64));
            let _ = relabel.get(old as i64).fill_(new as i64);
        }
        let index = mask.nonzero().squeeze_dim(1);
        let labels = relabel.index_select(0, &self.labels.index_select(0, &index));
        Dataset {
            images: self.images.index_select(0, &index),
            labels,
        }
    }
}

/// Random crops with 2-pixel zero padding and horizontal flips, per image.
pub fn augment(images: &Tensor, rng: &mut crate::train::Rng) -> Tensor {
    let n = images.size()[0];
    let (h, w) = (images.size()[2], images.size()[3]);
    let padded = images.constant_pad_nd([2, 2, 2, 2]);
    let crops: Vec<Tensor> = (0..n)
        .map(|i| {
            let (dy, dx) = (rng.below(5) as i64, rng.below(5) as i64);
            let crop = padded.get(i).narrow(1, dy, h).narrow(2, dx, w);
            if rng.below(2) == 1 { crop.flip([2]) } else { crop }
        })
        .collect();
    Tensor::stack(&crops, 0)
}
