//! The streaming pipeline that `score` and `fit` both run on: image sets through a model's device
//! in batches (`stream`), with progress after every batch, skipped files and where the time went.

pub mod stream;

use std::time::Duration;

pub use stream::{DecodeSchedule, Item, Stream, StreamStats};

/// A file that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SkippedFile {
    pub set: usize,
    pub path: String,
    pub reason: String,
}

/// Progress of a run, reported after every batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Images handled so far (scored or skipped).
    pub done: usize,
    pub total: usize,
    pub skipped: usize,
    pub elapsed: Duration,
}

impl Progress {
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn eta(&self) -> Option<Duration> {
        let rate = self.rate();
        (self.done > 0 && rate > 0.0).then(|| Duration::from_secs_f64((self.total - self.done) as f64 / rate))
    }
}

/// The calling thread's time in a run, by stage (they add up to nearly all of `elapsed`).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StageTimes {
    /// Decoding a batch ([`DecodeSchedule::InTurn`]), or waiting for the producer to deliver one.
    pub decode: Duration,
    /// Building the batch tensor and moving it to the model's device.
    pub to_device: Duration,
    /// The methods' passes through the model and the copy of their results back.
    pub model: Duration,
}
