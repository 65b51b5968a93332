//! The streaming run: decode batches with rayon and score them in order (on a GPU, the next batch
//! decodes on a producer thread while the current one is scored); report progress; stop promptly on
//! cancel. Never holds more than two decoded batches.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use super::methods::score_batch;
use super::settings::ScoreSettings;
use crate::data::noise::noise_image;
use crate::data::{ImageSet, Preprocess, Role, SetSource, decode_file};
use crate::model::{Model, ModelError};

/// The score of one image.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImageScore {
    /// Index of the set in the run's set list.
    pub set: usize,
    /// Index of the image within its set.
    pub index: usize,
    pub path: String,
    pub score: f32,
    /// MSP baseline on the same image (single models only).
    pub baseline: Option<f32>,
    pub pred: usize,
    pub pred_prob: f32,
    pub label: Option<usize>,
}

/// A file that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SkippedFile {
    pub set: usize,
    pub path: String,
    pub reason: String,
}

/// Progress of a run, reported after every batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Images handled so far (scored or skipped).
    pub done: usize,
    pub total: usize,
    pub skipped: usize,
    pub elapsed: Duration,
}

impl Progress {
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn eta(&self) -> Option<Duration> {
        let rate = self.rate();
        (self.done > 0 && rate > 0.0).then(|| Duration::from_secs_f64((self.total - self.done) as f64 / rate))
    }
}

/// Everything a run produced.
#[derive(Debug, Clone, Default)]
pub struct ScoreRun {
    /// In set order, then image order within each set.
    pub scores: Vec<ImageScore>,
    /// The unperturbed logits of each image, `logit_width` values per entry of `scores`.
    pub logits: Vec<f32>,
    pub logit_width: usize,
    pub skipped: Vec<SkippedFile>,
    pub elapsed: Duration,
    /// Where the calling thread's time went.
    pub stages: StageTimes,
}

/// The calling thread's time in a run, by stage (they add up to nearly all of `elapsed`).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StageTimes {
    /// Decoding a batch ([`DecodeSchedule::InTurn`]), or waiting for the producer to deliver one.
    pub decode: Duration,
    /// Building the batch tensor and moving it to the model's device.
    pub to_device: Duration,
    /// `score_batch`: the method's passes through the model and the copy of its results back.
    pub model: Duration,
}

impl ScoreRun {
    /// The logits of entry `i` of `scores`.
    pub fn logits_of(&self, i: usize) -> &[f32] {
        &self.logits[i * self.logit_width..(i + 1) * self.logit_width]
    }

    /// The scores of one set, in image order.
    pub fn set_scores(&self, set: usize) -> Vec<f32> {
        self.scores.iter().filter(|s| s.set == set).map(|s| s.score).collect()
    }

    /// The MSP baseline scores of one set, when the model has them.
    pub fn set_baseline(&self, set: usize) -> Option<Vec<f32>> {
        self.scores
            .iter()
            .filter(|s| s.set == set)
            .map(|s| s.baseline)
            .collect()
    }

    /// Fraction of labelled images of the given sets whose prediction equals the label.
    pub fn accuracy(&self, sets: &[usize]) -> Option<f64> {
        let labelled: Vec<_> = self
            .scores
            .iter()
            .filter(|s| sets.contains(&s.set))
            .filter_map(|s| s.label.map(|l| l == s.pred))
            .collect();
        (!labelled.is_empty()).then(|| labelled.iter().filter(|&&ok| ok).count() as f64 / labelled.len() as f64)
    }
}

/// Why a run stopped without a result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}")]
    Invalid(String),
}

/// One image to decode: which set, which index.
#[derive(Debug, Clone, Copy)]
struct Item {
    set: usize,
    index: usize,
}

/// A decoded batch: the pixel data of the images that decoded, and the ones that did not.
struct DecodedBatch {
    items: Vec<Item>,
    pixels: Vec<f32>,
    skipped: Vec<(Item, String)>,
}

/// How decoding and scoring share the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeSchedule {
    /// Decode a batch (all cores), then score it (all cores), in the calling thread.
    InTurn,
    /// Decode batch k+1 on a producer thread while the calling thread scores batch k.
    Overlapped,
}

impl DecodeSchedule {
    /// On a GPU the model's work is the GPU's, so the CPU cores are free to decode: overlap. On the
    /// CPU the model and the decoders would share the same cores, and two thread pools that
    /// busy-wait on the same cores slow each other down (measured on 2 cores: the fixture model's
    /// MSP ran at 16 000 images/s overlapped with two model threads, 28 000 with one; the ResNet's
    /// ODIN needs both threads). So on the CPU the batches take turns.
    pub fn for_device(device: Device) -> Self {
        if device == Device::Cpu {
            Self::InTurn
        } else {
            Self::Overlapped
        }
    }

    /// How many threads decode under this schedule.
    pub fn decode_threads(self) -> usize {
        match (self, decode_pool()) {
            (Self::Overlapped, Some(pool)) => pool.current_num_threads(),
            _ => rayon::current_num_threads(),
        }
    }
}

/// Scores every image of every set in batches of `batch_size`, in order, with the device's
/// [`DecodeSchedule`].
pub fn run_scoring(
    model: &Model,
    sets: &[ImageSet],
    settings: &ScoreSettings,
    batch_size: usize,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<ScoreRun, RunError> {
    let schedule = DecodeSchedule::for_device(model.device);
    run_scoring_with(model, sets, settings, batch_size, schedule, cancel, on_progress)
}

/// [`run_scoring`] with a chosen [`DecodeSchedule`] (both give the same results).
pub fn run_scoring_with(
    model: &Model,
    sets: &[ImageSet],
    settings: &ScoreSettings,
    batch_size: usize,
    schedule: DecodeSchedule,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<ScoreRun, RunError> {
    if batch_size == 0 {
        return Err(RunError::Invalid("batch size must be at least 1".into()));
    }
    if let Some(reason) = settings.method.unsupported_reason(&model.card) {
        return Err(RunError::Invalid(reason));
    }
    let pre = Preprocess::for_card(&model.card);
    let items: Vec<Item> = sets
        .iter()
        .enumerate()
        .flat_map(|(set, s)| (0..s.len()).map(move |index| Item { set, index }))
        .collect();
    let total = items.len();
    let start = Instant::now();
    let mut run = ScoreRun::default();
    let [c, h, w] = model.card.input_shape();

    let mut done = 0;
    let mut decode = Duration::ZERO;
    let mut score_decoded = |batch: DecodedBatch| -> Result<(), RunError> {
        if cancel.load(Ordering::Relaxed) {
            return Err(RunError::Cancelled);
        }
        done += batch.items.len() + batch.skipped.len();
        run.skipped
            .extend(batch.skipped.into_iter().map(|(item, reason)| SkippedFile {
                set: item.set,
                path: sets[item.set].item_name(item.index),
                reason,
            }));
        if !batch.items.is_empty() {
            let n = batch.items.len() as i64;
            let clock = Instant::now();
            let x = Tensor::from_slice(&batch.pixels)
                .view([n, c, h, w])
                .to_kind(Kind::Float)
                .to_device(model.device);
            run.stages.to_device += clock.elapsed();
            let clock = Instant::now();
            let scores = score_batch(model, &x, settings)?;
            run.stages.model += clock.elapsed();
            if scores.score.len() != batch.items.len() || scores.pred.len() != batch.items.len() {
                return Err(RunError::Invalid(
                    "the model returned a result of the wrong length".into(),
                ));
            }
            run.logit_width = scores.logit_width;
            run.logits.extend_from_slice(&scores.logits);
            for (k, item) in batch.items.iter().enumerate() {
                run.scores.push(ImageScore {
                    set: item.set,
                    index: item.index,
                    path: sets[item.set].item_name(item.index),
                    score: scores.score[k],
                    baseline: scores.baseline.as_ref().map(|b| b[k]),
                    pred: scores.pred[k].max(0) as usize,
                    pred_prob: scores.pred_prob[k],
                    label: sets[item.set].label(item.index),
                });
            }
        }
        on_progress(Progress {
            done,
            total,
            skipped: run.skipped.len(),
            elapsed: start.elapsed(),
        });
        Ok(())
    };

    if schedule == DecodeSchedule::Overlapped {
        std::thread::scope(|scope| {
            let (sender, receiver) = sync_channel::<DecodedBatch>(1);
            scope.spawn(move || {
                for chunk in items.chunks(batch_size) {
                    if cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    let batch = match decode_pool() {
                        Some(pool) => pool.install(|| decode_batch(chunk, sets, &pre)),
                        None => decode_batch(chunk, sets, &pre),
                    };
                    if sender.send(batch).is_err() {
                        break; // the consumer stopped
                    }
                }
            });
            loop {
                let clock = Instant::now();
                let Ok(batch) = receiver.recv() else { break };
                decode += clock.elapsed();
                score_decoded(batch)?;
            }
            Ok::<_, RunError>(())
        })?;
    } else {
        for chunk in items.chunks(batch_size) {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            let clock = Instant::now();
            let batch = decode_batch(chunk, sets, &pre);
            decode += clock.elapsed();
            score_decoded(batch)?;
        }
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(RunError::Cancelled);
    }
    run.elapsed = start.elapsed();
    run.stages.decode = decode;
    Ok(run)
}

/// The decoders of [`DecodeSchedule::Overlapped`]: one thread fewer than the cores, so that the
/// thread that feeds the GPU never waits for a core. (With all cores decoding, the H100 machine's
/// 16 cores ran MSP at batch 256 at 41 000 to 46 000 images/s overlapped, below the 53 000 to 64 000
/// of decoding and scoring in turn.) `None` (use rayon's global pool) if it cannot be built.
fn decode_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads(cores.saturating_sub(1).max(1))
            .thread_name(|i| format!("oodscope-decode-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// Decodes a chunk of items in parallel; failures become skips with reasons.
fn decode_batch(chunk: &[Item], sets: &[ImageSet], pre: &Preprocess) -> DecodedBatch {
    let decoded: Vec<(Item, Result<Vec<f32>, String>)> = chunk
        .par_iter()
        .map(|&item| {
            let pixels = match &sets[item.set].source {
                SetSource::Folder { files, .. } => decode_file(&files[item.index].path, pre).map_err(|e| e.0),
                SetSource::Noise { kind, .. } => Ok(noise_image(*kind, item.index, pre.len())),
            };
            (item, pixels)
        })
        .collect();
    let mut batch = DecodedBatch {
        items: Vec::new(),
        pixels: Vec::with_capacity(chunk.len() * pre.len()),
        skipped: Vec::new(),
    };
    for (item, result) in decoded {
        match result {
            Ok(pixels) => {
                batch.items.push(item);
                batch.pixels.extend_from_slice(&pixels);
            }
            Err(reason) => batch.skipped.push((item, reason)),
        }
    }
    batch
}

/// Indices of the sets with the given role.
pub fn sets_with_role(sets: &[ImageSet], role: Role) -> Vec<usize> {
    sets.iter()
        .enumerate()
        .filter(|(_, s)| s.role == role)
        .map(|(i, _)| i)
        .collect()
}
