//! The HTTP routes: the Open Inference Protocol's health, metadata and infer endpoints, `/metrics`,
//! and the window's watch endpoints (`/oodscope/v1/watch`, `/oodscope/v1/flagged`). Every error is
//! an OIP error body `{"error": "…"}`; no request can panic the server.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::BodyExt;
use rayon::prelude::*;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::detector::{DetectorInfo, Verdict};
use crate::flagged::Flagged;
use crate::model_thread::{Job, JobOutcome};
use crate::monitor::{ErrorKind, Monitor, unix_seconds};
use crate::protocol::{self, InferRequest, OUTPUTS};

/// The header that says how long a body's JSON part is when binary data follows it.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub info: Arc<DetectorInfo>,
    pub max_queue: usize,
    pub max_body_bytes: usize,
    pub deadline: std::time::Duration,
    pub admission: Arc<Semaphore>,
    pub jobs: std::sync::mpsc::Sender<Job>,
    pub monitor: Arc<Monitor>,
    pub flagged: Arc<Mutex<Flagged>>,
}

impl AppState {
    /// Requests admitted and not yet answered.
    pub fn queue_depth(&self) -> usize {
        self.max_queue.saturating_sub(self.admission.available_permits())
    }
}

/// The server's routes over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v2", get(server_metadata))
        .route(
            "/v2/health/live",
            get(|| async { json_response(StatusCode::OK, &json!({"live": true})) }),
        )
        .route(
            "/v2/health/ready",
            get(|| async { json_response(StatusCode::OK, &json!({"ready": true})) }),
        )
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/metrics", get(metrics))
        .route("/oodscope/v1/watch", get(watch))
        .route("/oodscope/v1/flagged", get(flagged))
        .fallback(|| async {
            oip_error(
                StatusCode::NOT_FOUND,
                "no such endpoint: see docs/serve.md for the endpoints",
            )
        })
        .with_state(state)
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

/// An OIP error response: `{"error": message}`.
pub fn oip_error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

fn unknown_model(state: &AppState, name: &str) -> Response {
    oip_error(
        StatusCode::NOT_FOUND,
        &format!("unknown model '{name}': this server serves '{}'", state.info.name),
    )
}

async fn server_metadata() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"name": "oodscope", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"]}),
    )
}

async fn model_metadata(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    if name != state.info.name {
        return unknown_model(&state, &name);
    }
    let info = &state.info;
    let outputs: Vec<Value> = OUTPUTS
        .iter()
        .map(|(name, datatype)| json!({"name": name, "datatype": datatype, "shape": [-1]}))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "name": info.name,
            "versions": ["1"],
            "platform": "oodscope",
            "inputs": [{"name": protocol::INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
            "outputs": outputs,
            "oodscope": {
                "method": info.method,
                "threshold": info.threshold,
                "false_alarm": info.false_alarm,
                "classes": info.classes,
                "device": info.device,
            },
        }),
    )
}

async fn model_ready(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    if name != state.info.name {
        return unknown_model(&state, &name);
    }
    json_response(StatusCode::OK, &json!({"name": name, "ready": true}))
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.monitor.render(state.queue_depth());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn watch(State(state): State<AppState>) -> Response {
    let info = &state.info;
    let now = unix_seconds() as u64;
    let value = state.monitor.with_drift(|d| {
        json!({
            "name": info.name,
            "method": info.method,
            "threshold": info.threshold,
            "false_alarm": info.false_alarm,
            "calibration_scores": d.calibration(),
            "recent_scores": d.recent_scores(),
            "ood_rate": d.seconds(now),
            "window_ood_rate": d.window_ood_rate(),
            "ks_statistic": d.ks_statistic(),
            "totals": d.totals(),
        })
    });
    json_response(StatusCode::OK, &value)
}

async fn flagged(State(state): State<AppState>) -> Response {
    let list = state
        .flagged
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .list();
    json_response(StatusCode::OK, &json!(list))
}

/// A failed infer request: its status, metrics kind and message.
struct Failure {
    status: StatusCode,
    kind: ErrorKind,
    message: String,
}

fn fail(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Failure {
    Failure {
        status,
        kind,
        message: message.into(),
    }
}

async fn infer(State(state): State<AppState>, Path(name): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    match answer(&state, &name, &headers, body, started).await {
        Ok(response) => {
            state.monitor.ok(started.elapsed());
            response
        }
        Err(failure) => {
            state.monitor.error(failure.kind, started.elapsed());
            let mut response = oip_error(failure.status, &failure.message);
            if failure.kind == ErrorKind::QueueFull {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            response
        }
    }
}

async fn answer(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
    body: Body,
    started: Instant,
) -> Result<Response, Failure> {
    if name != state.info.name {
        return Err(fail(
            StatusCode::NOT_FOUND,
            ErrorKind::UnknownModel,
            format!("unknown model '{name}': this server serves '{}'", state.info.name),
        ));
    }
    let too_large = || {
        fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::TooLarge,
            format!(
                "the request body is over the {} MB limit (--max-body-mb): send fewer images per request",
                state.max_body_bytes >> 20
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes as u64) {
        discard_rest(body).await;
        return Err(too_large());
    }
    let _permit = admit(state)?;
    let deadline = started + state.deadline;
    let body = read_body(body, state.max_body_bytes, deadline, too_large).await?;
    let request = parse(headers, &body)?;
    let pixels = decode(state, &request).await?;
    let verdicts = score(state, pixels, deadline).await?;
    if let Ok(mut flagged) = state.flagged.lock() {
        flagged.keep(unix_seconds(), &request.images, &verdicts);
    }
    let encoded = protocol::encode_response(&state.info.name, &request, &verdicts);
    let mut response = Response::new(Body::from(encoded.body));
    let content_type = match encoded.header_length {
        Some(n) => {
            response.headers_mut().insert(HEADER_LENGTH, HeaderValue::from(n));
            "application/octet-stream"
        }
        None => "application/json",
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// A place among the admitted requests, or 503 at once.
fn admit(state: &AppState) -> Result<OwnedSemaphorePermit, Failure> {
    state.admission.clone().try_acquire_owned().map_err(|_| {
        fail(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::QueueFull,
            format!(
                "the server is busy ({} requests queued, --max-queue): retry after 1 s",
                state.max_queue
            ),
        )
    })
}

/// Reads the body until the deadline; past `limit`, the rest is read and dropped for a moment
/// ([`discard_rest`]) so the client can read its 413, as nginx's lingering close.
async fn read_body(
    mut body: Body,
    limit: usize,
    deadline: Instant,
    too_large: impl Fn() -> Failure,
) -> Result<Bytes, Failure> {
    let mut buffer = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline.into(), body.frame()).await {
            Err(_) => {
                return Err(fail(
                    StatusCode::REQUEST_TIMEOUT,
                    ErrorKind::BodyTimeout,
                    "the request body did not arrive before the deadline (--deadline-ms)",
                ));
            }
            Ok(None) => return Ok(Bytes::from(buffer)),
            Ok(Some(Err(e))) => {
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    ErrorKind::BodyRead,
                    format!("the request body could not be read: {e}"),
                ));
            }
            Ok(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else { continue };
                if buffer.len() + data.len() > limit {
                    discard_rest(body).await;
                    return Err(too_large());
                }
                buffer.extend_from_slice(&data);
            }
        }
    }
}

/// Reads and drops the rest of a refused body for at most [`LINGER`], so that a client still
/// writing it reads the answer rather than a reset connection.
pub async fn discard_rest(mut body: Body) {
    let until = tokio::time::Instant::now() + LINGER;
    while let Ok(Some(Ok(_))) = tokio::time::timeout_at(until, body.frame()).await {}
}

/// How long a refused body is still read (and dropped).
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

fn parse(headers: &HeaderMap, body: &Bytes) -> Result<InferRequest, Failure> {
    let malformed = |message: String| fail(StatusCode::BAD_REQUEST, ErrorKind::Malformed, message);
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
        let encoding = encoding.to_str().unwrap_or("?");
        if !encoding.eq_ignore_ascii_case("identity") {
            return Err(malformed(format!(
                "Content-Encoding {encoding} is not supported: send the body uncompressed"
            )));
        }
    }
    let header_length = match headers.get(HEADER_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    malformed(format!(
                        "Inference-Header-Content-Length is {v:?}: a byte count is expected"
                    ))
                })?,
        ),
    };
    protocol::parse_infer(body, header_length).map_err(|e| malformed(e.0))
}

/// Decodes the request's images on the blocking pool, in parallel; the first that cannot be decoded
/// fails this request alone (400 naming the item).
async fn decode(state: &AppState, request: &InferRequest) -> Result<Vec<Vec<f32>>, Failure> {
    let pre = state.info.preprocess;
    let images = request.images.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        images
            .par_iter()
            .map(|bytes| oodscope_data::decode::decode_bytes(bytes, &pre))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| {
        fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Model,
            format!("decoding failed: {e}"),
        )
    })?;
    decoded
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.map_err(|reason| {
                fail(
                    StatusCode::BAD_REQUEST,
                    ErrorKind::BadImage,
                    format!("input 'image' item {i}: cannot decode the image: {}", reason.0),
                )
            })
        })
        .collect()
}

/// Queues the images for the model thread and waits for its verdicts until the deadline.
async fn score(state: &AppState, images: Vec<Vec<f32>>, deadline: Instant) -> Result<Vec<Verdict>, Failure> {
    let (reply, answer) = oneshot::channel();
    let gone = || {
        fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Model,
            "the model thread has stopped",
        )
    };
    let job = Job {
        images,
        queued_at: Instant::now(),
        deadline,
        reply,
    };
    state.jobs.send(job).map_err(|_| gone())?;
    let late = || {
        fail(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Deadline,
            "not answered before the deadline (--deadline-ms): the server is overloaded; retry later",
        )
    };
    match tokio::time::timeout_at(deadline.into(), answer).await {
        Err(_) => Err(late()),
        Ok(Err(_)) => Err(gone()),
        Ok(Ok(JobOutcome::Expired)) => Err(late()),
        Ok(Ok(JobOutcome::Failed(reason))) => Err(fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Model,
            format!("the model failed on this request's batch: {reason}"),
        )),
        Ok(Ok(JobOutcome::Scored(verdicts))) => Ok(verdicts),
    }
}
