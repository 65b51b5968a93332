//! Checks `oodscope_metrics` against reference values computed with scikit-learn.
//!
//! The references come from `tests/fixtures/make_metric_refs.py`, written to
//! `$OODSCOPE_FIXTURES/metric_refs.json` by `scripts/test.sh`.

use std::path::PathBuf;

use oodscope_metrics::detection_metrics;
use serde_json::Value;

/// Absolute tolerance against scikit-learn.
const TOLERANCE: f64 = 1e-6;

fn fixtures_file() -> PathBuf {
    let path = oodscope_testkit::fixtures().join("metric_refs.json");
    assert!(
        path.is_file(),
        "fixtures missing: run scripts/test.sh (no file {})",
        path.display()
    );
    path
}

/// A JSON array of numbers as f32, checking that each one is an f32 value.
///
/// serde_json (without its `float_roundtrip` feature) may parse a decimal one f64 ulp away from
/// the exact value; `as f32` still rounds that back to the f32 the script wrote, so the check
/// allows a few f64 ulps rather than demanding exact f64 equality.
fn scores(case: &Value, key: &str, name: &str) -> Vec<f32> {
    let values = case[key]
        .as_array()
        .unwrap_or_else(|| panic!("case {name}: `{key}` is not an array"));
    values
        .iter()
        .map(|value| {
            let wide = value
                .as_f64()
                .unwrap_or_else(|| panic!("case {name}: `{key}` holds {value}"));
            let narrow = wide as f32;
            let off_by = (f64::from(narrow) - wide).abs();
            assert!(
                off_by <= wide.abs() * 4.0 * f64::EPSILON,
                "case {name}: {wide} in `{key}` is not an f32 value"
            );
            narrow
        })
        .collect()
}

#[test]
fn metrics_match_scikit_learn() {
    let path = fixtures_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    let cases = json
        .as_array()
        .unwrap_or_else(|| panic!("{} is not a JSON list", path.display()));
    assert!(!cases.is_empty(), "{} has no cases", path.display());

    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap_or("<unnamed>");
        let id = scores(case, "id", name);
        let ood = scores(case, "ood", name);
        let metrics = detection_metrics(&id, &ood).unwrap_or_else(|e| panic!("case {name}: {e}"));
        let ours = [
            ("auroc", metrics.auroc),
            ("aupr_in", metrics.aupr_in),
            ("aupr_out", metrics.aupr_out),
            ("fpr_at_95_tpr", metrics.fpr_at_95_tpr),
            ("fpr_at_95_tpr_ood_positive", metrics.fpr_at_95_tpr_ood_positive),
            ("detection_error", metrics.detection_error),
        ];
        for (key, actual) in ours {
            // auroc, aupr_in and aupr_out are required; the others are checked when present.
            let Some(expected) = case.get(key).and_then(Value::as_f64) else {
                if matches!(key, "auroc" | "aupr_in" | "aupr_out") {
                    failures.push(format!("{name}: reference `{key}` missing"));
                }
                continue;
            };
            if (actual - expected).abs() > TOLERANCE {
                failures.push(format!("{name}: {key} = {actual}, scikit-learn says {expected}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
