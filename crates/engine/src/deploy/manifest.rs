//! What a detector file says about itself, as JSON: the method and its parameters, the decision
//! (δ, its rule and how it was chosen), the model (by hash, and where it is or that it is
//! embedded), the fit tensors kept, and the provenance (version, date, the sets and metrics seen).

use serde::{Deserialize, Serialize};

use crate::detect::ScoreSettings;

/// The header's `format` of a detector file.
pub const FORMAT: &str = "oodscope-detector";
/// The layout this oodscope writes and reads; a newer one is refused with a line saying so.
pub const FORMAT_VERSION: u32 = 1;
/// The decision rule, in words (the manifest says it so that a reader of the file needs no manual).
pub const RULE: &str = "score >= threshold: in-distribution (id); score < threshold: out-of-distribution (ood)";

/// A detector file's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// The detector's name (the model name a server answers to).
    pub name: String,
    /// The method and every parameter's value.
    pub method: ScoreSettings,
    pub decision: Decision,
    pub model: ModelRef,
    /// The fit tensors kept, when the method needs a fit.
    pub fit: Option<FitRef>,
    pub provenance: Provenance,
}

/// δ and how it was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// δ.
    pub threshold: f32,
    pub rule: String,
    /// `false-alarm` (the conformal rule at `false_alarm`) or `given`.
    pub chosen_by: String,
    /// α, when δ came from the conformal rule.
    pub false_alarm: Option<f64>,
    /// n, the calibration images scored (their sorted scores are in the file).
    pub calibration_images: usize,
    /// Where they came from, and how many of its files could not be used.
    pub calibration_set: String,
    pub calibration_skipped: usize,
}

/// The model a detector runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    /// The card's name.
    pub name: String,
    /// SHA-256 of the model file, its card and its head file (as fits record it).
    pub sha256: String,
    /// The model file (the card, for an ensemble), relative to the detector file (`/`-separated).
    pub path: String,
    /// Whether the model, its card and its head are inside the detector file.
    pub embedded: bool,
    /// The file names an embedded model is written back under: the model, its card, its head.
    pub file_name: String,
    pub card_file_name: String,
    pub head_file: Option<String>,
    pub classes: Vec<String>,
    /// `[C, H, W]`.
    pub input: [usize; 3],
    /// The card's text.
    pub card: String,
}

/// The fit tensors a detector keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitRef {
    pub tensors: Vec<String>,
    /// The fit's image count and training folder (the whole provenance is in the file too).
    pub images: u64,
    pub train_root: String,
    /// The fit file it was copied from.
    pub from: String,
}

/// When and from what a detector was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub oodscope_version: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// `detector save`, `tune`, `compare` or `window`.
    pub made_by: String,
    /// The sets seen when it was made (the calibration set first).
    pub sets: Vec<SetSummary>,
    /// The metrics seen when it was made (a report's, per OOD set), if any.
    pub metrics: Option<serde_json::Value>,
}

/// A set seen when a detector was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetSummary {
    pub name: String,
    /// `calibration`, `id`, `ood`, `validation`, …
    pub role: String,
    pub images: usize,
}
