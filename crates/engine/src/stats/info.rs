//! What a fit file says about itself: its format, where its images came from, the hashes of the
//! model and the listing it was made from, and the digest of its tensors.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::model::Model;
use oodscope_data::{ImageSet, SetSource};

/// The value of the header's `format` field, and the version of its layout (2: with the digest of
/// the tensors' data).
pub const FORMAT: &str = "oodscope-fit";
pub const FORMAT_VERSION: u32 = 2;

/// Where the classes of the fit images came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelSource {
    /// The ImageFolder class folders.
    Folders,
    /// The model's predictions (the folder has no class folders).
    Predicted,
    /// Labels given with the outputs (a fit from arrays).
    Given,
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
    /// Whether the fit keeps each class's covariance (gmm; `fit --class-covariances`). Written only
    /// when it does, so that other fits' headers read as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub class_covariances: bool,
    /// Each inner block's channels, when the fit keeps per-block statistics (multi-mahalanobis: the
    /// card's `blocks`). Written only then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block_widths: Vec<usize>,
    pub preprocess: String,
    /// SHA-256 of the tensors' data (the header's `tensors_sha256`, beside this provenance: it is
    /// known only once the data is written). Empty until then.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tensors_sha256: String,
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
        info.tensors_sha256 = metadata.get(super::fit_file::DIGEST_KEY).cloned().unwrap_or_default();
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
            LabelSource::Given => "labels given",
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
