//! The functions on outputs: the methods and their parameters, scoring, and the detection metrics.

use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{head_of, outputs_of};
use crate::error;
use crate::fit::NativeFit;
use oodscope_engine::arrays::{ArrayScoring, score_arrays};
use oodscope_engine::detect::{Dims, Method};

/// Every method as JSON: name, title, group, needs and parameters (for a model of `classes`
/// classes and `features` features).
#[pyfunction]
#[pyo3(signature = (classes = 10, features = None))]
pub fn methods(classes: usize, features: Option<usize>) -> PyResult<String> {
    let dims = Dims {
        classes,
        features,
        bank: None,
    };
    let list: Vec<serde_json::Value> = Method::all()
        .map(|m| {
            let needs = m.detector().needs();
            let params: Vec<serde_json::Value> = m
                .params(&dims)
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "name": p.name, "symbol": p.symbol, "label": p.label, "help": p.help,
                        "default": p.default, "min": p.min, "max": p.max, "integer": p.integer,
                        "grid": p.grid,
                    })
                })
                .collect();
            // `needs.gradient`: the method can take an input step (ε > 0); whether it does at its
            // defaults is `gradient_at_defaults` (ODIN yes; energy and Mahalanobis, ε = 0, no).
            let default_epsilon = m
                .params(&dims)
                .iter()
                .find(|p| p.name == "epsilon")
                .map_or(0.0, |p| p.default);
            serde_json::json!({
                "name": m.name(), "title": m.title(), "group": m.detector().group().title(),
                "gradient_at_defaults": needs.gradient && default_epsilon > 0.0,
                "needs": {
                    "features": needs.features, "head": needs.head, "fit": needs.fit,
                    "gradient": needs.gradient, "confidence": needs.confidence, "ensemble": needs.ensemble,
                    "blocks": needs.blocks || needs.pooled_block, "pooled_block": needs.pooled_block,
                },
                "params": params,
                "fit_tensors": m.detector().fit_tensors(),
            })
        })
        .collect();
    serde_json::to_string(&list).map_err(|e| error(e.to_string()))
}

/// Each row's score under `method` (higher = more in-distribution).
#[pyfunction]
#[pyo3(signature = (method, logits, features, classes, fit, head, params, blocks = None))]
#[allow(clippy::too_many_arguments)]
pub fn score<'py>(
    py: Python<'py>,
    method: &str,
    logits: PyReadonlyArray2<'py, f32>,
    features: Option<PyReadonlyArray2<'py, f32>>,
    classes: Vec<String>,
    fit: Option<PyRef<'py, NativeFit>>,
    head: Option<(PyReadonlyArray2<'py, f32>, PyReadonlyArray1<'py, f32>)>,
    params: Vec<(String, f64)>,
    blocks: Option<(PyReadonlyArray2<'py, f32>, Vec<usize>)>,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let mut outputs = outputs_of(&logits, features.as_ref())?;
    outputs.blocks = crate::blocks::block_rows(blocks, outputs.rows)?;
    let given_head = head_of(head, &outputs)?;
    let fit_ref: Option<&NativeFit> = fit.as_deref();
    let scores = py.detach(move || {
        let parts = fit_ref.map(NativeFit::lock);
        let head = given_head
            .as_ref()
            .or_else(|| parts.as_ref().and_then(|p| p.head.as_ref()));
        score_arrays(
            &ArrayScoring {
                outputs: &outputs,
                classes: &classes,
                fit: parts.as_ref().map(|p| &p.fit),
                head,
            },
            method,
            &params,
        )
    });
    Ok(PyArray1::from_vec(py, scores.map_err(error)?))
}

/// The detection metrics of ID and OOD scores (higher = more in-distribution), as a dict with the
/// report's keys.
#[pyfunction]
pub fn metrics<'py>(
    py: Python<'py>,
    id_scores: PyReadonlyArray1<'py, f32>,
    ood_scores: PyReadonlyArray1<'py, f32>,
) -> PyResult<Bound<'py, PyDict>> {
    let id = id_scores
        .as_slice()
        .map_err(|_| error("id_scores must be a contiguous float32 array"))?;
    let ood = ood_scores
        .as_slice()
        .map_err(|_| error("ood_scores must be a contiguous float32 array"))?;
    let m = oodscope_metrics::detection_metrics(id, ood).map_err(|e| error(e.to_string()))?;
    let dict = PyDict::new(py);
    dict.set_item("auroc", m.auroc)?;
    dict.set_item("fpr_at_95_tpr", m.fpr_at_95_tpr)?;
    dict.set_item("detection_error", m.detection_error)?;
    dict.set_item("aupr_in", m.aupr_in)?;
    dict.set_item("aupr_out", m.aupr_out)?;
    dict.set_item("fpr_at_95_tpr_ood_positive", m.fpr_at_95_tpr_ood_positive)?;
    dict.set_item("threshold_at_95_tpr", m.threshold_at_95_tpr)?;
    Ok(dict)
}
