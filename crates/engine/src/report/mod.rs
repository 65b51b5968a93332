//! Output shared by the CLI and the GUI: metrics table, scores CSV, report JSON, histogram PNG.

pub mod compare_files;
pub mod csv;
pub mod heatmap;
pub mod histogram;
pub mod json;
pub mod png;
pub mod roc;
pub mod table;
pub mod tuning;
