//! The model thread: it owns the detector, gathers queued requests into batches (up to
//! `--max-batch` images, or `--max-delay` after the first request arrived), skips requests whose
//! deadline passed or whose client left, scores the rest and answers each through its own channel.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::detector::{Scorer, Verdict};
use crate::monitor::Monitor;

/// One admitted request's decoded images, waiting for the model.
#[derive(Debug)]
pub struct Job {
    /// Each image as the model's input pixels (C·H·W).
    pub images: Vec<Vec<f32>>,
    /// When the request was queued (the batching delay counts from here).
    pub queued_at: Instant,
    /// Past this the request is answered 504 by its handler; the model skips it.
    pub deadline: Instant,
    pub reply: oneshot::Sender<JobOutcome>,
}

/// How a job ended on the model thread.
#[derive(Debug)]
pub enum JobOutcome {
    /// One verdict per image, in order.
    Scored(Vec<Verdict>),
    /// Its deadline passed before the model reached it.
    Expired,
    /// The model failed on its batch (one line).
    Failed(String),
}

/// How batches are formed.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub max_batch: usize,
    pub max_delay: Duration,
}

/// Serves jobs until every sender is gone (the server has drained), then returns.
///
/// `admitted` says how many requests the server has admitted and not yet answered: a batch waits
/// for more only while some admitted request is not in it yet (it is still arriving or decoding),
/// so a lone client is not kept `max_delay` for company that is not coming.
pub fn run(
    jobs: &Receiver<Job>,
    scorer: &mut dyn Scorer,
    batching: Batching,
    monitor: &Arc<Monitor>,
    admitted: &dyn Fn() -> usize,
) {
    while let Ok(first) = jobs.recv() {
        let until = first.queued_at + batching.max_delay;
        let mut count = first.images.len();
        let mut batch = vec![first];
        while count < batching.max_batch && batch.len() < admitted() {
            let left = until.saturating_duration_since(Instant::now());
            match jobs.recv_timeout(left) {
                Ok(job) => {
                    count += job.images.len();
                    batch.push(job);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        score_batch(batch, scorer, batching.max_batch, monitor);
    }
}

/// Scores the live jobs of a batch in chunks of at most `max_batch` images and answers each job.
fn score_batch(batch: Vec<Job>, scorer: &mut dyn Scorer, max_batch: usize, monitor: &Monitor) {
    let now = Instant::now();
    let mut live = Vec::with_capacity(batch.len());
    for job in batch {
        if job.reply.is_closed() {
            continue; // the client left: nobody to answer
        }
        if job.deadline <= now {
            let _ = job.reply.send(JobOutcome::Expired);
            continue;
        }
        live.push(job);
    }
    if live.is_empty() {
        return;
    }
    let counts: Vec<usize> = live.iter().map(|j| j.images.len()).collect();
    let images: Vec<Vec<f32>> = live.iter_mut().flat_map(|j| std::mem::take(&mut j.images)).collect();
    let mut verdicts = Vec::with_capacity(images.len());
    for chunk in images.chunks(max_batch) {
        // A long request is scored in several passes: stop when nobody is left to answer in time.
        let now = Instant::now();
        if live.iter().all(|j| j.deadline <= now || j.reply.is_closed()) {
            for job in live {
                let _ = job.reply.send(JobOutcome::Expired);
            }
            return;
        }
        monitor.observe_batch(chunk.len());
        match scorer.score(chunk) {
            Ok(v) if v.len() == chunk.len() => verdicts.extend(v),
            Ok(v) => {
                return fail_all(
                    live,
                    &format!("the model gave {} verdicts for {} images", v.len(), chunk.len()),
                );
            }
            Err(reason) => return fail_all(live, &reason),
        }
    }
    monitor.record_verdicts(&verdicts);
    let mut rest = verdicts.into_iter();
    for (job, n) in live.into_iter().zip(counts) {
        let _ = job.reply.send(JobOutcome::Scored(rest.by_ref().take(n).collect()));
    }
}

fn fail_all(jobs: Vec<Job>, reason: &str) {
    for job in jobs {
        let _ = job.reply.send(JobOutcome::Failed(reason.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::tests::test_monitor;

    /// Scores each image as its first pixel and records the batch sizes it saw.
    struct Echo {
        batches: Vec<usize>,
        fail_on: Option<f32>,
        pause: Duration,
    }

    impl Echo {
        /// Echoes each image's first value as its score, after `pause` per batch.
        fn pausing(pause: Duration) -> Self {
            Echo {
                batches: vec![],
                fail_on: None,
                pause,
            }
        }
    }

    /// A closed queue holding `jobs`, in order.
    fn queued(jobs: Vec<Job>) -> Receiver<Job> {
        let (send, receive) = std::sync::mpsc::channel();
        for j in jobs {
            let _ = send.send(j);
        }
        receive
    }

    impl Scorer for Echo {
        fn score(&mut self, images: &[Vec<f32>]) -> Result<Vec<Verdict>, String> {
            self.batches.push(images.len());
            std::thread::sleep(self.pause);
            if images.iter().any(|i| Some(i[0]) == self.fail_on) {
                return Err("boom".into());
            }
            Ok(images
                .iter()
                .map(|i| Verdict {
                    score: i[0],
                    is_ood: i[0] < 0.0,
                    p_value: 0.5,
                    class: 0,
                    probability: 1.0,
                })
                .collect())
        }
    }

    fn job(values: &[f32], deadline: Duration) -> (Job, oneshot::Receiver<JobOutcome>) {
        let (reply, answer) = oneshot::channel();
        let now = Instant::now();
        let job = Job {
            images: values.iter().map(|&v| vec![v]).collect(),
            queued_at: now,
            deadline: now + deadline,
            reply,
        };
        (job, answer)
    }

    fn scored(answer: oneshot::Receiver<JobOutcome>) -> Vec<f32> {
        match answer.blocking_recv().unwrap() {
            JobOutcome::Scored(v) => v.iter().map(|v| v.score).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn queued_jobs_are_batched_split_by_max_batch_and_answered_in_order() {
        let long = Duration::from_secs(60);
        let (a, ra) = job(&[1.0, 2.0], long);
        let (b, rb) = job(&[3.0, 4.0, 5.0], long);
        let (c, rc) = job(&[6.0], long);
        let receive = queued(vec![a, b, c]);
        let mut echo = Echo::pausing(Duration::ZERO);
        let batching = Batching {
            max_batch: 4,
            max_delay: Duration::from_millis(50),
        };
        run(&receive, &mut echo, batching, &test_monitor(), &|| usize::MAX);
        assert_eq!(scored(ra), [1.0, 2.0]);
        assert_eq!(scored(rb), [3.0, 4.0, 5.0]);
        assert_eq!(scored(rc), [6.0]);
        // a and b fill the first gathering (5 ≥ 4 images), scored as 4 + 1; c comes alone.
        assert_eq!(echo.batches, [4, 1, 1]);
    }

    #[test]
    fn expired_and_abandoned_jobs_are_skipped_and_a_failure_reaches_its_batch_only() {
        let (expired, r_expired) = job(&[1.0], Duration::ZERO);
        let (left, r_left) = job(&[2.0], Duration::from_secs(60));
        drop(r_left);
        let (fine, r_fine) = job(&[3.0], Duration::from_secs(60));
        let receive = queued(vec![expired, left, fine]);
        let mut echo = Echo::pausing(Duration::ZERO);
        let batching = Batching {
            max_batch: 8,
            max_delay: Duration::from_millis(20),
        };
        run(&receive, &mut echo, batching, &test_monitor(), &|| usize::MAX);
        assert!(matches!(r_expired.blocking_recv().unwrap(), JobOutcome::Expired));
        assert_eq!(scored(r_fine), [3.0]);
        assert_eq!(echo.batches, [1], "only the live job reaches the model");

        let (bad, r_bad) = job(&[7.0], Duration::from_secs(60));
        let receive = queued(vec![bad]);
        echo.fail_on = Some(7.0);
        run(&receive, &mut echo, batching, &test_monitor(), &|| usize::MAX);
        assert!(matches!(r_bad.blocking_recv().unwrap(), JobOutcome::Failed(r) if r == "boom"));
    }

    #[test]
    fn a_long_request_stops_being_scored_once_its_deadline_has_passed() {
        let (long, answer) = job(&[1.0; 40], Duration::from_millis(100));
        let receive = queued(vec![long]);
        let mut slow = Echo::pausing(Duration::from_millis(30));
        let batching = Batching {
            max_batch: 2,
            max_delay: Duration::ZERO,
        };
        run(&receive, &mut slow, batching, &test_monitor(), &|| 1);
        assert!(matches!(answer.blocking_recv().unwrap(), JobOutcome::Expired));
        // 20 passes of 30 ms were needed; the deadline stopped it after about 4.
        assert!(slow.batches.len() < 20, "{:?}", slow.batches);
    }
}
