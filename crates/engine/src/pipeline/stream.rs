//! Streaming image sets through a model's device in batches: rayon decodes each batch (on the CPU
//! in turn with the model, on a GPU on a producer thread one batch ahead), the caller's closure gets
//! each batch as a tensor; progress after every batch, a prompt stop on cancel. Never holds more
//! than two decoded batches. Both `score` and `fit` run on it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use super::{Progress, SkippedFile, StageTimes};
use crate::Error;
use oodscope_data::limits::{MAX_BATCH_BYTES, max_batch_images};
use oodscope_data::noise::noise_image;
use oodscope_data::{ImageSet, Preprocess, SetSource, decode_file};

/// One image: which set, which index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub set: usize,
    pub index: usize,
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

/// What a stream did besides calling the closure.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    pub skipped: Vec<SkippedFile>,
    pub elapsed: Duration,
    pub stages: StageTimes,
}

/// What a stream does with each batch: the images it holds and their pixels on the device.
pub type BatchFn<'b> = dyn FnMut(&[Item], &Tensor) -> Result<(), Error> + 'b;

/// Where a stream's batches go, and how.
pub struct Stream<'a> {
    pub sets: &'a [ImageSet],
    pub pre: Preprocess,
    pub device: Device,
    pub batch_size: usize,
    pub schedule: DecodeSchedule,
}

impl Stream<'_> {
    /// Calls `on_batch(items, x)` for every batch of decoded images in set order (`x`:
    /// `[n, C, H, W]` pixel units on the device; `on_batch`'s time counts as the model stage), and
    /// `on_progress` after each batch. Files that cannot be decoded are skipped with a reason.
    pub fn run(
        &self,
        cancel: &AtomicBool,
        on_progress: &mut dyn FnMut(Progress),
        on_batch: &mut BatchFn,
    ) -> Result<StreamStats, Error> {
        if self.batch_size == 0 {
            return Err(Error::Invalid("batch size must be at least 1".into()));
        }
        let (sets, pre) = (self.sets, &self.pre);
        let total: usize = sets.iter().map(ImageSet::len).sum();
        // Before any batch is decoded: the largest batch this run makes within its budget.
        let (largest, most) = (self.batch_size.min(total), max_batch_images(pre.len()));
        if largest > most {
            let (c, h, w) = (pre.channels, pre.height, pre.width);
            return Err(Error::Invalid(format!(
                "a batch of {largest} images of {c}×{h}×{w} takes {} MiB, over the {} MiB limit for one batch: use a batch size of {most} or less (--batch-size)",
                (largest as u128 * pre.len() as u128 * 4) >> 20,
                MAX_BATCH_BYTES >> 20
            )));
        }
        let items: Vec<Item> = sets
            .iter()
            .enumerate()
            .flat_map(|(set, s)| (0..s.len()).map(move |index| Item { set, index }))
            .collect();
        let start = Instant::now();
        let mut stats = StreamStats::default();
        let [c, h, w] = [pre.channels as i64, pre.height as i64, pre.width as i64];

        let mut done = 0;
        let mut decode = Duration::ZERO;
        let mut use_batch = |batch: DecodedBatch, stats: &mut StreamStats| -> Result<(), Error> {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            done += batch.items.len() + batch.skipped.len();
            stats
                .skipped
                .extend(batch.skipped.into_iter().map(|(item, reason)| SkippedFile {
                    set: item.set,
                    path: sets[item.set].item_name(item.index),
                    reason,
                }));
            if !batch.items.is_empty() {
                let n = batch.items.len() as i64;
                let clock = Instant::now();
                let x = batch_tensor(&batch.pixels, [n, c, h, w], self.device)?;
                stats.stages.to_device += clock.elapsed();
                // The model's thread count follows the cores other processes leave (on the CPU).
                crate::model::adapt_model_threads();
                let clock = Instant::now();
                on_batch(&batch.items, &x)?;
                stats.stages.model += clock.elapsed();
            }
            on_progress(Progress {
                done,
                total,
                skipped: stats.skipped.len(),
                elapsed: start.elapsed(),
            });
            Ok(())
        };

        if self.schedule == DecodeSchedule::Overlapped {
            std::thread::scope(|scope| {
                let (sender, receiver) = sync_channel::<DecodedBatch>(1);
                let batch_size = self.batch_size;
                scope.spawn(move || {
                    for chunk in items.chunks(batch_size) {
                        if cancel.load(Ordering::Relaxed) {
                            break;
                        }
                        let batch = match decode_pool() {
                            Some(pool) => pool.install(|| decode_batch(chunk, sets, pre)),
                            None => decode_batch(chunk, sets, pre),
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
                    use_batch(batch, &mut stats)?;
                }
                Ok::<_, Error>(())
            })?;
        } else {
            for chunk in items.chunks(self.batch_size) {
                if cancel.load(Ordering::Relaxed) {
                    break;
                }
                let clock = Instant::now();
                let batch = decode_batch(chunk, sets, pre);
                decode += clock.elapsed();
                use_batch(batch, &mut stats)?;
            }
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        stats.elapsed = start.elapsed();
        stats.stages.decode = decode;
        Ok(stats)
    }
}

/// Decoded pixels (`shape` = `[N, C, H, W]`, in order) as one float tensor on `device`.
pub fn batch_tensor(pixels: &[f32], shape: [i64; 4], device: Device) -> Result<Tensor, Error> {
    Tensor::from_slice(pixels)
        .f_view(shape)
        .and_then(|x| x.f_to_kind(Kind::Float))
        .and_then(|x| x.f_to_device(device))
        .map_err(|e| {
            let cause = crate::model::first_line(&e.to_string());
            Error::Invalid(format!("cannot move a batch to the device: {cause}"))
        })
}

/// The decoders of [`DecodeSchedule::Overlapped`]: one thread fewer than the cores, so that the
/// thread that feeds the GPU never waits for a core. (With all cores decoding, the H100 machine's
/// 16 cores ran MSP at batch 256 at 41 000 to 46 000 images/s overlapped, below the 53 000 to 64 000
/// of decoding and scoring in turn.) `None` (use rayon's global pool) if it cannot be built.
fn decode_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
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
                SetSource::Noise { kind, first, .. } => Ok(noise_image(*kind, first + item.index, pre.len())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_over_the_memory_budget_is_refused_before_anything_is_decoded() {
        let sets = [ImageSet::open("uniform:100", oodscope_data::Role::Ood, &[]).unwrap()];
        let stream = |batch_size| Stream {
            sets: &sets,
            pre: Preprocess::new(3, 4096, 4096),
            device: Device::Cpu,
            batch_size,
            schedule: DecodeSchedule::InTurn,
        };
        let mut batches = 0;
        let err = stream(64)
            .run(&AtomicBool::new(false), &mut |_| {}, &mut |_, _| {
                batches += 1;
                Ok(())
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "a batch of 64 images of 3×4096×4096 takes 12288 MiB, over the 4096 MiB limit for one batch: use a batch size of 21 or less (--batch-size)"
        );
        assert_eq!(batches, 0);
        // A smaller set makes smaller batches: 3 images of 192 MiB are within the budget.
        let few = [ImageSet::open("uniform:3", oodscope_data::Role::Ood, &[]).unwrap()];
        let stream = Stream {
            sets: &few,
            pre: Preprocess::new(3, 4096, 4096),
            device: Device::Cpu,
            batch_size: 64,
            schedule: DecodeSchedule::InTurn,
        };
        stream
            .run(&AtomicBool::new(false), &mut |_| {}, &mut |items, _| {
                batches += items.len();
                Ok(())
            })
            .unwrap();
        assert_eq!(batches, 3);
    }
}
