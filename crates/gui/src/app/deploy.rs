//! Deploying the decision from the window. "Save detector…": the current method, its parameters
//! and δ — the δ on display, or δ for a false-alarm rate α by the conformal rule on a held-out share
//! of the ID images (the last share of the ID sets in their sorted order) — written by the worker
//! as a detector file (`oodscope_engine::deploy::save`). "Open detector…": a detector file's
//! manifest and calibration shown, and the open sets re-scored with it.

use std::path::PathBuf;

use oodscope_data::Role;
use oodscope_engine::deploy::{Calibration, Manifest, SetSummary};

use super::shown::ShownResult;
use super::tasks::{TaskKind, kind};
use super::{OodscopeApp, Tab};
use crate::worker::{OpenedDetector, SaveJob, Work};

/// How "Save detector…" chooses δ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeltaSource {
    /// The δ on display (the slider's), with every ID score of the view as calibration scores
    /// (for the p-values).
    Current,
    /// δ for a false-alarm rate of at most `alpha` on new ID images, by the conformal rule on the
    /// last `share` of the ID images (which, for the guarantee, must not have been used to tune).
    FalseAlarm { alpha: f64, share: f64 },
}

/// What the "Save detector…" form asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct SaveDetectorForm {
    /// The detector file to write.
    pub path: PathBuf,
    /// The detector's name; empty: the default (`deploy::default_name`).
    pub name: String,
    pub source: DeltaSource,
    /// Put the model inside the file.
    pub embed_model: bool,
}

/// A detector file open in the window (or being opened).
#[derive(Debug, Clone)]
pub struct DetectorView {
    pub path: PathBuf,
    /// Its manifest, once read.
    pub manifest: Option<Manifest>,
    /// δ and its calibration scores, once the detector has loaded.
    pub calibration: Option<Calibration>,
    /// Why it could not be opened or loaded.
    pub failure: Option<String>,
}

/// The displayed scores of the ID images, in set order and each set's file order.
pub fn id_scores_in_file_order(result: &ShownResult) -> Vec<f32> {
    let mut id: Vec<(usize, usize, f32)> = result
        .run
        .images
        .iter()
        .zip(&result.scores)
        .filter(|(entry, _)| result.sets.get(entry.set).is_some_and(|s| s.role == Role::Id))
        .map(|(entry, &score)| (entry.set, entry.index, score))
        .collect();
    id.sort_by_key(|&(set, index, _)| (set, index));
    id.into_iter().map(|(_, _, score)| score).collect()
}

/// The held-out calibration images: the last `share` of `scores` (rounded up, at least one).
pub fn held_out(scores: &[f32], share: f64) -> &[f32] {
    let n = scores.len();
    let take = ((share.clamp(0.0, 1.0) * n as f64).ceil() as usize).clamp(n.min(1), n);
    &scores[n - take..]
}

impl OodscopeApp {
    /// Checks the form against what is on display and sends the save to the worker.
    pub(super) fn start_save_detector(&mut self, form: SaveDetectorForm) {
        match self.save_job(form) {
            Ok(job) => {
                self.tasks.cancel_where(kind::save_detector);
                let path = job.out.clone();
                self.launch(TaskKind::SaveDetector { path }, Work::SaveDetector(Box::new(job)));
            }
            Err(why) => self.messages.push(format!("save detector: {why}")),
        }
    }

    /// The worker's save job for `form`, or why there is none.
    fn save_job(&self, form: SaveDetectorForm) -> Result<SaveJob, String> {
        if self.model.is_none() {
            return Err("open the model first (a results file alone has no model to save)".into());
        }
        if form.path.as_os_str().is_empty() {
            return Err("give the detector file's path".into());
        }
        let settings = self.current_settings().ok_or("the method's parameters are not valid")?;
        let result = self
            .result
            .as_ref()
            .filter(|r| r.method_shown() == Some(&settings) && r.estimate.is_none())
            .ok_or_else(|| match self.result.as_ref().and_then(|r| r.external.as_ref()) {
                Some(e) => format!(
                    "{} (external) is the results file's own column: show {} to calibrate δ on its scores",
                    e.name,
                    settings.describe()
                ),
                None => format!("wait until the scores of {} are shown", settings.describe()),
            })?;
        let scores = id_scores_in_file_order(result);
        if scores.is_empty() {
            return Err("enable an ID set: its scores calibrate δ".into());
        }
        let id_names: Vec<&str> = result
            .sets
            .iter()
            .filter(|s| s.role == Role::Id)
            .map(|s| s.name.as_str())
            .collect();
        let (calibration, calibration_set) = match form.source {
            DeltaSource::Current => {
                let delta = self.threshold.ok_or("no δ on display")?;
                let described = format!("ID sets {} ({} images)", id_names.join(", "), scores.len());
                (Calibration::given(scores, delta)?, described)
            }
            DeltaSource::FalseAlarm { alpha, share } => {
                if !(share > 0.0 && share <= 1.0) {
                    return Err(format!(
                        "the calibration share must be above 0 and at most 1, not {share}"
                    ));
                }
                let held = held_out(&scores, share).to_vec();
                let described = format!(
                    "last {} of {} images of ID sets {} (sorted file order)",
                    held.len(),
                    scores.len(),
                    id_names.join(", ")
                );
                (Calibration::conformal(held, alpha)?, described)
            }
        };
        let id_sets: Vec<usize> = (0..result.sets.len())
            .filter(|&i| result.sets[i].role == Role::Id)
            .collect();
        let skipped = result.run.skipped.iter().filter(|s| id_sets.contains(&s.set)).count();
        let mut sets = vec![SetSummary {
            name: calibration_set.clone(),
            role: "calibration".into(),
            images: calibration.scores.len(),
        }];
        for (name, role, scores) in result.set_scores() {
            sets.push(SetSummary {
                name,
                role: role.name().into(),
                images: scores.len(),
            });
        }
        let metrics = self.derived.as_ref().map(|d| {
            let per_set: serde_json::Map<String, serde_json::Value> = d
                .ood
                .iter()
                .filter_map(|o| {
                    let m = o.metrics?;
                    Some((
                        o.name.clone(),
                        serde_json::json!({
                            "auroc": m.auroc,
                            "fpr_at_95_tpr": m.fpr_at_95_tpr,
                            "detection_error": m.detection_error,
                            "aupr_in": m.aupr_in,
                            "aupr_out": m.aupr_out,
                        }),
                    ))
                })
                .collect();
            serde_json::Value::Object(per_set)
        });
        let name = form.name.trim().to_string();
        if !name.is_empty() {
            oodscope_engine::deploy::check_name(&name)?;
        }
        Ok(SaveJob {
            out: form.path,
            name: (!name.is_empty()).then_some(name),
            settings,
            calibration,
            calibration_set,
            calibration_skipped: skipped,
            embed_model: form.embed_model,
            sets,
            metrics,
        })
    }

    /// Reads a detector file on the worker, shows its manifest, and re-scores the open sets with it.
    pub(super) fn open_detector(&mut self, path: PathBuf) {
        self.tasks.cancel_where(kind::open_detector);
        self.detector = Some(DetectorView {
            path: path.clone(),
            manifest: None,
            calibration: None,
            failure: None,
        });
        self.settings.tab = Tab::Detector;
        let sets = self.enabled_sets();
        let batch_size = self.settings.batch_size.max(1);
        self.launch(
            TaskKind::OpenDetector { path: path.clone() },
            Work::OpenDetector { path, sets, batch_size },
        );
    }

    /// A detector's manifest, read before its model loads.
    pub(super) fn on_detector_read(&mut self, manifest: Manifest) {
        if let Some(view) = &mut self.detector {
            view.manifest = Some(manifest);
        }
    }

    /// A detector loaded and the open sets scored with it: its method, parameters and δ become the
    /// window's, its scores the result on display.
    pub(super) fn on_detector_opened(&mut self, opened: OpenedDetector) {
        let OpenedDetector {
            path,
            manifest,
            calibration,
            scored,
        } = opened;
        let settings = manifest.method.clone();
        let delta = calibration.threshold;
        self.detector = Some(DetectorView {
            path,
            manifest: Some(manifest),
            calibration: Some(calibration),
            failure: None,
        });
        let Some((sets, run)) = scored else {
            self.messages
                .push("no set is open: add ID and OOD sets to score them with the detector");
            return;
        };
        self.settings.method = settings.method;
        self.settings
            .params
            .insert(settings.method.name().to_string(), settings.params.clone());
        self.install_result(settings, sets, run);
        self.threshold = Some(delta);
        self.refresh(); // the sets may have changed meanwhile
    }

    /// Why a detector could not be opened, kept beside its path.
    pub(super) fn on_detector_failed(&mut self, path: PathBuf, why: String) {
        self.messages.push(why.clone());
        self.detector = Some(DetectorView {
            manifest: self.detector.take().filter(|d| d.path == path).and_then(|d| d.manifest),
            path,
            calibration: None,
            failure: Some(why),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_held_out_share_is_the_last_images_rounded_up() {
        let scores: Vec<f32> = (0..10).map(|i| i as f32).collect();
        assert_eq!(held_out(&scores, 0.2), [8.0, 9.0]);
        assert_eq!(held_out(&scores, 0.25), [7.0, 8.0, 9.0]);
        assert_eq!(held_out(&scores, 1.0).len(), 10);
        assert_eq!(held_out(&scores, 0.0001), [9.0]);
        assert!(held_out(&[], 0.2).is_empty());
    }
}
