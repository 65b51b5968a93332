//! The last flagged (OOD) inputs, kept only with `--keep-flagged N`: a ring of N entries with the
//! encoded image and its verdict, for the window's watch view (`/oodscope/v1/flagged`).

use std::collections::VecDeque;

use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;

use crate::detector::Verdict;

/// One flagged input as `/oodscope/v1/flagged` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct FlaggedEntry {
    /// Its number among the flagged inputs since the start (1, 2, …).
    pub seq: u64,
    /// When it was scored, unix seconds.
    pub t: f64,
    pub score: f32,
    pub p_value: f64,
    pub class: usize,
    pub probability: f32,
    /// The encoded file as received, base64.
    pub image_b64: String,
}

#[derive(Debug)]
struct Kept {
    seq: u64,
    t: f64,
    verdict: Verdict,
    image: Bytes,
}

/// A ring of the last `capacity` flagged inputs (none kept when 0).
#[derive(Debug)]
pub struct Flagged {
    capacity: usize,
    next_seq: u64,
    kept: VecDeque<Kept>,
}

impl Flagged {
    pub fn new(capacity: usize) -> Flagged {
        Flagged {
            capacity,
            next_seq: 1,
            kept: VecDeque::new(),
        }
    }

    /// Keeps the flagged ones of a request's images (`t`: unix seconds).
    pub fn keep(&mut self, t: f64, images: &[Bytes], verdicts: &[Verdict]) {
        if self.capacity == 0 {
            return;
        }
        for (image, verdict) in images.iter().zip(verdicts).filter(|(_, v)| v.is_ood) {
            if self.kept.len() == self.capacity {
                self.kept.pop_front();
            }
            self.kept.push_back(Kept {
                seq: self.next_seq,
                t,
                verdict: *verdict,
                // A copy: the request's bytes are a slice of its whole body, which must not stay.
                image: Bytes::copy_from_slice(image),
            });
            self.next_seq += 1;
        }
    }

    /// The kept inputs, newest first.
    pub fn list(&self) -> Vec<FlaggedEntry> {
        self.kept
            .iter()
            .rev()
            .map(|k| FlaggedEntry {
                seq: k.seq,
                t: k.t,
                score: k.verdict.score,
                p_value: k.verdict.p_value,
                class: k.verdict.class,
                probability: k.verdict.probability,
                image_b64: base64::engine::general_purpose::STANDARD.encode(&k.image),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(score: f32, is_ood: bool) -> Verdict {
        Verdict {
            score,
            is_ood,
            p_value: 0.01,
            class: 2,
            probability: 0.9,
        }
    }

    #[test]
    fn keeps_the_last_n_flagged_newest_first_and_nothing_when_off() {
        let images: Vec<Bytes> = ["a", "b", "c", "d"].map(|s| Bytes::from(s.as_bytes())).to_vec();
        let verdicts = [
            verdict(0.1, true),
            verdict(0.9, false),
            verdict(0.2, true),
            verdict(0.3, true),
        ];
        let mut flagged = Flagged::new(2);
        flagged.keep(10.5, &images, &verdicts);
        let list = flagged.list();
        assert_eq!(list.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 2]);
        assert_eq!(list[0].image_b64, "ZA=="); // "d"
        assert_eq!(list[1].score, 0.2);
        let mut off = Flagged::new(0);
        off.keep(1.0, &images, &verdicts);
        assert!(off.list().is_empty());
    }
}
