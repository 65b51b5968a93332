//! The engine's error at its boundary: why a run, a fit, a load or a check did not give a result.
//! Callers match on the variant (a cancelled job, a missing folder, an unknown parameter), never on
//! the message's text.

use crate::model::ModelError;

/// Why the engine could not do what was asked; each says what, and names the file where one is
/// involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's cancel flag was raised.
    #[error("cancelled")]
    Cancelled,
    /// A model file or its card.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// An image set that could not be opened (no such folder, no images, a bad spec), or a shard
    /// that makes no sense.
    #[error(transparent)]
    Data(#[from] oodscope_data::Error),
    /// A method that this model (or the fit, or its absence) cannot run, and what it lacks.
    #[error("{message}")]
    Unsupported {
        method: String,
        missing: crate::detect::Missing,
        message: String,
    },
    /// A method's parameters that do not fit this model or fit (k over the bank's size, …).
    #[error("method `{method}`: {message}")]
    Parameters { method: String, message: String },
    /// Anything else, said in one line.
    #[error("{0}")]
    Invalid(String),
}

/// The engine's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
