//! The saved detector as the server uses it: loaded on the model thread (which keeps it: libtorch's
//! tensors stay on one thread), what the routes need to know of it ([`DetectorInfo`]), and its
//! scoring behind [`Scorer`] (so that batching is tested without a model).

use std::path::Path;

use oodscope_data::Preprocess;
use oodscope_engine::deploy::SavedDetector;
use oodscope_engine::model::{DeviceChoice, device_name, set_model_threads};

pub use oodscope_engine::deploy::Verdict;

/// What a batch is scored by: the saved detector, or a stand-in in tests.
pub trait Scorer {
    /// One verdict per image, in order; `Err` is one line.
    fn score(&mut self, images: &[Vec<f32>]) -> Result<Vec<Verdict>, String>;
}

impl Scorer for SavedDetector {
    fn score(&mut self, images: &[Vec<f32>]) -> Result<Vec<Verdict>, String> {
        self.score_pixels(images).map_err(|e| e.to_string())
    }
}

/// What the rest of the server knows of the detector (the model itself stays on its thread).
#[derive(Debug, Clone)]
pub struct DetectorInfo {
    /// The OIP model name.
    pub name: String,
    /// The scoring method's name (`msp`, `energy`, …).
    pub method: String,
    /// The card's class names, index = class.
    pub classes: Vec<String>,
    /// How images are decoded for the model.
    pub preprocess: Preprocess,
    /// The calibration scores, sorted ascending.
    pub calibration_scores: Vec<f32>,
    /// δ: score ≥ δ is in-distribution.
    pub threshold: f32,
    /// α when δ came from the conformal rule.
    pub false_alarm: Option<f64>,
    /// Where the model runs (`cpu`, `cuda:0`).
    pub device: String,
}

/// Loads the detector file on the calling thread (the model thread) and sets libtorch's threads
/// for its device (on the CPU, following the cores other processes leave free).
pub fn load(path: &Path, device: DeviceChoice) -> Result<(SavedDetector, DetectorInfo), oodscope_engine::Error> {
    let detector = SavedDetector::load(path, device)?;
    set_model_threads(None, detector.model.device);
    let calibration = detector.calibration();
    let info = DetectorInfo {
        name: detector.name().to_string(),
        method: detector.settings.method.name().to_string(),
        classes: detector.classes().to_vec(),
        preprocess: detector.preprocess(),
        calibration_scores: calibration.scores.clone(),
        threshold: calibration.threshold,
        false_alarm: calibration.false_alarm,
        device: device_name(detector.model.device),
    };
    Ok((detector, info))
}
