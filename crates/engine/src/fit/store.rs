//! One fit pass and its file: the accumulators and the raw features on disk while images stream
//! through, then the finishing passes (pseudo-inverses, ViM's eigenvectors and α, ReAct's
//! percentiles, the normalised bank) written into the fit file with the provenance in its header.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

use super::FitOptions;
use super::accumulate::Accumulator;
use super::finish::{FeatureBlocks, Finish, block_rows};
use crate::model::{Model, Outputs};
use oodscope_data::{ImageSet, SetSource};

/// The value of the header's `format` field, and the version of its layout.
pub const FORMAT: &str = "oodscope-fit";
pub const FORMAT_VERSION: u32 = 1;

/// Where the classes of the fit images came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelSource {
    /// The ImageFolder class folders.
    Folders,
    /// The model's predictions (the folder has no class folders).
    Predicted,
}

/// What a fit file says about itself (its header's metadata).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FitInfo {
    #[serde(skip)]
    pub path: PathBuf,
    pub format_version: u32,
    pub oodscope_version: String,
    pub model_file: String,
    /// SHA-256 of the model file, its card and its head file.
    pub model_sha256: String,
    pub card: String,
    pub train_root: String,
    /// SHA-256 of the training folder's listing (relative paths, sizes, times, labels).
    pub train_listing_sha256: String,
    pub train_files: usize,
    pub max_images: Option<usize>,
    /// Images that went into the statistics, and those skipped.
    pub images: u64,
    pub skipped: usize,
    pub labels: LabelSource,
    pub classes: Vec<String>,
    pub counts: Vec<u64>,
    pub predicted_counts: Vec<u64>,
    pub feature_width: Option<usize>,
    pub preprocess: String,
    /// Whether this fit came from the cache (set when it is used, not stored).
    #[serde(skip)]
    pub cached: bool,
}

impl FitInfo {
    /// Reads the header's metadata (each value JSON, under `oodscope`).
    pub fn from_metadata(path: &Path, metadata: &std::collections::HashMap<String, String>) -> Result<FitInfo, String> {
        if metadata.get("format").map(String::as_str) != Some(FORMAT) {
            return Err("not an oodscope fit file (its header has no `format = oodscope-fit`)".into());
        }
        let text = metadata
            .get("oodscope")
            .ok_or("the header has no `oodscope` provenance")?;
        let mut info: FitInfo = serde_json::from_str(text).map_err(|e| format!("unreadable provenance: {e}"))?;
        if info.format_version != FORMAT_VERSION {
            return Err(format!(
                "made by oodscope {} in format {}; this oodscope reads format {FORMAT_VERSION}: refit",
                info.oodscope_version, info.format_version
            ));
        }
        info.path = path.to_path_buf();
        Ok(info)
    }

    /// The provenance as reports show it.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            map.insert("file".into(), self.path.display().to_string().into());
            map.insert("cached".into(), self.cached.into());
            map.remove("card");
        }
        v
    }

    /// `6000 images of assets/demo/fmnist-train (labels from class folders)`.
    pub fn describe(&self) -> String {
        let labels = match self.labels {
            LabelSource::Folders => "labels from class folders",
            LabelSource::Predicted => "no class folders: classes predicted by the model",
        };
        format!("{} images of {} ({labels})", self.images, self.train_root)
    }
}

/// SHA-256 over the model file, the card's text and the head file (what the fit depends on).
pub fn model_hash(model: &Model) -> Result<String, String> {
    let mut hasher = Sha256::new();
    let mut files = vec![model.file().to_path_buf(), model.card.path.clone()];
    if let Some(crate::model::HeadSource::File(head)) = model.card.head() {
        files.push(head.clone());
    }
    for path in files {
        let mut f = File::open(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = f
                .read(&mut buffer)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
        hasher.update([0xff]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// SHA-256 over a set's listing: each file's path relative to the root, size, modification time and
/// label, in order. A file added, removed, renamed, relabelled or rewritten changes it.
pub fn listing_hash(set: &ImageSet) -> String {
    let mut hasher = Sha256::new();
    if let SetSource::Folder { root, files } = &set.source {
        for f in files {
            let rel = f.path.strip_prefix(root).unwrap_or(&f.path);
            let meta = std::fs::metadata(&f.path).ok();
            let size = meta.as_ref().map_or(0, std::fs::Metadata::len);
            let mtime = meta
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            hasher.update(format!("{}\0{size}\0{mtime}\0{:?}\n", rel.display(), f.label));
        }
    }
    format!("{:x}", hasher.finalize())
}

/// The provenance of a pass, before its counts are known.
pub struct Provenance {
    pub(super) info: FitInfo,
}

impl Provenance {
    pub fn of(
        model: &Model,
        train: &ImageSet,
        used: &ImageSet,
        options: &FitOptions,
        skipped: usize,
    ) -> Result<Self, String> {
        let root = match &train.source {
            SetSource::Folder { root, .. } => root.display().to_string(),
            SetSource::Noise { kind, count, .. } => format!("{kind}:{count}"),
        };
        let card = std::fs::read_to_string(&model.card.path).unwrap_or_default();
        let pre = model.card.preprocess();
        Ok(Provenance {
            info: FitInfo {
                path: PathBuf::new(),
                format_version: FORMAT_VERSION,
                oodscope_version: env!("CARGO_PKG_VERSION").into(),
                model_file: model.file().display().to_string(),
                model_sha256: model_hash(model)?,
                card,
                train_root: root,
                train_listing_sha256: listing_hash(train),
                train_files: train.len(),
                max_images: options.max_images,
                images: 0,
                skipped,
                labels: if used.labelled {
                    LabelSource::Folders
                } else {
                    LabelSource::Predicted
                },
                classes: model.card.classes.clone(),
                counts: Vec::new(),
                predicted_counts: Vec::new(),
                feature_width: model.feature_width,
                preprocess: format!(
                    "{}x{}x{} {:?}, mean {:?}, std {:?}",
                    pre.channels, pre.height, pre.width, pre.resize, model.card.mean, model.card.std
                ),
                cached: false,
            },
        })
    }
}

/// The raw features of a pass, row after row (float32), in a temporary file beside the fit file,
/// removed when dropped.
pub struct FeatureFile {
    path: PathBuf,
    out: Option<BufWriter<File>>,
}

impl FeatureFile {
    pub fn create(fit_path: &Path) -> std::io::Result<FeatureFile> {
        let mut name = fit_path
            .file_name()
            .map(std::ffi::OsStr::to_os_string)
            .unwrap_or_default();
        name.push(".features.tmp");
        let path = fit_path.with_file_name(name);
        let out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        Ok(FeatureFile { path, out: Some(out) })
    }

    fn append(&mut self, values: &[f32]) -> std::io::Result<()> {
        let out = self.out.as_mut().ok_or_else(|| std::io::Error::other("closed"))?;
        let mut bytes = Vec::with_capacity(values.len() * 4);
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        out.write_all(&bytes)
    }

    fn close(&mut self) -> std::io::Result<()> {
        if let Some(mut out) = self.out.take() {
            out.flush()?;
        }
        Ok(())
    }

    /// Closes the file for writing (before it is read back).
    pub fn finish_writing(&mut self) -> std::io::Result<()> {
        self.close()
    }
}

impl FeatureBlocks for FeatureFile {
    fn for_each_block(&self, width: usize, f: &mut dyn FnMut(&[f32])) -> std::io::Result<()> {
        let rows = block_rows(width);
        let mut reader = std::io::BufReader::new(File::open(&self.path)?);
        let mut bytes = vec![0u8; rows * width * 4];
        let mut values = vec![0f32; rows * width];
        loop {
            let n = read_full(&mut reader, &mut bytes)?;
            if n == 0 {
                return Ok(());
            }
            let count = n / 4;
            for (v, chunk) in values.iter_mut().zip(bytes[..count * 4].chunks_exact(4)) {
                *v = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            }
            f(&values[..count]);
        }
    }
}

impl Drop for FeatureFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Why writing stopped.
#[derive(Debug)]
pub enum WriteError {
    Cancelled,
    Failed(String),
}

macro_rules! failed_from {
    ($($t:ty),*) => {
        $(impl From<$t> for WriteError {
            fn from(e: $t) -> Self {
                WriteError::Failed(e.to_string())
            }
        })*
    };
}
failed_from!(std::io::Error, tch::TchError, serde_json::Error, String);

/// One fit pass in progress.
pub struct Pass<'a> {
    model: &'a Model,
    labelled: bool,
    pub(super) accumulator: Accumulator,
    pub(super) features: FeatureFile,
    /// The head in float64, for ViM.
    pub(super) head: Option<(Tensor, Tensor)>,
}

impl<'a> Pass<'a> {
    pub fn new(model: &'a Model, labelled: bool, features: FeatureFile) -> Result<Self, tch::TchError> {
        let head = match &model.head {
            Some(h) => Some((h.weight.f_to_kind(Kind::Double)?, h.bias.f_to_kind(Kind::Double)?)),
            None => None,
        };
        Ok(Pass {
            model,
            labelled,
            accumulator: Accumulator::new(model.card.num_classes(), model.device)?,
            features,
            head,
        })
    }

    pub fn images(&self) -> u64 {
        self.accumulator.images()
    }

    /// Adds a batch's clean outputs (and its folder labels, when the folder has them).
    pub fn add(&mut self, outputs: &Outputs, labels: Option<&[usize]>) -> Result<(), String> {
        let head = self.head.as_ref().map(|(w, b)| (w, b));
        let labels = if self.labelled { labels } else { None };
        self.accumulator
            .add(&outputs.logits, outputs.features.as_ref(), labels, head)
            .map_err(|e| e.to_string())?;
        if let Some(z) = &outputs.features {
            let values = crate::detect::to_vec_f32(z).map_err(|e| e.0)?;
            self.features.append(&values).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Finishes the statistics and writes the fit file at `out`.
    pub fn write(
        mut self,
        out: &Path,
        provenance: Provenance,
        cancel: &AtomicBool,
        on_progress: &mut dyn FnMut(usize, usize),
    ) -> Result<FitInfo, WriteError> {
        self.features.close()?;
        let moments = self.accumulator.finish()?;
        let finish = Finish {
            device: self.model.device,
            feature_width: self.model.feature_width,
            head: self.head.as_ref(),
            features: &self.features,
        };
        finish.write(out, provenance.info, &moments, cancel, on_progress)
    }
}
