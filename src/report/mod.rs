//! Output shared by the CLI and the GUI: metrics table, scores CSV, report JSON, histogram PNG.

pub mod atomic;
pub mod csv;
pub mod histogram;
pub mod json;
pub mod table;

pub use atomic::write_atomically;
