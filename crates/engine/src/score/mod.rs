//! Scoring runs: image sets streamed through a model in batches and scored by a plan's methods.

pub mod classes;
pub mod run;

pub use crate::detect::{Method, ScoreSettings};
pub use run::{BatchSink, ImageScore, Keep, ScoreRun, run_scoring, run_scoring_into, run_scoring_with, score_sets};
