//! Statistics of ID training images (the "fit" of docs/methods.md's feature methods): one streaming pass
//! of a labelled folder through the model, accumulated in float64, stored in one safetensors file
//! whose header records where they came from; and the fit loaded back onto the model's device.

pub mod accumulate;
pub mod bank;
pub mod cache;
pub mod file;
pub mod finish;
pub mod merge;
pub mod part;
pub mod percentile;
pub mod quadratic;
pub mod store;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

use crate::model::Model;
use crate::score::stream::{DecodeSchedule, Stream};
use crate::score::{Progress, RunError, SkippedFile};
pub use bank::Bank;
use oodscope_data::{ImageSet, SetSource, Shard};
pub use quadratic::Quadratic;
pub use store::{FitInfo, LabelSource};

/// ReAct's threshold is stored for these percentiles of all fit feature entries: 0, 0.1, …, 100.
pub const REACT_LEVELS: usize = 1001;

/// The ReAct percentile levels.
pub fn react_levels() -> Vec<f64> {
    (0..REACT_LEVELS).map(|i| i as f64 / 10.0).collect()
}

/// ViM's space: the principal subspace's origin and every eigenvector, and α for every `dim`.
pub struct Vim {
    /// `u = −pinv(W)·b`, `[D]`.
    pub origin: Tensor,
    /// `[D, D]`, column j = the eigenvector of the j-th largest eigenvalue.
    pub eigenvectors: Tensor,
    pub eigenvalues: Vec<f64>,
    /// `α` for `dim = 0 … D−1`.
    pub alpha: Vec<f64>,
}

/// A fit, loaded onto the model's device (float64 tensors).
pub struct Fit {
    pub info: FitInfo,
    /// Classes with fit images (by label, or by prediction), in order.
    pub present: Vec<usize>,
    /// `[K, D]`: the mean feature of each present class.
    pub class_means: Option<Tensor>,
    /// Distances to the class means under the shared covariance's pseudo-inverse (Mahalanobis).
    pub mahalanobis: Option<Quadratic>,
    /// The distance to the mean of all fit features under their covariance's pseudo-inverse (the
    /// relative Mahalanobis baseline `d_0`).
    pub global: Option<Quadratic>,
    /// The mean of all fit features `[D]` (DICE's `z̄`).
    pub global_mean: Option<Tensor>,
    pub vim: Option<Vim>,
    /// ReAct's thresholds at [`react_levels`].
    pub react_percentiles: Option<Vec<f64>>,
    /// `[K', C]`: the KL-matching templates of the classes some fit image was predicted as.
    pub klm_templates: Tensor,
    pub bank: Option<Bank>,
    /// DICE's masked weights `W ⊙ M` by percentile, made once per percentile (finding the
    /// percentile of `W ⊙ z̄` sorts C·D values: two million for an ImageNet ResNet-50).
    pub dice_weights: std::sync::Mutex<std::collections::HashMap<u64, Tensor>>,
}

impl Fit {
    /// What a method cannot use this fit for, if anything (a fit of a model without a head has no
    /// ViM space, …).
    pub fn lacks(&self, what: &str) -> String {
        format!(
            "the fit {} has no {what} (it was made from a model without {})",
            self.info.path.display(),
            if what.contains("ViM") { "a head" } else { "features" }
        )
    }
}

/// How a fit pass runs.
#[derive(Debug, Clone, Copy)]
pub struct FitOptions {
    pub batch_size: usize,
    /// Use at most this many images, evenly spread over the sorted listing.
    pub max_images: Option<usize>,
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
) -> Result<FitSummary, RunError> {
    let start = Instant::now();
    let set = select_images(train, options.max_images);
    let (pass, skipped) = run_pass(model, &set, None, options, out, cancel, on_progress)?;
    if pass.images() == 0 {
        return Err(RunError::Invalid(format!(
            "fit: none of the {} images could be used ({} skipped)",
            set.len(),
            skipped.len()
        )));
    }
    let provenance = store::Provenance::of(model, train, &set, options, skipped.len())
        .map_err(|e| RunError::Invalid(format!("fit: {e}")))?;
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
) -> Result<PartSummary, RunError> {
    let start = Instant::now();
    let used = select_images(train, options.max_images);
    let range = part::shard_images(shard, used.len(), options.batch_size);
    let own = slice(&used, range.clone());
    let shift = if range.is_empty() {
        None
    } else {
        listing_shift(model, &used, range.start, options, cancel)?
    };
    let (pass, skipped) = run_pass(model, &own, shift, options, out, cancel, on_progress)?;
    let provenance = store::Provenance::of(model, train, &used, options, skipped.len())
        .map_err(|e| RunError::Invalid(format!("fit: {e}")))?;
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
) -> Result<Option<Tensor>, RunError> {
    if model.feature_width.is_none() {
        return Ok(None);
    }
    let batch = options.batch_size.max(1);
    for first in (0..before).step_by(batch) {
        let chunk = slice(set, first..(first + batch).min(before));
        let mut shift = None;
        stream_of(model, std::slice::from_ref(&chunk), options).run(cancel, &mut |_| {}, &mut |_, x| {
            let outputs = tch::no_grad(|| model.forward(x))?;
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

/// The streaming pass of `set` through the model into the accumulators (under `shift` when given)
/// and a temporary features file beside `out`; the files that could not be read.
fn run_pass<'m>(
    model: &'m Model,
    set: &ImageSet,
    shift: Option<Tensor>,
    options: &FitOptions,
    out: &Path,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(FitProgress),
) -> Result<(store::Pass<'m>, Vec<SkippedFile>), RunError> {
    if model.card.is_ensemble() {
        return Err(RunError::Invalid(format!(
            "a fit needs a single model; {} is a leave-out ensemble",
            model.card.name
        )));
    }
    let features_file = store::FeatureFile::create(out).map_err(io_error(out))?;
    let mut pass = store::Pass::new(model, set.labelled, features_file).map_err(tch_error)?;
    if let Some(shift) = shift {
        pass.accumulator.set_shift(shift).map_err(tch_error)?;
    }
    let mut report_images = |p: Progress| {
        on_progress(FitProgress {
            stage: FitStage::Images,
            done: p.done,
            total: p.total,
            elapsed: p.elapsed,
        });
    };
    let sets = std::slice::from_ref(set);
    let stats = stream_of(model, sets, options).run(cancel, &mut report_images, &mut |items, x| {
        let outputs = tch::no_grad(|| model.forward(x))?;
        let labels: Option<Vec<usize>> = set
            .labelled
            .then(|| items.iter().map(|i| set.label(i.index).unwrap_or(0)).collect());
        pass.add(&outputs, labels.as_deref())
            .map_err(|e| RunError::Invalid(format!("fit: {e}")))
    })?;
    Ok((pass, stats.skipped))
}

fn write_error(out: &Path) -> impl Fn(store::WriteError) -> RunError + '_ {
    move |e| match e {
        store::WriteError::Cancelled => RunError::Cancelled,
        store::WriteError::Failed(m) => RunError::Invalid(format!("fit: writing {}: {m}", out.display())),
    }
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> RunError + '_ {
    move |e| RunError::Invalid(format!("fit: cannot write beside {}: {e}", path.display()))
}

fn tch_error(e: tch::TchError) -> RunError {
    RunError::Invalid(format!("fit: {e}"))
}

impl Fit {
    /// Loads a fit file for `model`: it must have been made from this model (same file hash and
    /// card), else the message says so. Banks over `bank_budget` bytes stay on disk.
    pub fn load(path: &Path, model: &Model, bank_budget: usize) -> Result<Fit, String> {
        let fail = |m: String| format!("fit file {}: {m}", path.display());
        let reader = Arc::new(file::Reader::open(path).map_err(fail)?);
        let info = FitInfo::from_metadata(path, &reader.metadata).map_err(fail)?;
        let current = store::model_hash(model).map_err(fail)?;
        if info.model_sha256 != current {
            return Err(fail(format!(
                "it was made for another model or card (model hash {} here, {} in the fit): refit with `oodscope fit` or give --train",
                short(&current),
                short(&info.model_sha256)
            )));
        }
        let device = model.device;
        let get = |name: &str| -> Result<Option<Tensor>, String> {
            if !reader.has(name) {
                return Ok(None);
            }
            let t = reader.tensor(name).map_err(fail)?;
            Ok(Some(t.f_to_device(device).map_err(|e| fail(e.to_string()))?))
        };
        let present: Vec<usize> = nonzero(&info.counts);
        let rows = |t: Option<Tensor>, which: &[usize]| -> Result<Option<Tensor>, String> {
            t.map(|t| {
                let index: Vec<i64> = which.iter().map(|&c| c as i64).collect();
                let index = Tensor::from_slice(&index).f_to_device(device)?;
                t.f_index_select(0, &index)
            })
            .transpose()
            .map_err(|e| fail(e.to_string()))
        };
        let predicted: Vec<usize> = nonzero(&info.predicted_counts);
        let klm_templates = rows(get("klm_templates")?, &predicted)?.ok_or_else(|| fail("no KL templates".into()))?;
        let vim = match (
            get("vim_u")?,
            get("vim_eigenvectors")?,
            get("vim_eigenvalues")?,
            get("vim_alpha")?,
        ) {
            (Some(origin), Some(eigenvectors), Some(values), Some(alpha)) => Some(Vim {
                origin,
                eigenvectors,
                eigenvalues: to_f64s(&values).map_err(fail)?,
                alpha: to_f64s(&alpha).map_err(fail)?,
            }),
            _ => None,
        };
        let react_percentiles = get("react_percentiles")?
            .map(|t| to_f64s(&t))
            .transpose()
            .map_err(fail)?;
        let bank = Bank::open(reader.clone(), "knn_bank", device, bank_budget).map_err(fail)?;
        let class_means = rows(get("class_means")?, &present)?;
        let quadratic = |centres: &Option<Tensor>, precision: Option<Tensor>| -> Result<Option<Quadratic>, String> {
            match (centres, precision) {
                (Some(c), Some(p)) => Quadratic::new(c, &p).map(Some).map_err(|e| fail(e.to_string())),
                _ => Ok(None),
            }
        };
        let global_mean = get("global_mean")?;
        let global_centre = global_mean
            .as_ref()
            .map(|m| m.f_unsqueeze(0))
            .transpose()
            .map_err(|e| fail(e.to_string()))?;
        Ok(Fit {
            mahalanobis: quadratic(&class_means, get("shared_pinv")?)?,
            global: quadratic(&global_centre, get("global_pinv")?)?,
            class_means,
            present,
            global_mean,
            vim,
            react_percentiles,
            klm_templates,
            bank,
            dice_weights: Default::default(),
            info,
        })
    }
}

/// The indices of the non-zero counts.
fn nonzero(counts: &[u64]) -> Vec<usize> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(c, _)| c)
        .collect()
}

fn to_f64s(t: &Tensor) -> Result<Vec<f64>, String> {
    let flat = t
        .f_to_device(Device::Cpu)
        .and_then(|t| t.f_to_kind(Kind::Double))
        .and_then(|t| t.f_contiguous())
        .and_then(|t| t.f_view([-1]))
        .map_err(|e| e.to_string())?;
    Vec::<f64>::try_from(flat).map_err(|e| e.to_string())
}

/// The first 12 hex digits of a hash, for messages.
pub fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}
