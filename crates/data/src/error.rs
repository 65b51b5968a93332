//! The data crate's error at its boundary: a set that cannot be used, a shard or preprocessing that
//! makes no sense. (A single image that cannot be decoded is not an error: it is skipped with its
//! reason, `SkipReason`, and the run goes on.)

/// Why a set, a shard or a card's preprocessing cannot be used; each message names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{spec}: no such folder")]
    NotFound { spec: String },
    #[error("{spec}: not a folder")]
    NotAFolder { spec: String },
    #[error("{spec}: no images found (looked for {extensions}, recursively)")]
    Empty { spec: String, extensions: String },
    /// A set spec that is neither a folder nor `uniform:N` / `gaussian:N`.
    #[error("{spec}: {message}")]
    BadSpec { spec: String, message: String },
    /// `--shard i/n` out of range or not of that form.
    #[error("{0}")]
    BadShard(String),
    /// The card's `resize`, `crop`, `interpolation` or `backend` fields.
    #[error("{0}")]
    BadPreprocessing(String),
}

/// The set errors' former name.
pub type SetError = Error;
