//! Making a fit, the statistics of ID training images that docs/methods.md's feature methods need:
//! one streaming pass of a labelled folder through the model, accumulated in float64, stored in one
//! safetensors file whose header records where they came from (`crate::stats` loads it back).

pub mod accumulate;
pub mod block_scatter;
pub mod cache;
pub mod class_covariance;
pub mod finish;
pub mod gram_bounds;
pub mod merge;
pub mod openmax;
pub mod part;
pub mod pass;
pub mod temperature;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use tch::Tensor;

use crate::Error;
use crate::model::{Model, Outputs};
use crate::pipeline::stream::{DecodeSchedule, Item, Stream};
use crate::pipeline::{Progress, SkippedFile};
use crate::stats::{Fit, FitInfo};
use oodscope_data::{ImageSet, SetSource, Shard};

/// How a fit pass runs.
#[derive(Debug, Clone, Copy)]
pub struct FitOptions {
    pub batch_size: usize,
    /// Use at most this many images, evenly spread over the sorted listing.
    pub max_images: Option<usize>,
    /// Also keep each class's covariance (gmm): C·D² float64 values, refused above
    /// `stats::gaussians::LIMIT_BYTES` before the pass.
    pub class_covariances: bool,
}

/// Refuses a fit whose per-class covariances (when asked for) would be too big, before any image is
/// passed.
pub fn check_class_covariances(classes: usize, feature_width: Option<usize>, asked: bool) -> Result<(), Error> {
    match (asked, feature_width) {
        (true, Some(d)) => {
            crate::stats::gaussians::check_size(classes, d).map_err(|m| Error::Invalid(format!("fit: {m}")))
        }
        _ => Ok(()),
    }
}

/// The stages of a fit, for progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitStage {
    /// The pass of the images through the model (`done`/`total` in images).
    Images,
    /// Passes over the stored features: the bank, ViM's α and ReAct's percentiles (`done`/`total`
    /// in passes).
    Statistics,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitProgress {
    pub stage: FitStage,
    pub done: usize,
    pub total: usize,
    pub elapsed: Duration,
}

/// What a fit pass did.
#[derive(Debug, Clone)]
pub struct FitSummary {
    pub info: FitInfo,
    pub skipped: Vec<SkippedFile>,
    pub elapsed: Duration,
}

/// The images of `set` a fit uses: all, or `max` of them evenly spread over the sorted listing
/// (every class keeps its share).
pub fn select_images(set: &ImageSet, max: Option<usize>) -> ImageSet {
    let mut chosen = set.clone();
    if let (Some(max), SetSource::Folder { files, .. }) = (max, &mut chosen.source)
        && max < files.len()
    {
        let n = files.len();
        *files = (0..max).map(|i| files[i * n / max].clone()).collect();
    }
    chosen
}

/// Passes `train` once through the model and writes the fit file at `out` (atomically: nothing is
/// left behind on cancel or failure). Ensembles have no features and cannot be fitted.
pub fn fit_model(
    model: &Model,
    train: &ImageSet,
    options: &FitOptions,
    out: &Path,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(FitProgress),
) -> Result<FitSummary, Error> {
    let start = Instant::now();
    check_class_covariances(model.card.num_classes(), model.feature_width, options.class_covariances)?;
    let set = select_images(train, options.max_images);
    let (pass, skipped) = run_pass(model, &set, (None, 0), options, out, cancel, on_progress)?;
    if pass.images() == 0 {
        return Err(Error::Invalid(format!(
            "fit: none of the {} images could be used ({} skipped)",
            set.len(),
            skipped.len()
        )));
    }
    let provenance = pass::Provenance::of(model, train, &set, options, skipped.len())
        .map_err(|e| Error::Invalid(format!("fit: {e}")))?;
    let info = pass
        .write(out, provenance, cancel, &mut |done, total| {
            on_progress(FitProgress {
                stage: FitStage::Statistics,
                done,
                total,
                elapsed: start.elapsed(),
            });
        })
        .map_err(write_error(out))?;
    Ok(FitSummary {
        info,
        skipped,
        elapsed: start.elapsed(),
    })
}

/// What a shard pass did.
#[derive(Debug, Clone)]
pub struct PartSummary {
    pub info: part::PartInfo,
    pub skipped: Vec<SkippedFile>,
    pub elapsed: Duration,
}

/// Passes shard `shard` of `train` (whole batches of the images a single fit uses: see
/// [`part::shard_images`]) through the model and writes its mergeable part at `out` (atomically).
/// `fit-merge` turns all the parts into the fit file a single `fit` with the same options writes.
pub fn fit_shard(
    model: &Model,
    train: &ImageSet,
    options: &FitOptions,
    shard: Shard,
    out: &Path,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(FitProgress),
) -> Result<PartSummary, Error> {
    let start = Instant::now();
    check_class_covariances(model.card.num_classes(), model.feature_width, options.class_covariances)?;
    let used = select_images(train, options.max_images);
    let range = part::shard_images(shard, used.len(), options.batch_size);
    let own = slice(&used, range.clone());
    let shift = if range.is_empty() {
        None
    } else {
        listing_shift(model, &used, range.start, options, cancel)?
    };
    let (pass, skipped) = run_pass(
        model,
        &own,
        (shift, range.start as u64),
        options,
        out,
        cancel,
        on_progress,
    )?;
    let provenance = pass::Provenance::of(model, train, &used, options, skipped.len())
        .map_err(|e| Error::Invalid(format!("fit: {e}")))?;
    let info = part::PartInfo {
        part_format_version: part::PART_FORMAT_VERSION,
        fit: provenance.info,
        model_name: model.card.name.clone(),
        shard,
        batch_size: options.batch_size,
        used_files: used.len(),
        first: range.start,
        end: range.end,
    };
    let info = part::write_part(pass, out, info).map_err(write_error(out))?;
    Ok(PartSummary {
        info,
        skipped,
        elapsed: start.elapsed(),
    })
}

/// The shift a single fit of `set` uses (the mean feature of its first batch with images), when
/// that batch lies before image `before` (else the shard's own first batch gives it).
fn listing_shift(
    model: &Model,
    set: &ImageSet,
    before: usize,
    options: &FitOptions,
    cancel: &AtomicBool,
) -> Result<Option<Tensor>, Error> {
    if model.feature_width.is_none() {
        return Ok(None);
    }
    let batch = options.batch_size.max(1);
    for first in (0..before).step_by(batch) {
        let chunk = slice(set, first..(first + batch).min(before));
        let mut shift = None;
        let mut seen = 0;
        stream_of(model, std::slice::from_ref(&chunk), options).run(cancel, &mut |_| {}, &mut |items, x| {
            let outputs = tch::no_grad(|| model.forward(x))?;
            check_finite(&outputs, &chunk, items, &mut seen)?;
            if let Some(z) = &outputs.features {
                shift = Some(accumulate::Accumulator::shift_of(z).map_err(tch_error)?);
            }
            Ok(())
        })?;
        if shift.is_some() {
            return Ok(shift);
        }
    }
    Ok(None)
}

/// Images `range` of `set`, as a set of their own (noise keeps each image's place).
fn slice(set: &ImageSet, range: std::ops::Range<usize>) -> ImageSet {
    let mut part = set.clone();
    match &mut part.source {
        SetSource::Folder { files, .. } => *files = files[range.clone()].to_vec(),
        SetSource::Noise { count, first, .. } => {
            *first += range.start;
            *count = range.len();
        }
    }
    if range.start > 0 {
        part.unreadable.clear();
    }
    part
}

fn stream_of<'a>(model: &Model, sets: &'a [ImageSet], options: &FitOptions) -> Stream<'a> {
    Stream {
        sets,
        pre: model.card.preprocess(),
        device: model.device,
        batch_size: options.batch_size,
        schedule: DecodeSchedule::for_device(model.device),
    }
}

/// The streaming pass of `set` through the model into the accumulators (under `shift` when given;
/// `first`: the listing index of the set's first image, for a shard) and a temporary features file
/// beside `out` (and one of the correctly classified images' logits, for OpenMax); the files that
/// could not be read.
fn run_pass(
    model: &Model,
    set: &ImageSet,
    (shift, first): (Option<Tensor>, u64),
    options: &FitOptions,
    out: &Path,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(FitProgress),
) -> Result<(pass::Pass, Vec<SkippedFile>), Error> {
    if model.card.is_ensemble() {
        return Err(Error::Invalid(format!(
            "a fit needs a single model; {} is a leave-out ensemble",
            model.card.name
        )));
    }
    let features_file = pass::FeatureFile::create(out).map_err(io_error(out))?;
    let mut pass = pass::Pass::new(model, set.labelled, features_file).map_err(tch_error)?;
    pass.keep_correct_logits(pass::FeatureFile::create(out).map_err(io_error(out))?);
    pass.class_covariances = options.class_covariances;
    if let Some(shift) = shift {
        pass.accumulator.set_shift(shift).map_err(tch_error)?;
    }
    pass.accumulator.set_first_index(first);
    let mut report_images = |p: Progress| {
        on_progress(FitProgress {
            stage: FitStage::Images,
            done: p.done,
            total: p.total,
            elapsed: p.elapsed,
        });
    };
    let sets = std::slice::from_ref(set);
    let mut seen = 0;
    let stats = stream_of(model, sets, options).run(cancel, &mut report_images, &mut |items, x| {
        let outputs = tch::no_grad(|| model.forward(x))?;
        check_finite(&outputs, set, items, &mut seen)?;
        let labels: Option<Vec<usize>> = set
            .labelled
            .then(|| items.iter().map(|i| set.label(i.index).unwrap_or(0)).collect());
        pass.add(&outputs, labels.as_deref())
            .map_err(|e| Error::Invalid(format!("fit: {e}")))
    })?;
    Ok((pass, stats.skipped))
}

/// Stops the pass at the first batch with NaN or infinite outputs, naming the first few of its
/// images and how many there are (`seen`: the images passed before this batch, counted on).
fn check_finite(outputs: &Outputs, set: &ImageSet, items: &[Item], seen: &mut usize) -> Result<(), Error> {
    let bad = pass::non_finite_rows(outputs).map_err(tch_error)?;
    *seen += items.len();
    if bad.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = bad
        .iter()
        .filter_map(|&row| items.get(row))
        .take(3)
        .map(|item| set.item_name(item.index))
        .collect();
    let more = match bad.len() - names.len() {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    Err(Error::Invalid(format!(
        "fit: the model's outputs are NaN or infinite for {} of the {} images passed so far ({}{more}), so every statistic would be NaN: fix the model, or leave these images out",
        bad.len(),
        *seen,
        names.join(", ")
    )))
}

fn write_error(out: &Path) -> impl Fn(pass::WriteError) -> Error + '_ {
    move |e| match e {
        pass::WriteError::Cancelled => Error::Cancelled,
        pass::WriteError::Failed(m) => Error::Invalid(format!("fit: writing {}: {m}", out.display())),
    }
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Invalid(format!("fit: cannot write beside {}: {e}", path.display()))
}

fn tch_error(e: tch::TchError) -> Error {
    Error::Invalid(format!("fit: {}", crate::model::first_line(&e.to_string())))
}
