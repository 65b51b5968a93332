//! A fit file from arrays: the same accumulators, finishing passes and file as `oodscope fit`, fed
//! with outputs in memory instead of a pass of images through a model; the head is kept in the file
//! (there is no model file to read it from later).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use sha2::{Digest, Sha256};
use tch::{Device, Kind};

use super::check_outputs;
use crate::Error;
use crate::detect::cache::CachedOutputs;
use crate::fit::pass::{FeatureFile, Pass, Provenance, Shape, WriteError};
use crate::model::Head;
use crate::stats::FitInfo;
use crate::stats::info::{FORMAT_VERSION, LabelSource};

/// What a fit from arrays is made of.
pub struct FitRequest<'a> {
    pub outputs: &'a CachedOutputs,
    /// One class index per row (the true classes), or none (each row's predicted class is used).
    pub labels: Option<&'a [i64]>,
    pub head: Option<&'a Head>,
    /// The class names (one per logit column).
    pub classes: Vec<String>,
    /// Where the arrays came from, for the fit's provenance (`train_root`).
    pub source: String,
    /// Also keep each class's covariance (gmm), as `oodscope fit --class-covariances`.
    pub class_covariances: bool,
}

/// Rows added per step.
const CHUNK: usize = 8192;

/// Writes the fit of `request` at `out` (atomically: nothing is left behind on failure or cancel).
pub fn fit_arrays(request: &FitRequest, out: &Path, cancel: &AtomicBool) -> Result<FitInfo, Error> {
    let outputs = request.outputs;
    check_outputs(outputs).map_err(|m| Error::Invalid(format!("fit: {m}")))?;
    let c = outputs.logit_width;
    if request.classes.len() != c {
        return Err(Error::Invalid(format!(
            "fit: {} class names for {c} logit columns",
            request.classes.len()
        )));
    }
    let labels: Option<Vec<usize>> = match request.labels {
        Some(labels) => Some(check_labels(labels, outputs.rows, c)?),
        None => None,
    };
    let feature_width = (outputs.feature_width > 0).then_some(outputs.feature_width);
    crate::fit::check_class_covariances(c, feature_width, request.class_covariances)?;
    let torch = |e: tch::TchError| Error::Invalid(format!("fit: {}", crate::model::first_line(&e.to_string())));
    let head = match request.head {
        Some(h) => Some((
            h.weight.f_to_kind(Kind::Double).map_err(torch)?,
            h.bias.f_to_kind(Kind::Double).map_err(torch)?,
        )),
        None => None,
    };
    let shape = Shape {
        classes: c,
        feature_width: (outputs.feature_width > 0).then_some(outputs.feature_width),
        device: Device::Cpu,
        head,
    };
    let features = FeatureFile::create(out)
        .map_err(|e| Error::Invalid(format!("fit: cannot write beside {}: {e}", out.display())))?;
    let mut pass = Pass::of_shape(shape, labels.is_some(), features).map_err(torch)?;
    pass.store_head = request.head.is_some();
    pass.class_covariances = request.class_covariances;
    pass.keep_correct_logits(
        FeatureFile::create(out)
            .map_err(|e| Error::Invalid(format!("fit: cannot write beside {}: {e}", out.display())))?,
    );
    for start in (0..outputs.rows).step_by(CHUNK) {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let len = CHUNK.min(outputs.rows - start);
        let batch = outputs
            .outputs(start, len, Device::Cpu, true)
            .map_err(|e| Error::Invalid(format!("fit: {e}")))?;
        let chunk_labels = labels.as_ref().map(|l| &l[start..start + len]);
        pass.add(&batch, chunk_labels)
            .map_err(|e| Error::Invalid(format!("fit: {e}")))?;
    }
    let info = provenance(request, labels.is_some());
    pass.write(out, Provenance::from_info(info), cancel, &mut |_, _| {})
        .map_err(|e| match e {
            WriteError::Cancelled => Error::Cancelled,
            WriteError::Failed(m) => Error::Invalid(format!("fit: writing {}: {m}", out.display())),
        })
}

/// The labels as class indices, each in `0..classes`, one per row.
fn check_labels(labels: &[i64], rows: usize, classes: usize) -> Result<Vec<usize>, Error> {
    if labels.len() != rows {
        return Err(Error::Invalid(format!(
            "fit: {} labels for {rows} rows: give one label per row",
            labels.len()
        )));
    }
    labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            usize::try_from(l).ok().filter(|&l| l < classes).ok_or_else(|| {
                Error::Invalid(format!(
                    "fit: label {l} of row {i} is not a class index (0 to {})",
                    classes - 1
                ))
            })
        })
        .collect()
}

/// The fit's header: the arrays stand where a model and a folder would be (their hashes identify
/// the head and the data).
fn provenance(request: &FitRequest, labelled: bool) -> FitInfo {
    let outputs = request.outputs;
    let mut model = Sha256::new();
    model.update(format!("arrays {} {}\n", outputs.logit_width, outputs.feature_width));
    if let Some(head) = request.head
        && let (Ok(w), Ok(b)) = (
            crate::tensor::to_vec_f32(&head.weight),
            crate::tensor::to_vec_f32(&head.bias),
        )
    {
        for v in w.iter().chain(&b) {
            model.update(v.to_le_bytes());
        }
    }
    let mut data = Sha256::new();
    for v in outputs.logits.iter().chain(&outputs.features) {
        data.update(v.to_le_bytes());
    }
    for l in request.labels.unwrap_or_default() {
        data.update(l.to_le_bytes());
    }
    FitInfo {
        path: PathBuf::new(),
        format_version: FORMAT_VERSION,
        oodscope_version: env!("CARGO_PKG_VERSION").into(),
        model_file: "arrays".into(),
        model_sha256: format!("{:x}", model.finalize()),
        card: String::new(),
        train_root: request.source.clone(),
        train_listing_sha256: format!("{:x}", data.finalize()),
        train_files: outputs.rows,
        max_images: None,
        images: 0,
        skipped: 0,
        labels: if labelled {
            LabelSource::Given
        } else {
            LabelSource::Predicted
        },
        classes: request.classes.clone(),
        counts: Vec::new(),
        predicted_counts: Vec::new(),
        feature_width: (outputs.feature_width > 0).then_some(outputs.feature_width),
        class_covariances: request.class_covariances && outputs.feature_width > 0,
        block_widths: Vec::new(),
        preprocess: "none (outputs given as arrays)".into(),
        tensors_sha256: String::new(),
        cached: false,
    }
}
