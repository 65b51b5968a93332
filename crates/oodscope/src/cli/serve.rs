//! `oodscope serve`: a saved detector behind the Open Inference Protocol (KServe V2) over HTTP, with
//! dynamic batching, back-pressure, deadlines, Prometheus metrics and a graceful drain on SIGTERM
//! (the `oodscope-serve` crate; docs/serve.md).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use oodscope_engine::model::DeviceChoice;
use oodscope_serve::ServeOptions;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The detector file (`oodscope detector save`); its name is the OIP model name.
    #[arg(long, value_name = "FILE.oodsd")]
    pub detector: PathBuf,
    /// Address to listen on (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: a free one, printed when ready).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Most images scored together in one forward pass, across concurrent requests.
    #[arg(long, default_value_t = 32)]
    pub max_batch: usize,
    /// How long the first request of a batch waits for others to join it (milliseconds).
    #[arg(long, default_value_t = 5)]
    pub max_delay_ms: u64,
    /// Most requests admitted and not yet answered; one more is answered 503 with Retry-After.
    #[arg(long, default_value_t = 256)]
    pub max_queue: usize,
    /// Largest request body (MiB); a larger one is answered 413.
    #[arg(long, default_value_t = 32)]
    pub max_body_mb: usize,
    /// Time a request has from arrival to answer (milliseconds); past it 504, and the model skips it.
    #[arg(long, default_value_t = 30000)]
    pub deadline_ms: u64,
    /// Keep the last N flagged (OOD) inputs for /oodscope/v1/flagged (0: keep none).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_flagged: usize,
    /// auto (CUDA when available), cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

/// Serves until SIGTERM or SIGINT, then answers every accepted request and returns (exit 0).
pub fn serve_command(args: &ServeArgs) -> Result<()> {
    let Some(max_body_bytes) = args.max_body_mb.checked_mul(1 << 20) else {
        bail!("--max-body-mb {} is too large", args.max_body_mb);
    };
    let options = ServeOptions {
        detector: args.detector.clone(),
        host: args.host.clone(),
        port: args.port,
        max_batch: args.max_batch,
        max_delay: Duration::from_millis(args.max_delay_ms),
        max_queue: args.max_queue,
        max_body_bytes,
        deadline: Duration::from_millis(args.deadline_ms),
        keep_flagged: args.keep_flagged,
        device: args.device,
    };
    oodscope_serve::serve(options)?;
    Ok(())
}
