//! Inner blocks' feature maps from `capture(blocks=[…])`, reduced as the command line reduces them
//! (`model::blocks`: each block's spatial mean and the last block's rank-1-free mean), and those
//! reductions handed back with outputs for scoring.

use numpy::{PyArray2, PyReadonlyArray2, PyReadonlyArray4, PyUntypedArrayMethods};
use pyo3::prelude::*;
use tch::Tensor;

use crate::error;
use oodscope_engine::model::blocks::{BlockRows, reduce};

/// One batch's block maps (float32 `[N, C_b, H_b, W_b]`, in `names` order) reduced: the rows
/// `[N, Σ C_b + C_last]` and each block's channels.
#[pyfunction]
pub fn reduce_blocks<'py>(
    py: Python<'py>,
    names: Vec<String>,
    maps: Vec<PyReadonlyArray4<'py, f32>>,
) -> PyResult<(Bound<'py, PyArray2<f32>>, Vec<usize>)> {
    let mut tensors = Vec::with_capacity(maps.len());
    for (name, map) in names.iter().zip(&maps) {
        let shape: Vec<i64> = map.shape().iter().map(|&s| s as i64).collect();
        let values = map
            .as_slice()
            .map_err(|_| error(format!("block `{name}`'s map must be a contiguous float32 array")))?;
        let t = Tensor::from_slice(values)
            .f_view(shape.as_slice())
            .map_err(|e| error(e.to_string()))?;
        tensors.push(t);
    }
    let batch = tensors.first().map_or(0, |t| t.size()[0]);
    let refs: Vec<&Tensor> = tensors.iter().collect();
    let reduced = reduce(&refs, &names, batch, true).map_err(error)?;
    let outputs = oodscope_engine::model::Outputs {
        logits: Tensor::new(),
        confidence: None,
        features: None,
        members: Vec::new(),
        block_means: reduced.means,
        rank1_removed: Some(reduced.rank1_removed),
        gram: reduced.gram,
    };
    let rows = BlockRows::of(&outputs, true).map_err(|e| error(e.to_string()))?;
    let width = rows.row_width();
    let array = numpy::ndarray::Array2::from_shape_vec((batch as usize, width), rows.values)
        .map_err(|e| error(e.to_string()))?;
    Ok((PyArray2::from_owned_array(py, array), rows.widths))
}

/// Captured block reductions (`[N, Σ C_b + C_last]` and the widths) as the engine's, checked
/// against the outputs' `rows`.
pub(crate) fn block_rows(blocks: Option<(PyReadonlyArray2<f32>, Vec<usize>)>, rows: usize) -> PyResult<BlockRows> {
    let Some((values, widths)) = blocks else {
        return Ok(BlockRows::default());
    };
    let (n, width, values) = crate::convert::matrix(&values, "block reductions")?;
    let block_rows = BlockRows {
        values,
        widths,
        gram: true,
    };
    if n != rows || width != block_rows.row_width() || block_rows.is_empty() {
        return Err(error(format!(
            "the block reductions have shape [{n}, {width}]; the outputs need [{rows}, {}] (capture them with capture(blocks=[…]))",
            block_rows.row_width()
        )));
    }
    Ok(block_rows)
}
