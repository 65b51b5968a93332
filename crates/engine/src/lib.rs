//! oodscope's engine: everything between image files and scores, metrics and reports, with no
//! window and no command line (the serve and Python crates build on it too).
//!
//! Modules point one way (docs/architecture.md draws them):
//! `report → (compare, tune) → results → score → detect → model`, with `fit` producing what
//! `detect` reads, `evaluate` joining scores and `oodscope_metrics`, `output` (atomic files) under
//! `results` and `report`, and `oodscope_data` under all.

pub mod alloc;
pub mod arrays;
pub mod assets;
pub mod compare;
pub mod deploy;
pub mod detect;
mod error;
pub mod evaluate;
pub mod fit;
pub mod fuzzing;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod report;
pub mod results;
pub mod score;
pub mod stats;
pub mod tensor;
pub mod torch_libs;
pub mod tune;

/// Where the bundled models and demo assets are (see [`assets`]).
pub use assets::assets_root;
pub use error::{Error, Result};
