//! Unmodified standard clients against `oodscope serve` (issue section 3): tritonclient[http] and
//! the kserve SDK, binary data and JSON, their answers equal to `oodscope check`'s; /metrics parsed
//! by prometheus_client; the KS statistic equal to scipy.stats.ks_2samp's (tests/serve_clients.py).

use std::process::Command;

use crate::serve_harness::{NAME, Server, checked, demo_images};
use crate::support;

#[test]
fn tritonclient_and_kserve_sdk_get_checks_verdicts() {
    let server = Server::start(&[]);
    let files = demo_images(6, 6);
    let expected = checked(&files);
    let dir = tempfile::tempdir().unwrap();
    let expected_file = dir.path().join("expected.json");
    std::fs::write(&expected_file, serde_json::to_string(&expected).unwrap()).unwrap();
    let out = Command::new(support::python())
        .arg(support::repo_root().join("tests/serve_clients.py"))
        .arg(server.addr.to_string())
        .arg(NAME)
        .arg(&expected_file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for line in [
        "tritonclient, binary data: 12 images equal oodscope check's",
        "tritonclient, JSON: 12 images equal oodscope check's",
        "tritonclient: a bad image is a 400 naming item 1",
        "kserve, binary data: 12 images equal oodscope check's",
        "kserve, JSON: 12 images equal oodscope check's",
        "metrics: parsed by prometheus_client's OpenMetrics parser",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
    }
    assert!(text.contains("equals scipy.stats.ks_2samp's"), "{text}");
}
