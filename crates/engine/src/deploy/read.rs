//! Opening a detector file: its format and version, its digest (over the manifest and every
//! tensor), the manifest, the model (found by its path relative to the detector and checked by
//! hash, or written back from the file into a private folder), the fit tensors and the calibration.
//! Each failure is one line naming the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::manifest::{FORMAT, FORMAT_VERSION, Manifest};
use super::{Calibration, SavedDetector, names};
use crate::Error;
use crate::detect::plan::Plan;
use crate::model::{DeviceChoice, Model};
use crate::stats::fit_file::{DigestError, Reader};
use crate::stats::{Fit, FitInfo, short};

/// Reads and checks a detector file's header and contents (no model loaded yet).
pub fn open(path: &Path) -> Result<(Arc<Reader>, Manifest), Error> {
    let fail = |m: String| Error::Invalid(format!("detector {}: {m}", path.display()));
    if path.is_dir() {
        return Err(fail("is a folder, not a detector file".into()));
    }
    let reader = Reader::open(path).map_err(|m| fail(format!("{m}; it is not a detector file")))?;
    match reader.metadata.get("format").map(String::as_str) {
        Some(FORMAT) => {}
        Some(crate::stats::info::FORMAT) => {
            return Err(fail(
                "is a fit file, not a detector: make a detector with `oodscope detector save --fit FILE …`".into(),
            ));
        }
        _ => {
            return Err(fail(
                "not an oodscope detector file (its header has no `format = oodscope-detector`)".into(),
            ));
        }
    }
    let version: u32 = reader
        .metadata
        .get("format_version")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| fail("its header has no readable `format_version`".into()))?;
    if version > FORMAT_VERSION {
        return Err(fail(format!(
            "made in detector format {version}, newer than this oodscope reads ({FORMAT_VERSION}): upgrade oodscope"
        )));
    }
    match reader.check_digest() {
        Ok(_) => {}
        Err(DigestError::Mismatch) | Err(DigestError::Missing) => {
            return Err(fail(
                "is damaged: its contents do not match their digest (copy it again, or save it again)".into(),
            ));
        }
        Err(DigestError::Io(e)) => return Err(fail(format!("cannot read it: {e}"))),
    }
    let manifest: Manifest = reader
        .bytes(names::MANIFEST)
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("its manifest cannot be read: {e}")))
        .map_err(fail)?;
    if manifest.format != FORMAT || manifest.format_version != version {
        return Err(fail("its manifest disagrees with its header about the format".into()));
    }
    Ok((Arc::new(reader), manifest))
}

/// Loads a detector file on `device`: everything checked, ready to score.
pub fn load(path: &Path, device: DeviceChoice) -> Result<SavedDetector, Error> {
    let fail = |m: String| Error::Invalid(format!("detector {}: {m}", path.display()));
    let (reader, manifest) = open(path)?;
    let (model_path, extracted) = if manifest.model.embedded {
        let dir = extract_model(&reader, &manifest).map_err(fail)?;
        (dir.path().join(&manifest.model.file_name), Some(dir))
    } else {
        let base = path.parent().unwrap_or(Path::new("."));
        let model_path = base.join(&manifest.model.path);
        if !model_path.exists() {
            return Err(fail(format!(
                "its model {} (`{}` relative to the detector) is not there: put it back, or save the detector with --embed-model",
                model_path.display(),
                manifest.model.path
            )));
        }
        (model_path, None)
    };
    let model = Model::load(&model_path, device).map_err(|e| fail(format!("its model: {e}")))?;
    let hash = crate::stats::info::model_hash(&model).map_err(fail)?;
    if hash != manifest.model.sha256 {
        return Err(fail(format!(
            "its model {} differs from the one it was made with (model, card and head hash {} here, {} in the detector): use that model, or save the detector again",
            model_path.display(),
            short(&hash),
            short(&manifest.model.sha256)
        )));
    }
    let fit = match reader.has(names::FIT_INFO) {
        true => {
            let mut info: FitInfo = reader
                .bytes(names::FIT_INFO)
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("its fit provenance cannot be read: {e}")))
                .map_err(fail)?;
            info.path = path.to_path_buf();
            Some(Fit::from_checked(reader.clone(), info, &model).map_err(fail)?)
        }
        false => None,
    };
    let scores: Vec<f32> = reader
        .tensor(names::CALIBRATION)
        .and_then(|t| Vec::<f32>::try_from(t).map_err(|e| e.to_string()))
        .map_err(fail)?;
    if scores.len() != manifest.decision.calibration_images {
        return Err(fail(format!(
            "it holds {} calibration scores, its manifest says {}",
            scores.len(),
            manifest.decision.calibration_images
        )));
    }
    let calibration = match manifest.decision.false_alarm {
        Some(alpha) => Calibration::conformal(scores, alpha),
        None => Calibration::given(scores, manifest.decision.threshold),
    }
    .map_err(fail)?;
    if calibration.threshold != manifest.decision.threshold {
        return Err(fail(format!(
            "its threshold {} is not what its calibration scores give ({})",
            manifest.decision.threshold, calibration.threshold
        )));
    }
    let settings = manifest.method.clone();
    Plan::single(&model, &settings, fit.as_ref()).map_err(|e| fail(e.to_string()))?;
    Ok(SavedDetector {
        path: path.to_path_buf(),
        manifest,
        model,
        fit,
        settings,
        calibration,
        _extracted: extracted,
    })
}

/// Writes an embedded model's files into a private temporary folder (removed when the detector is
/// dropped), under their original names.
fn extract_model(reader: &Reader, manifest: &Manifest) -> Result<tempfile::TempDir, String> {
    let dir = tempfile::Builder::new()
        .prefix("oodscope-detector-")
        .tempdir()
        .map_err(|e| format!("cannot make a folder for its embedded model: {e}"))?;
    let m = &manifest.model;
    let mut files: Vec<(&str, PathBuf)> = vec![
        (names::MODEL_FILE, PathBuf::from(&m.file_name)),
        (names::MODEL_CARD, PathBuf::from(&m.card_file_name)),
    ];
    if let Some(head) = &m.head_file {
        files.push((names::MODEL_HEAD, PathBuf::from(head)));
    }
    for (tensor, relative) in files {
        if relative
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(format!(
                "its embedded file name `{}` is not a plain relative path",
                relative.display()
            ));
        }
        let bytes = reader.bytes(tensor)?;
        let target = dir.path().join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot write its embedded model: {e}"))?;
        }
        std::fs::write(&target, bytes).map_err(|e| format!("cannot write its embedded model: {e}"))?;
    }
    Ok(dir)
}
