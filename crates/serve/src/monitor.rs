//! What the server counts and exposes at `/metrics` (Prometheus, through `prometheus-client`):
//! requests and errors by kind, latency and batch-size histograms, queue depth, verdict counts, and
//! the drift of live traffic from the calibration ([`Drift`]): the window's OOD rate against α and
//! the KS statistic of recent scores against the calibration scores.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::detector::Verdict;
use crate::drift::Drift;

type Labels = [(&'static str, &'static str); 1];

/// Why an infer request failed: the `kind` label of `oodscope_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: not an inference request the server takes.
    Malformed,
    /// 400: an image that cannot be decoded.
    BadImage,
    /// 404: another model's name.
    UnknownModel,
    /// 413: a body over `--max-body-mb`.
    TooLarge,
    /// 503: the queue is full.
    QueueFull,
    /// 408: the body did not arrive before the deadline.
    BodyTimeout,
    /// 504: not answered before the deadline.
    Deadline,
    /// 500: the model failed on the request's batch.
    Model,
    /// 400: the body could not be read (the client broke off).
    BodyRead,
}

impl ErrorKind {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Malformed => "malformed",
            ErrorKind::BadImage => "bad_image",
            ErrorKind::UnknownModel => "unknown_model",
            ErrorKind::TooLarge => "body_too_large",
            ErrorKind::QueueFull => "queue_full",
            ErrorKind::BodyTimeout => "body_timeout",
            ErrorKind::Deadline => "deadline",
            ErrorKind::Model => "model",
            ErrorKind::BodyRead => "body_read",
        }
    }
}

/// The server's metrics and drift state, shared by the routes and the model thread.
#[derive(Debug)]
pub struct Monitor {
    registry: Registry,
    requests: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    duration: Histogram,
    batch_size: Histogram,
    queue_depth: Gauge,
    verdicts: Family<Labels, Counter>,
    ood_rate: Gauge<f64, AtomicU64>,
    ks: Gauge<f64, AtomicU64>,
    drift: Mutex<Drift>,
}

impl Monitor {
    /// Metrics for a detector with these calibration scores and α (`None`: δ was given).
    pub fn new(calibration_scores: Vec<f32>, false_alarm: Option<f64>) -> Monitor {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        // 1 ms … 33 s, doubling.
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        // 1, 2, 4, … 1024 images.
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        let queue_depth = Gauge::default();
        let verdicts = Family::<Labels, Counter>::default();
        let ood_rate = Gauge::<f64, AtomicU64>::default();
        let ks = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "oodscope_requests",
            "Infer requests answered, by outcome (ok or error)",
            requests.clone(),
        );
        registry.register("oodscope_errors", "Infer requests failed, by kind", errors.clone());
        registry.register(
            "oodscope_request_duration_seconds",
            "Time from an infer request's arrival to its answer",
            duration.clone(),
        );
        registry.register("oodscope_batch_size", "Images per forward pass", batch_size.clone());
        registry.register(
            "oodscope_queue_depth",
            "Infer requests admitted and not yet answered (decoding, queued or in the model)",
            queue_depth.clone(),
        );
        registry.register(
            "oodscope_verdicts",
            "Images scored, by verdict (id or ood)",
            verdicts.clone(),
        );
        registry.register(
            "oodscope_ood_rate_window",
            "Share of the last 1000 scored images flagged out-of-distribution (NaN before any)",
            ood_rate.clone(),
        );
        if let Some(alpha) = false_alarm {
            let target = Gauge::<f64, AtomicU64>::default();
            target.set(alpha);
            registry.register(
                "oodscope_false_alarm_target",
                "α: the false-alarm rate the threshold was calibrated for on ID images",
                target,
            );
        }
        registry.register(
            "oodscope_ks_statistic",
            "Kolmogorov–Smirnov statistic of the last 1000 scores against the calibration scores (NaN before any)",
            ks.clone(),
        );
        ood_rate.set(f64::NAN);
        ks.set(f64::NAN);
        Monitor {
            registry,
            requests,
            errors,
            duration,
            batch_size,
            queue_depth,
            verdicts,
            ood_rate,
            ks,
            drift: Mutex::new(Drift::new(calibration_scores)),
        }
    }

    /// An infer request answered 200 after `elapsed`.
    pub fn ok(&self, elapsed: Duration) {
        self.requests.get_or_create(&[("outcome", "ok")]).inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// An infer request failed with `kind` after `elapsed`.
    pub fn error(&self, kind: ErrorKind, elapsed: Duration) {
        self.requests.get_or_create(&[("outcome", "error")]).inc();
        self.errors.get_or_create(&[("kind", kind.label())]).inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// A forward pass of `n` images.
    pub fn observe_batch(&self, n: usize) {
        self.batch_size.observe(n as f64);
    }

    /// Verdicts of a batch: counted and added to the drift state.
    pub fn record_verdicts(&self, verdicts: &[Verdict]) {
        let ood = verdicts.iter().filter(|v| v.is_ood).count() as u64;
        self.verdicts.get_or_create(&[("verdict", "ood")]).inc_by(ood);
        self.verdicts
            .get_or_create(&[("verdict", "id")])
            .inc_by(verdicts.len() as u64 - ood);
        self.with_drift(|d| d.record(unix_seconds() as u64, verdicts));
    }

    /// Runs `f` on the drift state (a poisoned lock is taken over: the state stays consistent).
    pub fn with_drift<T>(&self, f: impl FnOnce(&mut Drift) -> T) -> T {
        let mut drift = self.drift.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut drift)
    }

    /// The metrics in the OpenMetrics text format, with the queue depth and drift as of now.
    pub fn render(&self, queue_depth: usize) -> String {
        self.queue_depth.set(i64::try_from(queue_depth).unwrap_or(i64::MAX));
        let (rate, ks) = self.with_drift(|d| (d.window_ood_rate(), d.ks_statistic()));
        self.ood_rate.set(rate.unwrap_or(f64::NAN));
        self.ks.set(ks.unwrap_or(f64::NAN));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// Now, in unix seconds.
pub fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn test_monitor() -> std::sync::Arc<Monitor> {
        std::sync::Arc::new(Monitor::new(vec![0.0, 1.0], Some(0.05)))
    }

    #[test]
    fn the_text_names_every_metric_and_moves_with_traffic() {
        let monitor = Monitor::new(vec![0.5, 1.0], Some(0.05));
        let before = monitor.render(0);
        assert!(before.contains("oodscope_ks_statistic NaN"), "{before}");
        assert!(before.contains("oodscope_false_alarm_target 0.05"), "{before}");
        monitor.ok(Duration::from_millis(3));
        monitor.error(ErrorKind::QueueFull, Duration::from_millis(1));
        monitor.observe_batch(3);
        let v = |score, is_ood| Verdict {
            score,
            is_ood,
            p_value: 0.5,
            class: 0,
            probability: 1.0,
        };
        monitor.record_verdicts(&[v(0.1, true), v(0.9, false), v(0.7, false)]);
        let text = monitor.render(2);
        for line in [
            "oodscope_requests_total{outcome=\"ok\"} 1",
            "oodscope_requests_total{outcome=\"error\"} 1",
            "oodscope_errors_total{kind=\"queue_full\"} 1",
            "oodscope_request_duration_seconds_count 2",
            "oodscope_batch_size_sum 3.0",
            "oodscope_queue_depth 2",
            "oodscope_verdicts_total{verdict=\"ood\"} 1",
            "oodscope_verdicts_total{verdict=\"id\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
        assert!(text.contains("oodscope_ood_rate_window 0.333"), "{text}");
        let without_alpha = Monitor::new(vec![1.0], None).render(0);
        assert!(
            !without_alpha.contains("oodscope_false_alarm_target"),
            "{without_alpha}"
        );
    }
}
