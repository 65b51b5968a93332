//! A load generator for the tests and the benchmark: `concurrency` clients, each on its own
//! keep-alive HTTP/1.1 connection (hyper's client), send `requests` POSTs in all and record each
//! answer's status and latency. Also [`request`], one request on a fresh connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One request body to send, with its headers.
#[derive(Debug, Clone)]
pub struct Payload {
    pub body: Bytes,
    /// `Inference-Header-Content-Length`, for a body with binary data.
    pub header_length: Option<usize>,
}

/// What to send, where, how many at once.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub addr: SocketAddr,
    /// e.g. `/v2/models/NAME/infer`.
    pub path: String,
    /// Sent in turn.
    pub payloads: Vec<Payload>,
    pub concurrency: usize,
    pub requests: usize,
}

/// What came back.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Requests answered, by status code.
    pub statuses: BTreeMap<u16, usize>,
    /// Requests that got no answer (connection refused, reset, …), with the first reason.
    pub transport_errors: usize,
    pub first_transport_error: Option<String>,
    /// Latencies of the 200 answers, sorted.
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
}

impl LoadReport {
    /// Answers with status `code`.
    pub fn count(&self, code: u16) -> usize {
        self.statuses.get(&code).copied().unwrap_or(0)
    }

    /// 200 answers per second.
    pub fn throughput(&self) -> f64 {
        self.count(200) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0 … 1) of the 200 answers' latencies (nearest rank).
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        let n = self.latencies.len();
        (n > 0).then(|| self.latencies[((q * n as f64).ceil() as usize).clamp(1, n) - 1])
    }

    fn merge(&mut self, other: LoadReport) {
        for (code, n) in other.statuses {
            *self.statuses.entry(code).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
        if self.first_transport_error.is_none() {
            self.first_transport_error = other.first_transport_error;
        }
        self.latencies.extend(other.latencies);
    }
}

/// Runs the load on a runtime of its own and returns what came back.
pub fn run_load(spec: &LoadSpec) -> std::io::Result<LoadReport> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    Ok(runtime.block_on(load(spec)))
}

async fn load(spec: &LoadSpec) -> LoadReport {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..spec.concurrency.max(1))
        .map(|_| tokio::spawn(client(spec.clone(), next.clone())))
        .collect();
    let mut report = LoadReport::default();
    for c in clients {
        match c.await {
            Ok(r) => report.merge(r),
            Err(e) => {
                report.transport_errors += 1;
                report.first_transport_error.get_or_insert(e.to_string());
            }
        }
    }
    report.elapsed = started.elapsed();
    report.latencies.sort();
    report
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

fn build(addr: SocketAddr, method: &str, path: &str, payload: &Payload) -> Result<Request<Full<Bytes>>, String> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    builder = match payload.header_length {
        Some(n) => builder
            .header("inference-header-content-length", n)
            .header("content-type", "application/octet-stream"),
        None => builder.header("content-type", "application/json"),
    };
    builder.body(Full::new(payload.body.clone())).map_err(|e| e.to_string())
}

async fn client(spec: LoadSpec, next: Arc<AtomicUsize>) -> LoadReport {
    let mut report = LoadReport::default();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        if i >= spec.requests || spec.payloads.is_empty() {
            return report;
        }
        let payload = &spec.payloads[i % spec.payloads.len()];
        // A connection the server closed (after a 503 it does not read the body) is replaced;
        // a request is retried only when it never left on the closed one.
        let mut outcome = Err(String::new());
        for _ in 0..3 {
            if sender.as_ref().is_none_or(SendRequest::is_closed) {
                match connect(spec.addr).await {
                    Ok(s) => sender = Some(s),
                    Err(e) => {
                        outcome = Err(format!("{CONNECT}{e}"));
                        continue;
                    }
                }
            }
            let Some(s) = sender.as_mut() else { continue };
            if s.ready().await.is_err() {
                sender = None;
                continue;
            }
            let request = match build(spec.addr, "POST", &spec.path, payload) {
                Ok(r) => r,
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            };
            let started = Instant::now();
            outcome = match s.send_request(request).await {
                Ok(response) => {
                    let status = response.status();
                    match response.into_body().collect().await {
                        Ok(_) => Ok((status, started.elapsed())),
                        Err(e) => Err(e.to_string()),
                    }
                }
                Err(e) if e.is_canceled() => {
                    sender = None;
                    continue;
                }
                Err(e) => Err(e.to_string()),
            };
            break;
        }
        match outcome {
            Ok((status, latency)) => {
                *report.statuses.entry(status.as_u16()).or_default() += 1;
                if status == StatusCode::OK {
                    report.latencies.push(latency);
                }
            }
            Err(e) => {
                sender = None;
                report.transport_errors += 1;
                // The server is gone (or never came): this client stops rather than spin.
                let refused = e.starts_with(CONNECT);
                report.first_transport_error.get_or_insert(e);
                if refused {
                    return report;
                }
            }
        }
    }
}

/// How a failure to connect starts its reason.
const CONNECT: &str = "cannot connect: ";

/// One answer: status, headers (names lower-case) and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Answer {
    /// A header's value by its lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// How long [`request`] waits for its answer before giving up.
pub const REQUEST_BOUND: Duration = Duration::from_secs(120);

/// Sends one request (`GET` with an empty payload, or `POST`) on a fresh connection; an answer that
/// does not come within [`REQUEST_BOUND`] is an error.
pub fn request(addr: SocketAddr, method: &str, path: &str, payload: &Payload) -> Result<Answer, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let answer = async {
        let mut sender = connect(addr).await?;
        let response = sender
            .send_request(build(addr, method, path, payload)?)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Answer { status, headers, body })
    };
    runtime.block_on(async {
        tokio::time::timeout(REQUEST_BOUND, answer)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", REQUEST_BOUND.as_secs())))
    })
}
