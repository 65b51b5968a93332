//! Fits in Python: made from arrays (the same file as `oodscope fit`, the head kept inside) or
//! loaded from a file, held in memory for scoring.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::convert::{head_of, outputs_of};
use crate::error;
use oodscope_engine::arrays::{FitRequest, fit_arrays as engine_fit_arrays, head_of_fit};
use oodscope_engine::model::Head;
use oodscope_engine::stats::Fit;

/// A fit and its head (when it keeps one).
pub struct FitParts {
    pub fit: Fit,
    pub head: Option<Head>,
}

/// A loaded fit. Its tensors are used by one call at a time (libtorch tensors may move between
/// threads, not be shared), each call with the interpreter's lock released.
#[pyclass(module = "oodscope._native", frozen)]
pub struct NativeFit {
    parts: Mutex<FitParts>,
    path: PathBuf,
    info: String,
    has_head: bool,
    /// The names of the tensors the fit file holds.
    tensors: Vec<String>,
}

impl NativeFit {
    fn new(fit: Fit) -> Result<NativeFit, String> {
        let head = head_of_fit(&fit)?;
        Ok(NativeFit {
            path: fit.info.path.clone(),
            info: fit.info.to_json().to_string(),
            has_head: head.is_some(),
            tensors: fit.stored.iter().cloned().collect(),
            parts: Mutex::new(FitParts { fit, head }),
        })
    }

    /// The fit and its head, for one call.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, FitParts> {
        self.parts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[pymethods]
impl NativeFit {
    /// Loads a fit file, checking its digest and its header against its tensors.
    #[staticmethod]
    pub fn load(py: Python<'_>, path: PathBuf) -> PyResult<NativeFit> {
        py.detach(|| NativeFit::new(Fit::load_unbound(&path, tch::Device::Cpu, usize::MAX)?))
            .map_err(error)
    }

    /// The fit file's provenance as JSON.
    pub fn info_json(&self) -> String {
        self.info.clone()
    }

    /// The file the fit was read from.
    #[getter]
    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }

    #[getter]
    pub fn has_head(&self) -> bool {
        self.has_head
    }

    /// The names of the tensors the fit file holds (a method reads its `fit_tensors`).
    #[getter]
    pub fn tensors(&self) -> Vec<String> {
        self.tensors.clone()
    }
}

/// Writes the fit of these outputs at `path` and loads it back.
#[pyfunction]
#[pyo3(signature = (path, logits, features, labels, head, classes, source, class_covariances = false, blocks = None))]
#[allow(clippy::too_many_arguments)]
pub fn fit_arrays<'py>(
    py: Python<'py>,
    path: PathBuf,
    logits: PyReadonlyArray2<'py, f32>,
    features: Option<PyReadonlyArray2<'py, f32>>,
    labels: Option<PyReadonlyArray1<'py, i64>>,
    head: Option<(PyReadonlyArray2<'py, f32>, PyReadonlyArray1<'py, f32>)>,
    classes: Vec<String>,
    source: String,
    class_covariances: bool,
    blocks: Option<(PyReadonlyArray2<'py, f32>, Vec<usize>)>,
) -> PyResult<NativeFit> {
    let mut outputs = outputs_of(&logits, features.as_ref())?;
    outputs.blocks = crate::blocks::block_rows(blocks, outputs.rows)?;
    let head = head_of(head, &outputs)?;
    let labels: Option<Vec<i64>> = match &labels {
        Some(l) => Some(
            l.as_slice()
                .map_err(|_| error("labels must be a contiguous int64 array"))?
                .to_vec(),
        ),
        None => None,
    };
    let cancel = AtomicBool::new(false);
    py.detach(move || {
        let request = FitRequest {
            outputs: &outputs,
            labels: labels.as_deref(),
            head: head.as_ref(),
            classes,
            source,
            class_covariances,
        };
        engine_fit_arrays(&request, &path, &cancel).map_err(|e| e.to_string())?;
        NativeFit::new(Fit::load_unbound(&path, tch::Device::Cpu, usize::MAX)?)
    })
    .map_err(error)
}
