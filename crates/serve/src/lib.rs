//! `oodscope serve`: a saved detector behind the Open Inference Protocol (KServe V2) over HTTP —
//! axum on hyper and tokio, dynamic batching on a model thread, back-pressure, deadlines, a graceful
//! drain on SIGTERM, Prometheus metrics with drift from the calibration, and the window's watch
//! endpoints. [`serve`] is the entry point; [`loadgen`] is the load generator of the tests and the
//! benchmark. See docs/serve.md.

pub mod config;
pub mod detector;
pub mod drift;
pub mod error;
pub mod flagged;
pub mod loadgen;
pub mod model_thread;
pub mod monitor;
pub mod protocol;
pub mod routes;
pub mod server;

pub use config::ServeOptions;
pub use error::ServeError;
pub use server::serve;
