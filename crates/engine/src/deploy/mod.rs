//! Saved detectors: the decision made in oodscope, taken where it is used. A detector file
//! (`.oodsd`) holds a method with its parameters, the fit tensors it reads, the threshold δ with
//! its rule and the sorted calibration scores (for conformal p-values), the model's card and the
//! model (by hash and relative path, or embedded), and its provenance, under one digest.
//! `save` writes one, `load` opens and checks one, and [`SavedDetector`] gives verdicts.

pub mod calibration;
pub mod manifest;
mod read;
mod write;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

pub use calibration::Calibration;
pub use manifest::{Manifest, SetSummary};
pub use read::{load, open};
pub use write::{SaveRequest, check_name, default_name, save};

use crate::Error;
use crate::detect::ScoreSettings;
use crate::detect::plan::Plan;
use crate::model::{DeviceChoice, Model};
use crate::pipeline::stream::batch_tensor;
use crate::pipeline::{DecodeSchedule, Progress};
use crate::score::run::{Keep, ScoreRun, run_scoring_into, score_in_any_batch};
use crate::stats::Fit;
use oodscope_data::ImageSet;

/// The names of a detector file's own tensors (the fit's keep their fit-file names).
pub(crate) mod names {
    pub const MANIFEST: &str = "manifest";
    pub const FIT_INFO: &str = "fit_info";
    pub const CALIBRATION: &str = "calibration_scores";
    pub const CARD: &str = "card";
    pub const MODEL_FILE: &str = "model_file";
    pub const MODEL_CARD: &str = "model_card";
    pub const MODEL_HEAD: &str = "model_head";
    /// The fit tensors every detector with a fit keeps (the fit's header is checked against them).
    pub const ALWAYS_KEPT: [&str; 2] = ["counts", "klm_templates"];
}

/// One image's verdict.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// The method's score (higher = more in-distribution).
    pub score: f32,
    /// `score < δ`.
    pub is_ood: bool,
    /// The conformal p-value of the score against the calibration scores.
    pub p_value: f64,
    /// The predicted class (index into the card's classes) and its probability.
    pub class: usize,
    pub probability: f32,
}

/// A loaded, checked detector, ready to give verdicts.
pub struct SavedDetector {
    /// The file it was loaded from.
    pub path: PathBuf,
    pub manifest: Manifest,
    pub model: Model,
    pub fit: Option<Fit>,
    pub settings: ScoreSettings,
    pub calibration: Calibration,
    /// Where an embedded model was written back (removed on drop).
    pub(crate) _extracted: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for SavedDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedDetector")
            .field("path", &self.path)
            .field("name", &self.manifest.name)
            .finish()
    }
}

impl SavedDetector {
    /// Loads and checks a detector file (see [`load`]).
    pub fn load(path: &Path, device: DeviceChoice) -> Result<SavedDetector, Error> {
        load(path, device)
    }

    /// The detector's name (the model name a server answers to).
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// The model card's class names.
    pub fn classes(&self) -> &[String] {
        &self.model.card.classes
    }

    /// What decoding an image for this model needs ([`oodscope_data::decode_bytes`]).
    pub fn preprocess(&self) -> oodscope_data::Preprocess {
        self.model.card.preprocess()
    }

    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// The plan that scores with this detector's method.
    pub fn plan(&self) -> Result<Plan<'_>, Error> {
        Plan::single(&self.model, &self.settings, self.fit.as_ref())
    }

    /// The verdict on a score, with the class the model predicted.
    pub fn verdict(&self, score: f32, class: usize, probability: f32) -> Verdict {
        Verdict {
            score,
            is_ood: self.calibration.is_ood(score),
            p_value: self.calibration.p_value(score),
            class,
            probability,
        }
    }

    /// Scores one batch of decoded images (each C·H·W pixels from `decode_bytes`), in order: the
    /// same numbers as a scoring run over the same files (a batch of one included).
    pub fn score_pixels(&self, images: &[Vec<f32>]) -> Result<Vec<Verdict>, Error> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let [c, h, w] = self.model.card.input_shape();
        let per_image = (c * h * w) as usize;
        if let Some(bad) = images.iter().position(|i| i.len() != per_image) {
            return Err(Error::Invalid(format!(
                "image {bad} has {} values, the model takes {c}×{h}×{w}",
                images[bad].len()
            )));
        }
        let pixels: Vec<f32> = images.concat();
        let x = batch_tensor(&pixels, [images.len() as i64, c, h, w], self.model.device)?;
        crate::model::adapt_model_threads();
        let plan = self.plan()?;
        let scores = score_in_any_batch(&plan, &x)?;
        let column = scores.scores.first().map(Vec::as_slice).unwrap_or_default();
        Ok((0..images.len())
            .map(|i| {
                let class = scores.pred.get(i).copied().unwrap_or(0).max(0) as usize;
                let probability = scores.pred_prob.get(i).copied().unwrap_or(f32::NAN);
                self.verdict(column.get(i).copied().unwrap_or(f32::NAN), class, probability)
            })
            .collect())
    }

    /// Scores every image of `sets` with the detector's method, streamed in batches (what
    /// `oodscope check` runs): the run's records and scores, with the files that were skipped.
    pub fn score_sets(
        &self,
        sets: &[ImageSet],
        batch_size: usize,
        cancel: &AtomicBool,
        on_progress: &mut dyn FnMut(Progress),
    ) -> Result<ScoreRun, Error> {
        let plan = self.plan()?;
        run_scoring_into(
            &plan,
            sets,
            batch_size,
            DecodeSchedule::for_device(self.model.device),
            cancel,
            on_progress,
            Keep::SCORES,
            &mut [],
        )
    }
}
