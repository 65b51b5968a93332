//! Results files from Python: sets of outputs written as an ordinary oodscope results file (Parquet)
//! that `oodscope compare --from`, `score --from` and the window open.

use std::path::PathBuf;

use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::convert::outputs_of;
use crate::error;
use crate::fit::NativeFit;
use oodscope_data::Role;
use oodscope_engine::results::arrays::{ArrayProvenance, ArraySet, ExtraColumn, write};

/// One set as Python gives it: name, role (`id` / `ood`), logits, features, labels, paths.
type SetArrays<'py> = (
    String,
    String,
    PyReadonlyArray2<'py, f32>,
    Option<PyReadonlyArray2<'py, f32>>,
    Option<PyReadonlyArray1<'py, i64>>,
    Option<Vec<String>>,
);

/// Writes the sets (and the caller's own score columns, one value per row of every set in order)
/// into the results file `path`, atomically.
#[pyfunction]
#[pyo3(signature = (path, sets, classes, fit, extra))]
pub fn save_results<'py>(
    py: Python<'py>,
    path: PathBuf,
    sets: Vec<SetArrays<'py>>,
    classes: Vec<String>,
    fit: Option<PyRef<'py, NativeFit>>,
    extra: Vec<(String, PyReadonlyArray1<'py, f32>)>,
) -> PyResult<()> {
    let mut owned = Vec::with_capacity(sets.len());
    for (name, role, logits, features, labels, paths) in &sets {
        let role = match role.as_str() {
            "id" => Role::Id,
            "ood" => Role::Ood,
            other => {
                return Err(error(format!(
                    "set `{name}`: role must be `id` or `ood`, not `{other}`"
                )));
            }
        };
        let outputs = outputs_of(logits, features.as_ref())?;
        let labels: Option<Vec<i64>> = match labels {
            Some(l) => Some(
                l.as_slice()
                    .map_err(|_| error("labels must be a contiguous int64 array"))?
                    .to_vec(),
            ),
            None => None,
        };
        owned.push((name.clone(), role, outputs, labels, paths.clone()));
    }
    let mut columns = Vec::with_capacity(extra.len());
    for (name, scores) in &extra {
        let values = scores
            .as_slice()
            .map_err(|_| error(format!("score column `{name}` must be a contiguous float32 array")))?;
        columns.push((name.clone(), values.to_vec()));
    }
    let fit_info = fit.as_ref().map(|f| f.lock().fit.info.clone());
    py.detach(move || {
        let sets: Vec<ArraySet> = owned
            .iter()
            .map(|(name, role, outputs, labels, paths)| ArraySet {
                name,
                role: *role,
                outputs,
                labels: labels.as_deref(),
                paths: paths.as_deref(),
            })
            .collect();
        let extra: Vec<ExtraColumn> = columns
            .iter()
            .map(|(name, scores)| ExtraColumn { name, scores })
            .collect();
        write(
            &path,
            &sets,
            &extra,
            &ArrayProvenance {
                classes: &classes,
                fit: fit_info.as_ref(),
            },
        )
    })
    .map_err(error)
}
