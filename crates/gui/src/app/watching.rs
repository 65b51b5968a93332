//! A watched server as the app holds it: the poller's latest answer, what the watch view draws from
//! it (derived once per answer: the two histograms on one range, the OOD rate per second), the
//! flagged inputs' textures, and the one-line status when the server gives no answer.

use std::time::Instant;

use oodscope_metrics::{histogram, shared_range};

use super::{OodscopeApp, Tab};
use crate::watch::contract::WatchAnswer;
use crate::watch::{Poll, Poller, normalise_url};

/// The histograms' bin count.
const BINS: usize = 40;

/// One flagged input as shown: its answer and its thumbnail.
pub struct FlaggedView {
    pub answer: crate::watch::contract::FlaggedAnswer,
    /// The thumbnail's texture, or why there is none.
    pub texture: Result<egui::TextureHandle, String>,
}

/// What the watch view draws, derived once per answer.
pub struct WatchDerived {
    pub range: (f32, f32),
    /// Normalised densities per bin: the calibration scores', the recent scores'.
    pub calibration: Vec<f64>,
    pub recent: Vec<f64>,
    /// (seconds before the newest second, OOD share) of each second with traffic.
    pub rate: Vec<[f64; 2]>,
}

/// A server being watched.
pub struct Watch {
    pub url: String,
    /// The latest answer of the watch endpoint.
    pub latest: Option<Box<WatchAnswer>>,
    pub derived: Option<WatchDerived>,
    /// The latest flagged inputs, newest first.
    pub flagged: Vec<FlaggedView>,
    /// Why the last poll gave nothing (or the flagged list failed); `None` while it answers.
    pub status: Option<String>,
    /// Polls answered so far (with data or not): tests wait on it.
    pub polls: u64,
    pub last_answer: Option<Instant>,
    poller: Poller,
}

impl Watch {
    /// Takes the poller's answers that arrived since the last frame.
    pub fn drain(&mut self, ctx: &egui::Context) {
        while let Ok(poll) = self.poller.answers.try_recv() {
            self.polls += 1;
            match poll {
                Poll::Down(why) => self.status = Some(why),
                Poll::Answer { watch, flagged } => {
                    self.derived = Some(derive(&watch));
                    self.latest = Some(watch);
                    self.last_answer = Some(Instant::now());
                    self.status = None;
                    match flagged {
                        Ok(list) => self.set_flagged(ctx, list),
                        Err(why) => self.status = Some(why),
                    }
                }
            }
        }
    }

    /// Keeps the textures of inputs still listed and makes those of new ones.
    fn set_flagged(&mut self, ctx: &egui::Context, list: Vec<crate::watch::FlaggedInput>) {
        let mut old: Vec<FlaggedView> = std::mem::take(&mut self.flagged);
        self.flagged = list
            .into_iter()
            .map(|input| {
                if let Some(i) = old.iter().position(|v| v.answer.seq == input.answer.seq) {
                    let mut kept = old.swap_remove(i);
                    kept.answer = input.answer;
                    return kept;
                }
                let texture = input.image.map(|image| {
                    ctx.load_texture(
                        format!("oodscope-flagged-{}", input.answer.seq),
                        (*image).clone(),
                        egui::TextureOptions::LINEAR,
                    )
                });
                FlaggedView {
                    answer: input.answer,
                    texture,
                }
            })
            .collect();
    }
}

/// The two densities on one range and the per-second OOD share.
fn derive(watch: &WatchAnswer) -> WatchDerived {
    let range =
        shared_range(&[watch.calibration_scores.as_slice(), watch.recent_scores.as_slice()]).unwrap_or((0.0, 1.0));
    let density = |scores: &[f32]| -> Vec<f64> {
        let counts = histogram(scores, range.0, range.1, BINS);
        let width = f64::from(range.1 - range.0) / BINS as f64;
        let n: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        counts
            .iter()
            .map(|&c| match n {
                0 => 0.0,
                n => f64::from(c) / (n as f64 * width.max(f64::MIN_POSITIVE)),
            })
            .collect()
    };
    let newest = watch.ood_rate.iter().map(|r| r.t).max().unwrap_or(0);
    let rate = watch
        .ood_rate
        .iter()
        .filter(|r| r.requests > 0)
        .map(|r| [(r.t - newest) as f64, r.ood as f64 / r.requests as f64])
        .collect();
    WatchDerived {
        range,
        calibration: density(&watch.calibration_scores),
        recent: density(&watch.recent_scores),
        rate,
    }
}

impl OodscopeApp {
    /// Starts watching the server at `typed` (replacing any other watch) and shows the watch view.
    pub(super) fn start_watch(&mut self, typed: String) {
        let url = match normalise_url(&typed) {
            Ok(url) => url,
            Err(why) => {
                self.messages.push(why);
                return;
            }
        };
        let ctx = self.repaint.clone();
        let waker: crate::worker::Waker = std::sync::Arc::new(move || ctx.request_repaint());
        match Poller::start(url.clone(), waker) {
            Ok(poller) => {
                self.watch = Some(Watch {
                    url,
                    latest: None,
                    derived: None,
                    flagged: Vec::new(),
                    status: None,
                    polls: 0,
                    last_answer: None,
                    poller,
                });
                self.settings.tab = Tab::Watch;
            }
            Err(why) => self.messages.push(why),
        }
    }

    /// Stops watching (the polling thread ends).
    pub(super) fn stop_watch(&mut self) {
        self.watch = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::contract::{RateSecond, Totals};

    #[test]
    fn both_densities_have_area_one_and_the_rate_is_ood_over_requests() {
        let watch = WatchAnswer {
            name: "d".into(),
            method: "msp".into(),
            threshold: 0.5,
            false_alarm: Some(0.05),
            calibration_scores: vec![0.1, 0.5, 0.9, 0.95],
            recent_scores: vec![0.2, 0.3],
            ood_rate: vec![
                RateSecond {
                    t: 100,
                    requests: 4,
                    ood: 1,
                },
                RateSecond {
                    t: 102,
                    requests: 2,
                    ood: 2,
                },
            ],
            window_ood_rate: None,
            ks_statistic: None,
            totals: Totals { id: 3, ood: 3 },
        };
        let d = derive(&watch);
        let width = f64::from(d.range.1 - d.range.0) / BINS as f64;
        for density in [&d.calibration, &d.recent] {
            let area: f64 = density.iter().map(|v| v * width).sum();
            assert!((area - 1.0).abs() < 1e-9, "{area}");
        }
        assert_eq!(d.rate, [[-2.0, 0.25], [0.0, 1.0]]);
    }
}
