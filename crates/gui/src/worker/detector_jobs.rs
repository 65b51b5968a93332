//! The worker's detector jobs: saving the current method, its parameters and δ as a detector file
//! (`oodscope_engine::deploy::save`, with the model and fit the worker owns), and opening one: its
//! manifest first (reported as progress, so the window shows it while the rest loads), then the
//! detector loaded and checked, and the open sets scored with it.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use oodscope_data::ImageSet;
use oodscope_engine::Error;
use oodscope_engine::deploy::{
    Calibration, Manifest, SaveRequest, SavedDetector, SetSummary, check_name, default_name,
};
use oodscope_engine::model::{DeviceChoice, Model};
use oodscope_engine::score::{ScoreRun, ScoreSettings};
use oodscope_engine::stats::Fit;

use super::{JobError, TaskProgress};

/// What "Save detector…" asks the worker to write.
#[derive(Debug)]
pub struct SaveJob {
    /// The detector file to write.
    pub out: PathBuf,
    /// Its name; `None`: `deploy::default_name` of the model and method.
    pub name: Option<String>,
    pub settings: ScoreSettings,
    /// δ with the calibration scores it was chosen on (or given with).
    pub calibration: Calibration,
    /// Where the calibration scores came from, in words, and how many of its files were skipped.
    pub calibration_set: String,
    pub calibration_skipped: usize,
    pub embed_model: bool,
    /// The sets on display (the calibration share first).
    pub sets: Vec<SetSummary>,
    /// The metrics on display, per OOD set.
    pub metrics: Option<serde_json::Value>,
}

/// A detector file opened: its manifest and calibration, and the open sets scored with it.
#[derive(Debug)]
pub struct OpenedDetector {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub calibration: Calibration,
    /// The sets scored, and the run (`None` when no set was open).
    pub scored: Option<(Vec<ImageSet>, ScoreRun)>,
}

/// Writes the detector file of `job` with the worker's model and fit; its manifest.
pub(super) fn save_detector(model: &Model, fit: Option<&Fit>, job: SaveJob) -> Result<Manifest, JobError> {
    let name = job.name.unwrap_or_else(|| default_name(model, &job.settings));
    check_name(&name).map_err(Error::Invalid)?;
    let request = SaveRequest {
        name,
        model,
        settings: &job.settings,
        fit: if job.settings.method.detector().needs().fit {
            fit
        } else {
            None
        },
        calibration: &job.calibration,
        calibration_set: job.calibration_set,
        calibration_skipped: job.calibration_skipped,
        embed_model: job.embed_model,
        made_by: "window".into(),
        sets: job.sets,
        metrics: job.metrics,
    };
    Ok(oodscope_engine::deploy::save(&request, &job.out)?)
}

/// Reads detector `path` (its manifest sent at once as progress), loads it and scores `sets`.
pub(super) fn open_detector(
    path: PathBuf,
    sets: Vec<ImageSet>,
    batch_size: usize,
    cancel: &AtomicBool,
    progress: &dyn Fn(TaskProgress),
    between_batches: &mut dyn FnMut(),
) -> Result<OpenedDetector, JobError> {
    let (_, manifest) = oodscope_engine::deploy::open(&path)?;
    progress(TaskProgress::DetectorRead(Box::new(manifest)));
    let detector = SavedDetector::load(&path, DeviceChoice::Auto)?;
    let scored = match sets.is_empty() {
        true => None,
        false => {
            let mut on_progress = |p| {
                progress(TaskProgress::Run(p));
                between_batches();
            };
            let run = detector.score_sets(&sets, batch_size.max(1), cancel, &mut on_progress)?;
            Some((sets, run))
        }
    };
    Ok(OpenedDetector {
        path,
        manifest: detector.manifest.clone(),
        calibration: detector.calibration.clone(),
        scored,
    })
}
