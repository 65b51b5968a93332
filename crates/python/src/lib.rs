//! `oodscope._native`: the engine in the Python interpreter's process (the package in
//! `python/oodscope/` wraps it). Every failure is an `oodscope.OodscopeError` with one line; a
//! panic, were one to happen, is a Python exception too (PyO3 catches it), never an abort.

mod arrays;
mod blocks;
mod convert;
mod detector;
mod fit;
mod results;

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

create_exception!(
    oodscope,
    OodscopeError,
    PyValueError,
    "A request oodscope cannot carry out, with the reason in one line."
);

/// An error message as an [`OodscopeError`].
pub(crate) fn error(message: impl Into<String>) -> PyErr {
    OodscopeError::new_err(message.into())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // As the command line does: libtorch's tensor buffers stay in the heap between calls instead of
    // being mapped (and page-faulted in) afresh (engine::alloc; a fit of 50 000 × 512 took 6.2 s
    // with glibc's defaults, 5.5 s with these). OODSCOPE_MALLOC_DEFAULTS=1 keeps glibc's defaults.
    if std::env::var_os("OODSCOPE_MALLOC_DEFAULTS").is_none_or(|v| v != "1") {
        oodscope_engine::alloc::keep_tensor_buffers_in_the_heap();
    }
    m.add("OodscopeError", m.py().get_type::<OodscopeError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(arrays::methods, m)?)?;
    m.add_function(wrap_pyfunction!(arrays::score, m)?)?;
    m.add_function(wrap_pyfunction!(arrays::metrics, m)?)?;
    m.add_function(wrap_pyfunction!(blocks::reduce_blocks, m)?)?;
    m.add_function(wrap_pyfunction!(fit::fit_arrays, m)?)?;
    m.add_function(wrap_pyfunction!(results::save_results, m)?)?;
    m.add_class::<fit::NativeFit>()?;
    m.add_class::<detector::NativeDetector>()?;
    Ok(())
}
