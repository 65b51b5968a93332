//! Unit tests of the OIP parsing and encoding: what tritonclient and the kserve SDK send.

use super::*;

fn verdicts() -> Vec<Verdict> {
    vec![
        Verdict {
            score: 0.25,
            is_ood: true,
            p_value: 0.01,
            class: 3,
            probability: 0.5,
        },
        Verdict {
            score: 0.75,
            is_ood: false,
            p_value: 0.5,
            class: 1,
            probability: 0.875,
        },
    ]
}

/// A body in the binary-data extension, as tritonclient writes it.
fn binary_body(elements: &[&[u8]], json_extra: &str) -> (Bytes, usize) {
    let mut raw = Vec::new();
    for e in elements {
        raw.extend_from_slice(&(e.len() as u32).to_le_bytes());
        raw.extend_from_slice(e);
    }
    let header = format!(
        r#"{{"inputs":[{{"name":"image","shape":[{}],"datatype":"BYTES","parameters":{{"binary_data_size":{}}}}}]{json_extra}}}"#,
        elements.len(),
        raw.len()
    );
    let n = header.len();
    let mut body = header.into_bytes();
    body.extend_from_slice(&raw);
    (Bytes::from(body), n)
}

#[test]
fn json_elements_are_base64_as_strings_or_b64_objects() {
    let body = Bytes::from(
        r#"{"id":"r1","inputs":[{"name":"image","shape":[2],"datatype":"BYTES","data":["aGk=",{"b64":"AAE="}]}]}"#,
    );
    let request = parse_infer(&body, None).unwrap();
    assert_eq!(request.id.as_deref(), Some("r1"));
    assert_eq!(request.images, [Bytes::from("hi"), Bytes::from(&[0u8, 1][..])]);
    assert_eq!(request.outputs.len(), 5);
    assert!(request.outputs.iter().all(|o| !o.binary));
}

#[test]
fn binary_elements_are_length_prefixed_and_binary_output_is_honoured() {
    let (body, n) = binary_body(
        &[b"abc", b"", b"\x89PNG"],
        r#","parameters":{"binary_data_output":true}"#,
    );
    let request = parse_infer(&body, Some(n)).unwrap();
    assert_eq!(
        request.images,
        [Bytes::from("abc"), Bytes::new(), Bytes::from(&b"\x89PNG"[..])]
    );
    assert!(request.outputs.iter().all(|o| o.binary));
}

#[test]
fn malformed_requests_say_what_is_wrong() {
    let cases: [(&str, &str); 7] = [
        ("{", "not an inference request's JSON"),
        (r#"{"inputs":[]}"#, "0 inputs given"),
        (
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":["aGk="]}]}"#,
            "unexpected input 'x'",
        ),
        (
            r#"{"inputs":[{"name":"image","shape":[1],"datatype":"FP32","data":[1.0]}]}"#,
            "datatype FP32",
        ),
        (
            r#"{"inputs":[{"name":"image","shape":[2],"datatype":"BYTES","data":["aGk="]}]}"#,
            "shape [2] but 1 elements",
        ),
        (
            r#"{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","data":["@@"]}]}"#,
            "item 0 is not base64",
        ),
        (
            r#"{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","data":[3]}]}"#,
            "item 0 is a number",
        ),
    ];
    for (body, expected) in cases {
        let err = parse_infer(&Bytes::from(body), None).unwrap_err();
        assert!(err.0.contains(expected), "{body}: {err}");
    }
    let (body, n) = binary_body(&[b"abc"], "");
    let cut = body.slice(..body.len() - 1);
    let err = parse_infer(&cut, Some(n)).unwrap_err();
    assert!(err.0.contains("binary_data_size 7 but 6 bytes"), "{err}");
    assert!(parse_infer(&body, Some(body.len() + 1)).is_err());
    let unknown = Bytes::from(
        r#"{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","data":["aGk="]}],"outputs":[{"name":"logits"}]}"#,
    );
    assert!(
        parse_infer(&unknown, None)
            .unwrap_err()
            .0
            .contains("unknown output 'logits'")
    );
}

#[test]
fn responses_in_json_and_binary() {
    let body = Bytes::from(
        r#"{"inputs":[{"name":"image","shape":[2],"datatype":"BYTES","data":["aGk=","aGk="]}],"outputs":[{"name":"class"},{"name":"score","parameters":{"binary_data":true}}]}"#,
    );
    let request = parse_infer(&body, None).unwrap();
    let encoded = encode_response("m", &request, &verdicts());
    let n = encoded.header_length.unwrap();
    let header: Value = serde_json::from_slice(&encoded.body[..n]).unwrap();
    assert_eq!(header["model_name"], "m");
    assert_eq!(header["outputs"][0]["data"], json!([3, 1]));
    assert_eq!(header["outputs"][0]["datatype"], "INT64");
    assert_eq!(header["outputs"][1]["parameters"]["binary_data_size"], 8);
    let mut expected = 0.25f32.to_le_bytes().to_vec();
    expected.extend_from_slice(&0.75f32.to_le_bytes());
    assert_eq!(&encoded.body[n..], expected.as_slice());

    let all_json = parse_infer(
        &Bytes::from(r#"{"inputs":[{"name":"image","shape":[2],"datatype":"BYTES","data":["aGk=","aGk="]}]}"#),
        None,
    )
    .unwrap();
    let encoded = encode_response("m", &all_json, &verdicts());
    assert!(encoded.header_length.is_none());
    let value: Value = serde_json::from_slice(&encoded.body).unwrap();
    let names: Vec<&str> = value["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["score", "is_ood", "p_value", "class", "probability"]);
    assert_eq!(value["outputs"][1]["data"], json!([true, false]));
    assert_eq!(value["outputs"][2]["data"], json!([0.01f32, 0.5f32]));
}
