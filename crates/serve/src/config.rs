//! What `oodscope serve` is started with ([`ServeOptions`]), checked before anything is loaded.

use std::path::PathBuf;
use std::time::Duration;

use oodscope_engine::model::DeviceChoice;

use crate::error::ServeError;

/// The server's settings: the detector file, where to listen, batching, back-pressure and limits.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The saved detector (`oodscope detector save`): the whole state of a replica.
    pub detector: PathBuf,
    /// Address to listen on (`127.0.0.1`, `0.0.0.0`, `::`).
    pub host: String,
    /// Port to listen on; 0 picks a free one (printed in the ready line).
    pub port: u16,
    /// Most images scored together in one forward pass.
    pub max_batch: usize,
    /// How long the first request of a batch waits for others to join it.
    pub max_delay: Duration,
    /// Most requests admitted and not yet answered (decoding, waiting or in the model); one more is
    /// answered 503 with `Retry-After` at once.
    pub max_queue: usize,
    /// Largest request body accepted, in bytes; a larger one is answered 413.
    pub max_body_bytes: usize,
    /// Time a request has from its arrival to its answer; past it, 504 (408 while its body is still
    /// arriving), and the model skips it.
    pub deadline: Duration,
    /// How many of the last flagged (OOD) inputs to keep for `/oodscope/v1/flagged` (0: none).
    pub keep_flagged: usize,
    /// Where the model runs.
    pub device: DeviceChoice,
}

impl ServeOptions {
    /// Options with the command line's defaults for `detector`.
    pub fn new(detector: PathBuf) -> ServeOptions {
        ServeOptions {
            detector,
            host: "127.0.0.1".into(),
            port: 8000,
            max_batch: 32,
            max_delay: Duration::from_millis(5),
            max_queue: 256,
            max_body_bytes: 32 << 20,
            deadline: Duration::from_secs(30),
            keep_flagged: 0,
            device: DeviceChoice::Auto,
        }
    }

    /// Refuses settings that cannot serve a request, naming the flag.
    pub fn check(&self) -> Result<(), ServeError> {
        let refuse = |text: &str| Err(ServeError::Options(text.to_string()));
        if self.max_batch == 0 {
            return refuse("--max-batch must be at least 1");
        }
        if self.max_queue == 0 {
            return refuse("--max-queue must be at least 1");
        }
        if self.max_body_bytes == 0 {
            return refuse("--max-body-mb must be at least 1");
        }
        if self.deadline.is_zero() {
            return refuse("--deadline-ms must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_settings_are_refused_by_flag() {
        let good = ServeOptions::new("d.oodsd".into());
        assert!(good.check().is_ok());
        type Change = fn(&mut ServeOptions);
        let cases: [(Change, &str); 4] = [
            (|o| o.max_batch = 0, "--max-batch"),
            (|o| o.max_queue = 0, "--max-queue"),
            (|o| o.max_body_bytes = 0, "--max-body-mb"),
            (|o| o.deadline = Duration::ZERO, "--deadline-ms"),
        ];
        for (change, flag) in cases {
            let mut options = good.clone();
            change(&mut options);
            let err = options.check().unwrap_err().to_string();
            assert!(err.starts_with(flag), "{err}");
        }
    }
}
