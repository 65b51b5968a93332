//! oodscope: out-of-distribution detection inspector for TorchScript image classifiers.
//!
//! Layers point one way: `cli → report → evaluate → score → model/data → metrics`.

pub mod cli;
pub mod data;
pub mod evaluate;
pub mod metrics;
pub mod model;
pub mod report;
pub mod score;
pub mod train;
