//! Saved detectors (`.oodsd`, from `oodscope detector save`) in Python: verdicts on image files,
//! as `oodscope check` gives them, and on outputs captured in Python.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use numpy::{PyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::convert::outputs_of;
use crate::error;
use oodscope_data::{ImageSet, Role};
use oodscope_engine::arrays::{ArrayScoring, score_arrays};
use oodscope_engine::deploy::SavedDetector;
use oodscope_engine::model::DeviceChoice;

/// A loaded, checked detector, used by one call at a time (libtorch tensors may move between
/// threads, not be shared), each call with the interpreter's lock released.
#[pyclass(module = "oodscope._native", frozen)]
pub struct NativeDetector {
    detector: Mutex<SavedDetector>,
    manifest: String,
    classes: Vec<String>,
    threshold: f32,
}

/// Verdicts on outputs: scores, OOD flags, p-values, predicted classes and their probabilities.
type Verdicts<'py> = (
    Bound<'py, PyArray1<f32>>,
    Bound<'py, PyArray1<bool>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f32>>,
);

#[pymethods]
impl NativeDetector {
    /// Loads and checks a detector file (its digest, its model's hash, its fit) on `device`
    /// (`cpu`, `cuda` or `auto`).
    #[staticmethod]
    #[pyo3(signature = (path, device = "cpu"))]
    pub fn load(py: Python<'_>, path: PathBuf, device: &str) -> PyResult<NativeDetector> {
        let device: DeviceChoice = device.parse().map_err(error)?;
        let detector = py
            .detach(|| SavedDetector::load(&path, device))
            .map_err(|e| error(e.to_string()))?;
        Ok(NativeDetector {
            manifest: serde_json::to_string(&detector.manifest).map_err(|e| error(e.to_string()))?,
            classes: detector.classes().to_vec(),
            threshold: detector.calibration.threshold,
            detector: Mutex::new(detector),
        })
    }

    /// The manifest (method, parameters, threshold and rule, model, provenance) as JSON.
    pub fn manifest_json(&self) -> String {
        self.manifest.clone()
    }

    /// The model's class names.
    #[getter]
    pub fn classes(&self) -> Vec<String> {
        self.classes.clone()
    }

    #[getter]
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// The records `oodscope check` prints, as JSON (one per path, in order): a verdict, or why the
    /// file was skipped.
    #[pyo3(signature = (paths, batch_size = 64))]
    pub fn check_paths(&self, py: Python<'_>, paths: Vec<PathBuf>, batch_size: usize) -> PyResult<String> {
        if batch_size == 0 {
            return Err(error("batch_size must be at least 1"));
        }
        let records = py.detach(|| self.records(&paths, batch_size))?;
        serde_json::to_string(&records).map_err(|e| error(e.to_string()))
    }

    /// The records for encoded images (PNG, JPEG, … bytes, as a server receives them), in order: a
    /// verdict, or why the image was skipped.
    pub fn check_images(&self, py: Python<'_>, images: Vec<Vec<u8>>) -> PyResult<String> {
        let records = py.detach(|| {
            let d = self.lock();
            let pre = d.preprocess();
            let decoded: Vec<Result<Vec<f32>, String>> = images
                .iter()
                .map(|bytes| oodscope_data::decode::decode_bytes(bytes, &pre).map_err(|e| e.0))
                .collect();
            let pixels: Vec<Vec<f32>> = decoded.iter().filter_map(|d| d.as_ref().ok().cloned()).collect();
            let verdicts = d.score_pixels(&pixels).map_err(|e| e.to_string())?;
            let mut verdicts = verdicts.into_iter();
            let records: Vec<Record> = decoded
                .iter()
                .enumerate()
                .map(|(index, result)| {
                    let place = Place::Index(index);
                    match result {
                        Ok(_) => verdicts.next().map_or_else(
                            || Record::skipped(place.clone(), "not scored".into()),
                            |v| Record::verdict(&d, &v, place.clone()),
                        ),
                        Err(why) => Record::skipped(place, why.clone()),
                    }
                })
                .collect();
            Ok::<_, String>(records)
        });
        serde_json::to_string(&records.map_err(error)?).map_err(|e| error(e.to_string()))
    }

    /// Verdicts on outputs of the detector's model captured in Python (its method scored from
    /// them with the detector's fit and head).
    #[pyo3(signature = (logits, features = None))]
    pub fn check_outputs<'py>(
        &self,
        py: Python<'py>,
        logits: PyReadonlyArray2<'py, f32>,
        features: Option<PyReadonlyArray2<'py, f32>>,
    ) -> PyResult<Verdicts<'py>> {
        let outputs = outputs_of(&logits, features.as_ref())?;
        let (scores, is_ood, p_values, classes, probabilities) = py
            .detach(|| {
                let d = self.lock();
                let params: Vec<(String, f64)> = d.settings.params.iter().map(|(n, v)| (n.to_string(), v)).collect();
                let scores = score_arrays(
                    &ArrayScoring {
                        outputs: &outputs,
                        classes: d.classes(),
                        fit: d.fit.as_ref(),
                        head: d.model.head.as_ref(),
                    },
                    d.settings.method.name(),
                    &params,
                )?;
                let mut is_ood = Vec::with_capacity(scores.len());
                let mut p_values = Vec::with_capacity(scores.len());
                let mut classes = Vec::with_capacity(scores.len());
                let mut probabilities = Vec::with_capacity(scores.len());
                for (row, &score) in outputs.logits.chunks_exact(outputs.logit_width).zip(&scores) {
                    let (class, probability) = top_class(row);
                    let v = d.verdict(score, class, probability);
                    is_ood.push(v.is_ood);
                    p_values.push(v.p_value);
                    classes.push(class as i64);
                    probabilities.push(probability);
                }
                Ok::<_, String>((scores, is_ood, p_values, classes, probabilities))
            })
            .map_err(error)?;
        Ok((
            PyArray1::from_vec(py, scores),
            PyArray1::from_vec(py, is_ood),
            PyArray1::from_vec(py, p_values),
            PyArray1::from_vec(py, classes),
            PyArray1::from_vec(py, probabilities),
        ))
    }
}

impl NativeDetector {
    fn lock(&self) -> std::sync::MutexGuard<'_, SavedDetector> {
        self.detector.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn records(&self, paths: &[PathBuf], batch_size: usize) -> PyResult<Vec<Record>> {
        let d = self.lock();
        let (files, missing): (Vec<&PathBuf>, Vec<&PathBuf>) = paths.iter().partition(|p| p.is_file());
        let files: Vec<PathBuf> = files.into_iter().cloned().collect();
        let set = ImageSet::from_files("check", Role::Id, &files);
        let run = d
            .score_sets(
                std::slice::from_ref(&set),
                batch_size,
                &AtomicBool::new(false),
                &mut |_| {},
            )
            .map_err(|e| error(e.to_string()))?;
        let mut by_path = std::collections::HashMap::new();
        for (i, image) in run.images.iter().enumerate() {
            let v = d.verdict(run.scores()[i], image.pred as usize, image.pred_prob);
            let path = set.item_name(image.index);
            by_path.insert(path.clone(), Record::verdict(&d, &v, Place::Path(path)));
        }
        for s in &run.skipped {
            by_path.insert(
                s.path.clone(),
                Record::skipped(Place::Path(s.path.clone()), s.reason.clone()),
            );
        }
        let mut records = Vec::with_capacity(paths.len());
        for index in 0..files.len() {
            let path = set.item_name(index);
            let record = by_path
                .remove(&path)
                .unwrap_or_else(|| Record::skipped(Place::Path(path), "not scored".into()));
            records.push(record);
        }
        for path in missing {
            let reason = if path.is_dir() {
                "a folder: give image files"
            } else {
                "no such file"
            };
            records.push(Record::skipped(
                Place::Path(oodscope_data::path_to_text(path)),
                reason.into(),
            ));
        }
        Ok(records)
    }
}

/// Where a record's image came from: its path, or its place in a request of encoded images.
#[derive(Clone, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Place {
    Path(String),
    Index(usize),
}

/// One record as `oodscope check` prints it (floats as their float32 text, as the CLI writes them).
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Record {
    Verdict {
        #[serde(flatten)]
        place: Place,
        verdict: &'static str,
        score: f32,
        p_value: f64,
        class: String,
        class_index: usize,
        probability: f32,
    },
    Skipped {
        #[serde(flatten)]
        place: Place,
        skipped: String,
    },
}

impl Record {
    fn verdict(d: &SavedDetector, v: &oodscope_engine::deploy::Verdict, place: Place) -> Record {
        Record::Verdict {
            place,
            verdict: if v.is_ood { "ood" } else { "id" },
            score: v.score,
            p_value: v.p_value,
            class: d.classes().get(v.class).cloned().unwrap_or_default(),
            class_index: v.class,
            probability: v.probability,
        }
    }

    fn skipped(place: Place, skipped: String) -> Record {
        Record::Skipped { place, skipped }
    }
}

/// The predicted class of a row of logits and its softmax probability.
fn top_class(logits: &[f32]) -> (usize, f32) {
    let (class, top) =
        logits.iter().copied().enumerate().fold(
            (0, f32::NEG_INFINITY),
            |best, (i, v)| if v > best.1 { (i, v) } else { best },
        );
    let total: f64 = logits.iter().map(|&v| f64::from(v - top).exp()).sum();
    (class, (1.0 / total) as f32)
}
