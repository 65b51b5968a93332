//! The scoring methods of SCORING.md on tch tensors, and the batched, streaming run over image sets.

pub mod methods;
pub mod rescore;
pub mod run;
pub mod settings;

pub use methods::{BatchScores, score_batch};
pub use run::{
    DecodeSchedule, ImageScore, Progress, RunError, ScoreRun, SkippedFile, StageTimes, run_scoring, run_scoring_with,
};
pub use settings::{Method, ScoreSettings};
