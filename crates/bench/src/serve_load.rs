//! `oodscope-bench serve-load`: drives any Open Inference Protocol server (`oodscope serve`, or the
//! Python server of scripts/bench_serve_python.py) with `oodscope_serve::loadgen` at several
//! concurrencies, one image per request: throughput and p50 / p99 latency per level, as one JSON
//! line (scripts/bench_serve.sh).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use oodscope_serve::loadgen::{LoadSpec, Payload, run_load};

#[derive(Debug, clap::Args)]
pub struct ServeLoadArgs {
    /// The server, HOST:PORT (an IP address).
    #[arg(long)]
    pub addr: SocketAddr,
    /// The model name in the infer path.
    #[arg(long)]
    pub model: String,
    /// Image files sent in turn, one per request.
    #[arg(long, required = true, num_args = 1..)]
    pub images: Vec<PathBuf>,
    /// Concurrency levels, comma-separated.
    #[arg(long, default_value = "1,8,64", value_delimiter = ',')]
    pub concurrency: Vec<usize>,
    /// Requests per level (after `--warmup` requests at that level, not counted).
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    #[arg(long, default_value_t = 200)]
    pub warmup: usize,
    /// Send JSON with base64 elements instead of the binary-data extension.
    #[arg(long)]
    pub json: bool,
    /// A label for the JSON lines (e.g. `oodscope` or `python`).
    #[arg(long, default_value = "server")]
    pub label: String,
}

pub fn run(args: &ServeLoadArgs) -> Result<serde_json::Value> {
    let payloads = args
        .images
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            Ok(payload(&bytes, args.json))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut levels = Vec::new();
    for &concurrency in &args.concurrency {
        let spec = |requests| LoadSpec {
            addr: args.addr,
            path: format!("/v2/models/{}/infer", args.model),
            payloads: payloads.clone(),
            concurrency,
            requests,
        };
        run_load(&spec(args.warmup))?;
        let report = run_load(&spec(args.requests))?;
        if report.transport_errors > 0 {
            bail!(
                "{} requests got no answer: {}",
                report.transport_errors,
                report.first_transport_error.unwrap_or_default()
            );
        }
        let ms = |q: f64| report.latency_quantile(q).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
        let level = serde_json::json!({
            "concurrency": concurrency,
            "requests": args.requests,
            "ok": report.count(200),
            "statuses": report.statuses,
            "seconds": report.elapsed.as_secs_f64(),
            "requests_per_s": report.throughput(),
            "p50_ms": ms(0.5),
            "p99_ms": ms(0.99),
        });
        eprintln!("{}: {level}", args.label);
        levels.push(level);
    }
    Ok(serde_json::json!({"bench": "serve-load", "server": args.label, "levels": levels}))
}

/// One image as an infer request: binary data (as tritonclient sends), or JSON with base64.
fn payload(file: &[u8], json: bool) -> Payload {
    use base64::Engine as _;
    if json {
        let data = base64::engine::general_purpose::STANDARD.encode(file);
        let body =
            serde_json::json!({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [data]}]});
        return Payload {
            body: body.to_string().into(),
            header_length: None,
        };
    }
    let header = serde_json::json!({
        "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": file.len() + 4}}],
    })
    .to_string();
    let header_length = header.len();
    let mut body = header.into_bytes();
    body.extend_from_slice(&(file.len() as u32).to_le_bytes());
    body.extend_from_slice(file);
    Payload {
        body: body.into(),
        header_length: Some(header_length),
    }
}
