//! A fit part (`fit --shard i/n --out PART`): one shard's mergeable statistics in a safetensors file
//! — its counts and float64 sums (each with its rounding error) under the shift of the whole
//! listing, its raw features (its block of the KNN bank), each image's class when the fit keeps
//! per-class covariances (gmm), the head — and, in the header, the
//! provenance of the whole fit (model, card, options, the whole listing's hash and length) with
//! the shard and its block of the listing, and the digest of its tensors (checked when it is opened).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use tch::{Device, Tensor};

use super::accumulate::Accumulator;
use super::finish::{FeatureBlocks, block_rows};
use super::pass::{Pass, WriteError};
use crate::stats::FitInfo;
use crate::stats::fit_file::{DigestError, Entry, Reader, Writer};
use oodscope_data::Shard;

/// The value of a part's header `format` field, and the version of its layout (2: with the digest
/// of the tensors' data).
pub const PART_FORMAT: &str = "oodscope-fit-part";
pub const PART_FORMAT_VERSION: u32 = 2;

/// The tensor of each feature row's class (label, or prediction), in parts of a fit that keeps
/// per-class covariances.
pub const ROW_CLASSES: &str = "classes";

/// The images of shard `shard` of a fit over `len` images in batches of `batch_size`: whole
/// batches (shard `i` of the `⌈len/batch⌉` batches, as [`Shard::range`] splits them), so every image
/// is in the same batch as in a single fit. A model's outputs can depend on their batch-mates in
/// the last bits (the blocking of its matrix products), and the merged fit then equals the single
/// one exactly.
pub fn shard_images(shard: Shard, len: usize, batch_size: usize) -> Range<usize> {
    shard.blocks(&[len], batch_size).remove(0)
}

/// What a part says about itself (its header's `oodscope` value).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PartInfo {
    pub part_format_version: u32,
    /// The whole fit's provenance, with this part's images, skipped files and counts.
    pub fit: FitInfo,
    /// The card's name (the fit cache's file name).
    pub model_name: String,
    pub shard: Shard,
    pub batch_size: usize,
    /// Images the whole fit uses (the listing after `--max-images`), and this part's block of them.
    pub used_files: usize,
    pub first: usize,
    pub end: usize,
}

/// Writes the part of a finished shard pass at `out` (atomically).
pub fn write_part(mut pass: Pass, out: &Path, mut info: PartInfo) -> Result<PartInfo, WriteError> {
    pass.features.finish_writing()?;
    if let Some(file) = &mut pass.correct_logits {
        file.finish_writing()?;
    }
    let classes = info.fit.classes.len();
    let accumulator = &pass.accumulator;
    let (counts, predicted) = accumulator.counts();
    info.fit.images = accumulator.images();
    info.fit.counts = counts.to_vec();
    info.fit.predicted_counts = predicted.to_vec();
    let rows = info.fit.images as usize;
    let mut tensors: Vec<(String, Tensor)> = accumulator.named_sums()?;
    if let Some((w, b)) = &pass.head {
        tensors.push(("head_weight".into(), w.shallow_clone()));
        tensors.push(("head_bias".into(), b.shallow_clone()));
    }
    let mut entries = Vec::new();
    if let Some(d) = info.fit.feature_width {
        entries.push(Entry::f32("features", &[rows, d]));
    }
    if pass.correct_logits.is_some() {
        entries.push(Entry::f32("correct_logits", &[pass.correct_rows, classes + 1]));
    }
    let row_classes: Option<Vec<i64>> = info
        .fit
        .class_covariances
        .then(|| pass.row_classes.iter().map(|&c| i64::from(c)).collect());
    if let Some(row_classes) = &row_classes {
        entries.push(Entry::i64(ROW_CLASSES, &[row_classes.len()]));
    }
    for (name, t) in &tensors {
        let shape: Vec<usize> = t.size().iter().map(|&s| s as usize).collect();
        entries.push(Entry::f64(name, &shape));
    }
    let metadata: BTreeMap<String, String> = [
        ("format".to_string(), PART_FORMAT.to_string()),
        ("oodscope".to_string(), serde_json::to_string(&info)?),
    ]
    .into();
    let mut writer = Writer::create(out, entries, &metadata)?;
    let rows_of: [(Option<&dyn FeatureBlocks>, usize); 2] = [
        (
            info.fit.feature_width.map(|_| &pass.features as &dyn FeatureBlocks),
            info.fit.feature_width.unwrap_or(0),
        ),
        (
            pass.correct_logits.as_ref().map(|f| f as &dyn FeatureBlocks),
            classes + 1,
        ),
    ];
    for (source, width) in rows_of {
        let Some(source) = source else { continue };
        let mut failure = None;
        source.for_each_block(width, &mut |block| {
            if failure.is_none()
                && let Err(e) = writer.write_f32(block)
            {
                failure = Some(e);
            }
        })?;
        if let Some(e) = failure {
            return Err(e.into());
        }
    }
    if let Some(row_classes) = &row_classes {
        writer.write_i64(row_classes)?;
    }
    for (_, t) in &tensors {
        writer.write_tensor(t)?;
    }
    writer.finish()?;
    Ok(info)
}

/// A part opened for merging: its header read and checked; its tensors read on demand.
pub struct Part {
    pub path: PathBuf,
    pub info: PartInfo,
    reader: Reader,
}

impl Part {
    /// Opens a part; a file that is truncated, not a part, or inconsistent in itself is refused
    /// with the reason (the caller names the file).
    pub fn open(path: &Path) -> Result<Part, String> {
        let reader = Reader::open(path).map_err(|e| {
            if e.starts_with("not a safetensors") {
                "truncated, or not a fit part (its safetensors header does not match its length)".into()
            } else {
                e
            }
        })?;
        if reader.metadata.get("format").map(String::as_str) != Some(PART_FORMAT) {
            return Err(match reader.metadata.get("format").map(String::as_str) {
                Some(crate::stats::info::FORMAT) => {
                    "this is a fit file, not a part of one (`fit --shard` writes parts)".into()
                }
                _ => "not an oodscope fit part (its header has no `format = oodscope-fit-part`)".into(),
            });
        }
        let text = reader
            .metadata
            .get("oodscope")
            .ok_or("the header has no `oodscope` provenance")?;
        let info: PartInfo = serde_json::from_str(text).map_err(|e| format!("unreadable provenance: {e}"))?;
        if info.part_format_version != PART_FORMAT_VERSION
            || info.fit.format_version != crate::stats::info::FORMAT_VERSION
        {
            return Err(format!(
                "made by oodscope {} in part format {}; this oodscope reads part format {PART_FORMAT_VERSION}: redo this shard",
                info.fit.oodscope_version, info.part_format_version
            ));
        }
        let expected = shard_images(info.shard, info.used_files, info.batch_size);
        if expected != (info.first..info.end) || info.fit.images + info.fit.skipped as u64 != expected.len() as u64 {
            return Err(format!(
                "its header is inconsistent: shard {} of {} images should hold images {}..{}, it says {}..{} ({} used, {} skipped)",
                info.shard,
                info.used_files,
                expected.start,
                expected.end,
                info.first,
                info.end,
                info.fit.images,
                info.fit.skipped
            ));
        }
        if let Some(d) = info.fit.feature_width {
            let (_, shape, dtype) = reader.location("features").ok_or("it has no `features`")?;
            if dtype != safetensors::tensor::Dtype::F32 || shape != [info.fit.images as usize, d] {
                return Err(format!(
                    "its features are {dtype:?} {shape:?}, expected F32 [{}, {d}]",
                    info.fit.images
                ));
            }
        }
        if let Some((_, shape, dtype)) = reader.location("correct_logits") {
            let width = info.fit.classes.len() + 1;
            if dtype != safetensors::tensor::Dtype::F32 || shape.len() != 2 || shape[1] != width {
                return Err(format!(
                    "its correct_logits are {dtype:?} {shape:?}, expected F32 [rows, {width}]"
                ));
            }
        }
        match (info.fit.class_covariances, reader.location(ROW_CLASSES)) {
            (false, None) => {}
            (true, Some((_, shape, safetensors::tensor::Dtype::I64))) if shape == [info.fit.images as usize] => {}
            (true, None) => {
                return Err(format!(
                    "its header says it keeps class covariances, but it has no `{ROW_CLASSES}`"
                ));
            }
            (_, Some((_, shape, dtype))) => {
                return Err(format!(
                    "its `{ROW_CLASSES}` are {dtype:?} {shape:?}, expected I64 [{}] (and only in a part made with --class-covariances)",
                    info.fit.images
                ));
            }
        }
        let redo = format!("redo it with `oodscope fit --shard {} --out PART`", info.shard);
        match reader.check_digest() {
            Ok(_) => {}
            Err(DigestError::Mismatch) => {
                return Err(format!("damaged: its tensors do not match their digest; {redo}"));
            }
            Err(DigestError::Missing) => {
                return Err(format!(
                    "its header has no digest of its tensors (`tensors_sha256`); {redo}"
                ));
            }
            Err(DigestError::Io(e)) => return Err(format!("cannot read it: {e}")),
        }
        Ok(Part {
            path: path.to_path_buf(),
            info,
            reader,
        })
    }

    /// Whether the part holds the tensor `name`.
    pub fn has(&self, name: &str) -> bool {
        self.reader.has(name)
    }

    fn tensor(&self, name: &str) -> Result<Option<Tensor>, String> {
        if self.reader.has(name) {
            self.reader.tensor(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The part's accumulators on `device`.
    pub fn accumulator(&self, device: Device) -> Result<Accumulator, String> {
        let fit = &self.info.fit;
        Accumulator::from_named(
            fit.classes.len(),
            device,
            fit.images,
            fit.counts.clone(),
            fit.predicted_counts.clone(),
            &mut |name| self.tensor(name),
        )
    }

    /// Each feature row's class, when the part keeps them (a fit with per-class covariances).
    pub fn row_classes(&self) -> Result<Option<Vec<u32>>, String> {
        let Some(t) = self.tensor(ROW_CLASSES)? else {
            return Ok(None);
        };
        let values = Vec::<i64>::try_from(t).map_err(|e| crate::model::first_line(&e.to_string()))?;
        let classes = self.info.fit.classes.len() as i64;
        if let Some(bad) = values.iter().find(|&&c| c < 0 || c >= classes) {
            return Err(format!(
                "its `{ROW_CLASSES}` hold {bad}, not a class index (0 to {})",
                classes - 1
            ));
        }
        Ok(Some(values.into_iter().map(|c| c as u32).collect()))
    }

    /// The head `(W, b)` in float64, when the model has one.
    pub fn head(&self) -> Result<Option<(Tensor, Tensor)>, String> {
        Ok(match (self.tensor("head_weight")?, self.tensor("head_bias")?) {
            (Some(w), Some(b)) => Some((w, b)),
            _ => None,
        })
    }
}

/// The rows of one tensor (`features`, or OpenMax's `correct_logits`) of several parts, in order,
/// as one stream of blocks (the blocks a single pass's file gives).
pub struct PartFeatures<'a>(pub &'a [Part], pub &'static str);

impl FeatureBlocks for PartFeatures<'_> {
    fn for_each_block(&self, width: usize, f: &mut dyn FnMut(&[f32])) -> std::io::Result<()> {
        let capacity = block_rows(width) * width;
        let mut block: Vec<f32> = Vec::with_capacity(capacity);
        let mut bytes = Vec::new();
        for part in self.0 {
            let Some((offset, shape, _)) = part.reader.location(self.1) else {
                continue;
            };
            let total = shape.iter().product::<usize>();
            let mut done = 0;
            while done < total {
                let take = (total - done).min(capacity - block.len());
                bytes.resize(take * 4, 0);
                part.reader.read_at(&mut bytes, offset + (done * 4) as u64)?;
                block.extend(
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
                done += take;
                if block.len() == capacity {
                    f(&block);
                    block.clear();
                }
            }
        }
        if !block.is_empty() {
            f(&block);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_of_a_fit_are_whole_batches_covering_the_listing_once() {
        for len in [0, 1, 7, 64, 120, 1000] {
            for batch in [1, 16, 64] {
                for count in [1, 2, 3, 8] {
                    let mut next = 0;
                    for index in 0..count {
                        let r = shard_images(Shard::new(index, count).unwrap(), len, batch);
                        assert_eq!(r.start, next);
                        assert!(r.start.is_multiple_of(batch) || r.start == len);
                        next = r.end;
                    }
                    assert_eq!(next, len);
                }
            }
        }
        let r: Vec<_> = (0..3)
            .map(|i| shard_images(Shard::new(i, 3).unwrap(), 120, 16))
            .collect();
        assert_eq!(r, [0..32, 32..80, 80..120]);
    }
}
