//! NumPy arrays as the engine's outputs and heads (copied: the engine owns what it scores).

use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::error;
use oodscope_engine::arrays::head_from_values;
use oodscope_engine::detect::cache::CachedOutputs;
use oodscope_engine::model::{Head, HeadSource};

/// A contiguous float32 matrix's rows, width and values (copied: the engine owns its outputs).
pub(crate) fn matrix(array: &PyReadonlyArray2<f32>, what: &str) -> PyResult<(usize, usize, Vec<f32>)> {
    let shape = array.shape();
    let values = array
        .as_slice()
        .map_err(|_| error(format!("{what} must be a contiguous float32 array")))?;
    Ok((shape[0], shape[1], values.to_vec()))
}

/// Logits `[N, C]` and features `[N, D]` (optional) as the engine's outputs.
pub(crate) fn outputs_of(
    logits: &PyReadonlyArray2<f32>,
    features: Option<&PyReadonlyArray2<f32>>,
) -> PyResult<CachedOutputs> {
    let (rows, logit_width, logits) = matrix(logits, "logits")?;
    let (feature_width, features) = match features {
        Some(f) => {
            let (feature_rows, width, values) = matrix(f, "features")?;
            if feature_rows != rows {
                return Err(error(format!(
                    "the features have {feature_rows} rows and the logits {rows}: give one feature row per logit row"
                )));
            }
            if width == 0 {
                return Err(error("the features have no columns"));
            }
            (width, values)
        }
        None => (0, Vec::new()),
    };
    Ok(CachedOutputs {
        logits,
        logit_width,
        features,
        feature_width,
        member_widths: Vec::new(),
        blocks: Default::default(),
        rows,
    })
}

/// The head `(W, b)` given with the outputs, checked against them.
pub(crate) fn head_of(
    head: Option<(PyReadonlyArray2<f32>, PyReadonlyArray1<f32>)>,
    outputs: &CachedOutputs,
) -> PyResult<Option<Head>> {
    let Some((w, b)) = head else {
        return Ok(None);
    };
    let weight = w
        .as_slice()
        .map_err(|_| error("the head's W must be a contiguous float32 array"))?;
    let bias = b
        .as_slice()
        .map_err(|_| error("the head's b must be a contiguous float32 array"))?;
    head_from_values(weight, bias, outputs, HeadSource::Submodule("(W, b) given".into()))
        .map(Some)
        .map_err(error)
}
