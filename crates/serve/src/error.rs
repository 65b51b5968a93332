//! The serve crate's typed error ([`ServeError`]): what stops a server from starting or running.

use std::net::SocketAddr;

/// Why `serve` could not start or stopped; each is one line.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A setting that cannot serve (`--max-batch 0`, …).
    #[error("{0}")]
    Options(String),
    /// The detector file could not be loaded (its line names the file).
    #[error(transparent)]
    Detector(#[from] oodscope_engine::Error),
    /// The address is not one to listen on.
    #[error(
        "--host {host}: not an address to listen on ({reason}): give an IP address (127.0.0.1, 0.0.0.0, ::) or a host name"
    )]
    Host { host: String, reason: String },
    /// The port is taken or not allowed (the I/O error is in the message, not a source: one line).
    #[error("cannot listen on {addr}: {error} (choose another --port, or 0 for a free one)")]
    Bind { addr: SocketAddr, error: std::io::Error },
    /// The async runtime or the signal handlers could not start, or the server failed while running.
    #[error("the server failed: {0}")]
    Io(std::io::Error),
    /// The model thread could not start or ended unexpectedly.
    #[error("the model thread {0}")]
    ModelThread(String),
}

impl From<std::io::Error> for ServeError {
    fn from(error: std::io::Error) -> ServeError {
        ServeError::Io(error)
    }
}
