//! `oodscope serve` (issue section 3): the real binary on 127.0.0.1 with a detector made by
//! `oodscope detector save` on the bundled model. Health and metadata, infer in JSON and with the
//! binary-data extension, outputs equal to `oodscope check`'s and `oodscope score`'s, bad input
//! answered per request, metrics, the watch endpoints, start-up errors. Load, back-pressure, slow
//! clients and SIGTERM: `serve_load.rs`; tritonclient and the kserve SDK: `serve_clients.rs`.

use base64::Engine as _;
use serde_json::json;

use oodscope_serve::loadgen::{Answer, Payload};

use crate::serve_harness::*;
use crate::support;

#[test]
fn health_metadata_and_outputs_equal_checks_in_json_and_binary() {
    let server = Server::start(&["--max-batch", "8"]);
    assert_eq!(server.get("/v2/health/live").json(), json!({"live": true}));
    assert_eq!(server.get("/v2/health/ready").json(), json!({"ready": true}));
    let meta = server.get(&format!("/v2/models/{NAME}")).json();
    assert_eq!(meta["name"], NAME);
    assert_eq!(
        meta["inputs"][0],
        json!({"name": "image", "datatype": "BYTES", "shape": [-1]})
    );
    assert_eq!(meta["outputs"].as_array().unwrap().len(), 5);
    assert_eq!(server.get(&format!("/v2/models/{NAME}/ready")).json()["ready"], true);
    let wrong = server.get("/v2/models/other/ready");
    assert_eq!(wrong.status, 404);
    assert!(
        wrong.json()["error"]
            .as_str()
            .unwrap()
            .contains("unknown model 'other'")
    );

    // 12 Fashion-MNIST images and 12 digits: ID and OOD verdicts both; 24 > max batch 8.
    let files = demo_images(12, 12);
    let reference = checked(&files);
    assert!(reference.iter().any(|r| r["verdict"] == "ood") && reference.iter().any(|r| r["verdict"] == "id"));
    let bytes = read_all(&files);
    let by_json = server.infer(&json_request(&bytes));
    assert_eq!(by_json.header("content-type"), Some("application/json"));
    assert_same(&outputs(&by_json), &reference);
    let by_binary = server.infer(&binary_request(&bytes));
    assert!(by_binary.header("inference-header-content-length").is_some());
    assert_same(&outputs(&by_binary), &reference);
    // One image alone (a batch of one).
    assert_same(
        &outputs(&server.infer(&binary_request(&bytes[12..13]))),
        &reference[12..13],
    );
    // And `oodscope score`'s scores and classes for the same files.
    let classes: Vec<String> = meta["oodscope"]["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    for (served, (score, class)) in outputs(&by_json).iter().zip(scored(&files, 12)) {
        assert!(
            (served.score as f64 - score).abs() <= 1e-6,
            "{served:?} vs score's {score}"
        );
        assert_eq!(classes[served.class as usize], class);
    }

    assert_eq!(server.metric("oodscope_requests_total{outcome=\"ok\"}"), Some(3.0));
    let ood = reference.iter().filter(|r| r["verdict"] == "ood").count() as f64;
    assert_eq!(
        server.metric("oodscope_verdicts_total{verdict=\"ood\"}"),
        Some(2.0 * ood + ood_of(&reference[12..13]))
    );
    assert_eq!(server.metric("oodscope_false_alarm_target"), Some(0.05));
    assert!(
        server
            .metric("oodscope_ks_statistic")
            .is_some_and(|ks| ks > 0.0 && ks <= 1.0)
    );
    assert_eq!(server.metric("oodscope_queue_depth"), Some(0.0));

    let watch = server.get("/oodscope/v1/watch").json();
    assert_eq!(watch["name"], NAME);
    assert_eq!(watch["method"], "msp");
    assert_eq!(watch["false_alarm"], 0.05);
    assert_eq!(watch["recent_scores"].as_array().unwrap().len(), 49);
    assert_eq!(watch["calibration_scores"].as_array().unwrap().len(), 2000);
    assert_eq!(
        watch["totals"]["id"].as_u64().unwrap() + watch["totals"]["ood"].as_u64().unwrap(),
        49
    );
    let per_second: u64 = watch["ood_rate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(per_second, 49);
    assert!(watch["window_ood_rate"].as_f64().is_some() && watch["ks_statistic"].as_f64().is_some());
    assert_eq!(
        server.get("/oodscope/v1/flagged").json(),
        json!([]),
        "nothing kept without --keep-flagged"
    );
}

#[test]
fn bad_input_fails_only_its_own_request_with_an_oip_error() {
    let server = Server::start(&["--max-body-mb", "1", "--max-delay-ms", "50"]);
    let files = demo_images(3, 0);
    let reference = checked(&files);
    let good = read_all(&files);
    let mut with_bad = good.clone();
    with_bad[1] = b"this is not an image".to_vec();
    // Three requests at once (batched together within the 50 ms delay), one with a bad item.
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let handles: Vec<_> = [&good, &with_bad, &good]
            .map(|files| {
                let addr = server.addr;
                s.spawn(move || infer_at(addr, &binary_request(files)))
            })
            .into_iter()
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_same(&outputs(&answers[0]), &reference);
    assert_same(&outputs(&answers[2]), &reference);
    assert_eq!(answers[1].status, 400);
    let error = answers[1].json()["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with("input 'image' item 1: cannot decode the image"),
        "{error}"
    );

    let malformed = server.infer(&Payload {
        body: "{\"inputs\": [".into(),
        header_length: None,
    });
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.header("content-type"), Some("application/json"));
    assert!(
        malformed.json()["error"]
            .as_str()
            .unwrap()
            .contains("not an inference request's JSON")
    );

    let big = binary_request(&[vec![0u8; 2 << 20]]);
    let too_large = server.infer(&big);
    assert_eq!(too_large.status, 413);
    assert!(too_large.json()["error"].as_str().unwrap().contains("--max-body-mb"));

    let wrong_model = server.post("/v2/models/other/infer", &binary_request(&good));
    assert_eq!(wrong_model.status, 404);
    assert!(
        wrong_model.json()["error"]
            .as_str()
            .unwrap()
            .contains("serves 'fmnist-msp'")
    );

    // Still serving, and the errors are counted by kind.
    assert_same(&outputs(&server.infer(&json_request(&good))), &reference);
    for (kind, n) in [
        ("bad_image", 1.0),
        ("malformed", 1.0),
        ("body_too_large", 1.0),
        ("unknown_model", 1.0),
    ] {
        assert_eq!(
            server.metric(&format!("oodscope_errors_total{{kind=\"{kind}\"}}")),
            Some(n),
            "{kind}"
        );
    }
    assert_eq!(server.metric("oodscope_requests_total{outcome=\"ok\"}"), Some(3.0));
}

#[test]
fn keep_flagged_lists_the_last_flagged_inputs_newest_first() {
    let server = Server::start(&["--keep-flagged", "3"]);
    let files = demo_images(2, 30);
    let reference = checked(&files);
    let bytes = read_all(&files);
    let flagged: Vec<usize> = (0..files.len()).filter(|&i| reference[i]["verdict"] == "ood").collect();
    assert!(flagged.len() >= 3, "{reference:?}");
    assert_same(&outputs(&server.infer(&binary_request(&bytes))), &reference);
    let list = server.get("/oodscope/v1/flagged").json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    let newest = &flagged[flagged.len() - 3..];
    for (entry, &i) in list.iter().zip(newest.iter().rev()) {
        assert_eq!(
            entry["seq"].as_u64().unwrap() as usize,
            flagged.iter().position(|&f| f == i).unwrap() + 1
        );
        let image = base64::engine::general_purpose::STANDARD
            .decode(entry["image_b64"].as_str().unwrap())
            .unwrap();
        assert_eq!(image, bytes[i]);
        assert!((entry["score"].as_f64().unwrap() - reference[i]["score"].as_f64().unwrap()).abs() <= 1e-6);
        assert_eq!(entry["class"], reference[i]["class_index"]);
        assert!(entry["t"].as_f64().unwrap() > 1.7e9);
    }
}

#[test]
fn a_server_that_cannot_start_says_why_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.oodsd");
    let (code, _, err) = support::oodscope_with_cache(
        dir.path(),
        &["serve", "--detector", &missing.to_string_lossy(), "--port", "0"],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: detector ") && err.contains("missing.oodsd"),
        "{err}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let detector = detector().to_string_lossy().into_owned();
    let (code, _, err) = support::oodscope_with_cache(
        dir.path(),
        &["serve", "--detector", &detector, "--port", &port, "--device", "cpu"],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: cannot listen on 127.0.0.1:{port}: "))
            && err.trim_end().ends_with("(choose another --port, or 0 for a free one)"),
        "{err}"
    );

    for (flag, value) in [("--max-batch", "0"), ("--max-queue", "0"), ("--host", "no such host!")] {
        let (code, _, err) = support::oodscope_with_cache(dir.path(), &["serve", "--detector", &detector, flag, value]);
        assert_eq!(code, 1, "{err}");
        assert!(err.starts_with(&format!("error: {flag} ")), "{err}");
    }
}
