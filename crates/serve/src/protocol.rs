//! The Open Inference Protocol (KServe V2) over HTTP: parsing an infer request, JSON or with the
//! binary-data extension tritonclient and the kserve SDK use, and writing the response the same way.
//!
//! Requests: one input `image`, datatype BYTES, shape `[N]` (or `[N, 1]`), each element an encoded
//! image file. In JSON, BYTES elements are strings, and JSON strings cannot carry arbitrary bytes:
//! each element is the file base64-encoded, as a string or as `{"b64": "…"}` (KServe's V1 form). With
//! the binary-data extension, the body is the JSON header (`Inference-Header-Content-Length` bytes)
//! followed by the input's `parameters.binary_data_size` bytes: each element a 4-byte little-endian
//! length and its bytes (tritonclient's `serialize_byte_tensor`).
//!
//! Responses: the five outputs, each `[N]`, in JSON, or as binary data after the JSON header when the
//! request asks (`parameters.binary_data_output`, or an output's `parameters.binary_data`), the header
//! length then in `Inference-Header-Content-Length` (tritonclient asks for binary outputs by default).

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::detector::Verdict;

/// The one input the server takes.
pub const INPUT_NAME: &str = "image";

/// The outputs, in the order they are returned: (name, datatype).
pub const OUTPUTS: [(&str, &str); 5] = [
    ("score", "FP32"),
    ("is_ood", "BOOL"),
    ("p_value", "FP32"),
    ("class", "INT64"),
    ("probability", "FP32"),
];

/// A request the server cannot take: the message of a 400 (the OIP error body's text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

fn malformed(text: impl Into<String>) -> Malformed {
    Malformed(text.into())
}

/// One requested output and whether it is sent as binary data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedOutput {
    pub index: usize,
    pub binary: bool,
}

/// An infer request, parsed: its id, the encoded images and the outputs to send.
#[derive(Debug, Clone)]
pub struct InferRequest {
    pub id: Option<String>,
    pub images: Vec<Bytes>,
    pub outputs: Vec<WantedOutput>,
}

#[derive(Debug, Deserialize)]
struct RequestHeader {
    id: Option<Value>,
    #[serde(default)]
    parameters: Map<String, Value>,
    inputs: Vec<InputHeader>,
    #[serde(default)]
    outputs: Vec<OutputHeader>,
}

#[derive(Debug, Deserialize)]
struct InputHeader {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    data: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct OutputHeader {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

/// Parses an infer request's body; `header_length` is `Inference-Header-Content-Length` when sent
/// (the body then holds binary data after the JSON).
pub fn parse_infer(body: &Bytes, header_length: Option<usize>) -> Result<InferRequest, Malformed> {
    let json_end = match header_length {
        Some(n) if n > body.len() => {
            return Err(malformed(format!(
                "Inference-Header-Content-Length is {n} but the body has {} bytes",
                body.len()
            )));
        }
        Some(n) => n,
        None => body.len(),
    };
    let header: RequestHeader = serde_json::from_slice(&body[..json_end])
        .map_err(|e| malformed(format!("the request is not an inference request's JSON: {e}")))?;
    let input = match header.inputs.as_slice() {
        [one] if one.name == INPUT_NAME => one,
        [one] => {
            return Err(malformed(format!(
                "unexpected input '{}': this model takes one input, '{INPUT_NAME}' (BYTES [N], encoded image files)",
                one.name
            )));
        }
        inputs => {
            return Err(malformed(format!(
                "{} inputs given: this model takes one input, '{INPUT_NAME}' (BYTES [N], encoded image files)",
                inputs.len()
            )));
        }
    };
    if input.datatype != "BYTES" {
        return Err(malformed(format!(
            "input '{INPUT_NAME}' has datatype {}: send BYTES (encoded image files)",
            input.datatype
        )));
    }
    let count = element_count(&input.shape)?;
    let binary = body.slice(json_end..);
    let images = match (&input.data, binary_size(&input.parameters)?) {
        (Some(_), Some(_)) => {
            return Err(malformed(format!(
                "input '{INPUT_NAME}' has both 'data' and 'binary_data_size': send one"
            )));
        }
        (Some(data), None) => json_elements(data)?,
        (None, Some(size)) => {
            if size != binary.len() {
                return Err(malformed(format!(
                    "input '{INPUT_NAME}' says binary_data_size {size} but {} bytes follow the JSON header",
                    binary.len()
                )));
            }
            binary_elements(&binary)?
        }
        (None, None) => {
            return Err(malformed(format!(
                "input '{INPUT_NAME}' has no 'data' (and no binary_data_size)"
            )));
        }
    };
    if images.len() != count {
        return Err(malformed(format!(
            "input '{INPUT_NAME}' has shape {:?} but {} elements",
            input.shape,
            images.len()
        )));
    }
    let binary_default = flag(&header.parameters, "binary_data_output")?.unwrap_or(false);
    Ok(InferRequest {
        id: header.id.map(|id| match id {
            Value::String(s) => s,
            other => other.to_string(),
        }),
        images,
        outputs: wanted_outputs(&header.outputs, binary_default)?,
    })
}

/// N from a shape `[N]` or `[N, 1]`, N ≥ 1.
fn element_count(shape: &[i64]) -> Result<usize, Malformed> {
    let n = match shape {
        [n] | [n, 1] => *n,
        _ => {
            return Err(malformed(format!(
                "input '{INPUT_NAME}' has shape {shape:?}: send [N], one encoded image per element"
            )));
        }
    };
    match usize::try_from(n) {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(malformed(format!(
            "input '{INPUT_NAME}' has shape {shape:?}: N must be at least 1"
        ))),
    }
}

fn binary_size(parameters: &Map<String, Value>) -> Result<Option<usize>, Malformed> {
    match parameters.get("binary_data_size") {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| malformed(format!("binary_data_size is {v}: a byte count is expected"))),
    }
}

fn flag(parameters: &Map<String, Value>, name: &str) -> Result<Option<bool>, Malformed> {
    match parameters.get(name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(malformed(format!("parameter {name} is {v}: true or false is expected"))),
    }
}

/// The JSON elements (nested lists flattened in row-major order, as OIP allows), base64-decoded.
fn json_elements(data: &Value) -> Result<Vec<Bytes>, Malformed> {
    let mut flat = Vec::new();
    flatten(data, &mut flat);
    flat.iter()
        .enumerate()
        .map(|(i, v)| {
            let text = match v {
                Value::String(s) => s.as_str(),
                Value::Object(o) => match o.get("b64") {
                    Some(Value::String(s)) => s.as_str(),
                    _ => return Err(malformed(format!("input '{INPUT_NAME}' item {i}: an object element needs \"b64\": \"<base64>\""))),
                },
                other => {
                    return Err(malformed(format!(
                        "input '{INPUT_NAME}' item {i} is {}: each element is an image file, base64-encoded",
                        kind_of(other)
                    )));
                }
            };
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map(Bytes::from)
                .map_err(|e| {
                    malformed(format!(
                        "input '{INPUT_NAME}' item {i} is not base64 ({e}): in JSON each image file is base64-encoded; raw bytes go in the binary-data extension"
                    ))
                })
        })
        .collect()
}

fn flatten<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        other => out.push(other),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// BYTES elements in binary: each a 4-byte little-endian length and that many bytes.
fn binary_elements(data: &Bytes) -> Result<Vec<Bytes>, Malformed> {
    let mut items = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let Some(prefix) = data.get(at..at + 4) else {
            return Err(malformed(format!(
                "input '{INPUT_NAME}' item {}: its 4-byte length is cut off",
                items.len()
            )));
        };
        let length = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        let start = at + 4;
        let end = start.saturating_add(length);
        if end > data.len() {
            return Err(malformed(format!(
                "input '{INPUT_NAME}' item {}: its length says {length} bytes but {} remain",
                items.len(),
                data.len() - start
            )));
        }
        items.push(data.slice(start..end));
        at = end;
    }
    Ok(items)
}

fn wanted_outputs(requested: &[OutputHeader], binary_default: bool) -> Result<Vec<WantedOutput>, Malformed> {
    if requested.is_empty() {
        return Ok((0..OUTPUTS.len())
            .map(|index| WantedOutput {
                index,
                binary: binary_default,
            })
            .collect());
    }
    requested
        .iter()
        .map(|o| {
            let index = OUTPUTS.iter().position(|(name, _)| *name == o.name).ok_or_else(|| {
                let names: Vec<&str> = OUTPUTS.iter().map(|(n, _)| *n).collect();
                malformed(format!(
                    "unknown output '{}': the outputs are {}",
                    o.name,
                    names.join(", ")
                ))
            })?;
            let binary = flag(&o.parameters, "binary_data")?.unwrap_or(binary_default);
            Ok(WantedOutput { index, binary })
        })
        .collect()
}

/// A response body and, when it carries binary data, the length of its JSON header.
#[derive(Debug)]
pub struct EncodedResponse {
    pub body: Vec<u8>,
    pub header_length: Option<usize>,
}

/// The response to `request` from the model `model_name`: one verdict per image, in order.
pub fn encode_response(model_name: &str, request: &InferRequest, verdicts: &[Verdict]) -> EncodedResponse {
    let n = verdicts.len();
    let mut binary = Vec::new();
    let outputs: Vec<Value> = request
        .outputs
        .iter()
        .map(|wanted| {
            let (name, datatype) = OUTPUTS[wanted.index];
            let mut output = json!({"name": name, "datatype": datatype, "shape": [n]});
            if wanted.binary {
                let start = binary.len();
                append_binary(wanted.index, verdicts, &mut binary);
                output["parameters"] = json!({"binary_data_size": binary.len() - start});
            } else {
                output["data"] = json_values(wanted.index, verdicts);
            }
            output
        })
        .collect();
    let mut header = json!({"model_name": model_name, "outputs": outputs});
    if let Some(id) = &request.id {
        header["id"] = json!(id);
    }
    let mut body = header.to_string().into_bytes();
    let header_length = (!binary.is_empty()).then_some(body.len());
    body.extend_from_slice(&binary);
    EncodedResponse { body, header_length }
}

fn json_values(index: usize, verdicts: &[Verdict]) -> Value {
    let values: Vec<Value> = verdicts
        .iter()
        .map(|v| match index {
            0 => json!(v.score),
            1 => json!(v.is_ood),
            2 => json!(v.p_value as f32),
            3 => json!(v.class as i64),
            _ => json!(v.probability),
        })
        .collect();
    Value::Array(values)
}

fn append_binary(index: usize, verdicts: &[Verdict], out: &mut Vec<u8>) {
    for v in verdicts {
        match index {
            0 => out.extend_from_slice(&v.score.to_le_bytes()),
            1 => out.push(u8::from(v.is_ood)),
            2 => out.extend_from_slice(&(v.p_value as f32).to_le_bytes()),
            3 => out.extend_from_slice(&(v.class as i64).to_le_bytes()),
            _ => out.extend_from_slice(&v.probability.to_le_bytes()),
        }
    }
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
