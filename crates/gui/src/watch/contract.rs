//! What a running `oodscope serve` answers on its watch endpoints, as plain structs:
//! `GET /oodscope/v1/watch` (the detector, calibration and recent scores, the OOD rate per second,
//! drift, totals) and `GET /oodscope/v1/flagged` (the last flagged inputs, newest first; empty
//! unless the server runs with `--keep-flagged N`).

use serde::Deserialize;

/// `GET /oodscope/v1/watch`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WatchAnswer {
    /// The detector's name.
    pub name: String,
    /// Its method.
    pub method: String,
    /// δ: a score ≥ δ is in-distribution.
    pub threshold: f32,
    /// α, when δ was chosen for a false-alarm rate.
    pub false_alarm: Option<f64>,
    /// The detector's calibration scores, sorted.
    pub calibration_scores: Vec<f32>,
    /// The scores of the last (up to 2000) served images, oldest first.
    pub recent_scores: Vec<f32>,
    /// One entry per second with traffic, for the last 600 s.
    pub ood_rate: Vec<RateSecond>,
    /// The share of the recent images flagged OOD.
    pub window_ood_rate: Option<f64>,
    /// Kolmogorov–Smirnov statistic of the recent scores against the calibration scores.
    pub ks_statistic: Option<f64>,
    pub totals: Totals,
}

/// The served images of one second.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct RateSecond {
    /// Unix seconds.
    pub t: i64,
    pub requests: u64,
    pub ood: u64,
}

/// Every image served since the server started, by verdict.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Totals {
    pub id: u64,
    pub ood: u64,
}

/// One entry of `GET /oodscope/v1/flagged`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FlaggedAnswer {
    /// Its number among the flagged inputs since the server started.
    pub seq: u64,
    /// Unix seconds.
    pub t: f64,
    pub score: f32,
    pub p_value: f64,
    /// The predicted class (an index into the model's classes, or a name).
    pub class: serde_json::Value,
    pub probability: f32,
    /// The encoded image as received, base64.
    pub image_b64: String,
}

impl FlaggedAnswer {
    /// The predicted class as text.
    pub fn class_text(&self) -> String {
        match &self.class {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}
