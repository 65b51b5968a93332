//! A scoring run: every image of every set through the plan's methods, batch by batch (see
//! `stream`), kept as per-image records and one score column per method.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tch::Tensor;

use crate::Error;
use crate::detect::ScoreSettings;
use crate::detect::plan::{BatchScores, Plan};
use crate::model::Model;
use crate::pipeline::{DecodeSchedule, Item, Progress, SkippedFile, StageTimes, Stream};
use crate::stats::Fit;
use oodscope_data::{ImageSet, Role};

/// One scored image: where it is, the model's prediction and the MSP baseline.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImageScore {
    /// Index of the set in the run's set list.
    pub set: usize,
    /// Index of the image within its set.
    pub index: usize,
    /// The image's path (`uniform#17` for noise). Empty in a run read from a results file
    /// ([`crate::results::open`]), which keeps each path once, in its set's listing:
    /// [`ScoreRun::path_of`] gives it in every case.
    pub path: Box<str>,
    /// MSP baseline on the same image (single models only).
    pub baseline: Option<f32>,
    /// The predicted class (u32 and a boxed path keep a record at 56 bytes: a results file of
    /// 10⁷ rows opens in < 2 GB).
    pub pred: u32,
    pub pred_prob: f32,
    pub label: Option<u32>,
}

/// Everything a run produced.
#[derive(Debug, Clone, Default)]
pub struct ScoreRun {
    /// In set order, then image order within each set.
    pub images: Vec<ImageScore>,
    /// The methods scored, with their parameters.
    pub methods: Vec<ScoreSettings>,
    /// `columns[m][i]`: method `m`'s score of `images[i]`; after the methods' columns, one per
    /// entry of `external`.
    pub columns: Vec<Vec<f32>>,
    /// Score columns that no oodscope method made (a results file's own columns, "external"),
    /// by name: their scores follow the methods' in `columns`.
    pub external: Vec<String>,
    /// The unperturbed logits of each image, `logit_width` values per entry of `images`.
    pub logits: Vec<f32>,
    pub logit_width: usize,
    /// The features of each image, `feature_width` per entry, when the run kept them.
    pub features: Vec<f32>,
    pub feature_width: usize,
    /// The inner blocks' reductions of each image, when the run kept features.
    pub blocks: crate::model::blocks::BlockRows,
    pub skipped: Vec<SkippedFile>,
    pub elapsed: Duration,
    /// Where the calling thread's time went.
    pub stages: StageTimes,
}

impl ScoreRun {
    /// The path of entry `i` of `images` (`uniform#17` for noise), from the entry or its set's listing.
    pub fn path_of(&self, i: usize, sets: &[ImageSet]) -> String {
        let s = &self.images[i];
        if s.path.is_empty() {
            sets[s.set].item_name(s.index)
        } else {
            s.path.to_string()
        }
    }

    /// The first method's scores, one per entry of `images`.
    pub fn scores(&self) -> &[f32] {
        self.columns.first().map_or(&[], Vec::as_slice)
    }

    /// The logits of entry `i` of `images`.
    pub fn logits_of(&self, i: usize) -> &[f32] {
        &self.logits[i * self.logit_width..(i + 1) * self.logit_width]
    }

    /// The first method's scores of one set, in image order.
    pub fn set_scores(&self, set: usize) -> Vec<f32> {
        self.column_set_scores(0, set)
    }

    /// Method `m`'s scores of one set, in image order.
    pub fn column_set_scores(&self, m: usize, set: usize) -> Vec<f32> {
        let Some(column) = self.columns.get(m) else {
            return Vec::new();
        };
        self.images
            .iter()
            .zip(column)
            .filter(|(s, _)| s.set == set)
            .map(|(_, &score)| score)
            .collect()
    }

    /// Method `m`'s scores of every image of the sets with this role, pooled in run order.
    pub fn column_role_scores(&self, m: usize, sets: &[ImageSet], role: Role) -> Vec<f32> {
        let Some(column) = self.columns.get(m) else {
            return Vec::new();
        };
        self.images
            .iter()
            .zip(column)
            .filter(|(s, _)| sets[s.set].role == role)
            .map(|(_, &score)| score)
            .collect()
    }

    /// The MSP baseline scores of one set, when the model has them.
    pub fn set_baseline(&self, set: usize) -> Option<Vec<f32>> {
        self.images
            .iter()
            .filter(|s| s.set == set)
            .map(|s| s.baseline)
            .collect()
    }

    /// Fraction of labelled images of the given sets whose prediction equals the label.
    pub fn accuracy(&self, sets: &[usize]) -> Option<f64> {
        let labelled: Vec<_> = self
            .images
            .iter()
            .filter(|s| sets.contains(&s.set))
            .filter_map(|s| s.label.map(|l| l == s.pred))
            .collect();
        (!labelled.is_empty()).then(|| labelled.iter().filter(|&&ok| ok).count() as f64 / labelled.len() as f64)
    }

    /// Keeps only the entries for which `keep(image)` holds (in every column and cache).
    pub fn retain(&mut self, keep: impl Fn(&ImageScore) -> bool) {
        let kept: Vec<bool> = self.images.iter().map(&keep).collect();
        let filter = |values: &mut Vec<f32>, width: usize| {
            if width == 0 {
                return;
            }
            let mut i = 0;
            values.retain(|_| {
                let k = kept[i / width];
                i += 1;
                k
            });
        };
        for column in &mut self.columns {
            filter(column, 1);
        }
        filter(&mut self.logits, self.logit_width);
        filter(&mut self.features, self.feature_width);
        let mut i = 0;
        self.images.retain(|_| {
            let k = kept[i];
            i += 1;
            k
        });
    }
}

/// Where a run's batches go as they finish besides the run (a results file, a CSV), so that what
/// only a file needs is never kept in memory.
pub trait BatchSink {
    /// One scored batch: `items[k]` (image `items[k].index` of set `items[k].set`) has the k-th
    /// entry of every vector of `scores` (`logit_width` / `feature_width` values per image). An
    /// error stops the run.
    fn batch(&mut self, sets: &[ImageSet], items: &[Item], scores: &BatchScores) -> Result<(), String>;
}

/// What a run keeps of each image's outputs besides its scores and record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// The clean logits (for re-scoring without the model, and the classes of an image).
    pub logits: bool,
    /// The features, when the plan computes them ([`Plan::keeping_features`]).
    pub features: bool,
}

impl Keep {
    /// Everything the plan returns (what the window re-scores from).
    pub const ALL: Keep = Keep {
        logits: true,
        features: true,
    };
    /// The scores and records only (the command line's evaluation needs no more).
    pub const SCORES: Keep = Keep {
        logits: false,
        features: false,
    };
}

/// Scores every image of every set with the plan's methods in batches of `batch_size`, in order,
/// with the device's [`DecodeSchedule`].
pub fn run_scoring(
    plan: &Plan,
    sets: &[ImageSet],
    batch_size: usize,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<ScoreRun, Error> {
    let schedule = DecodeSchedule::for_device(plan.model.device);
    run_scoring_with(plan, sets, batch_size, schedule, cancel, on_progress)
}

/// Every image of `sets` scored by one method (a plan of one), with no progress and no cancel.
pub fn score_sets(
    model: &Model,
    fit: Option<&Fit>,
    sets: &[ImageSet],
    settings: &ScoreSettings,
    batch_size: usize,
) -> Result<ScoreRun, Error> {
    let plan = Plan::single(model, settings, fit)?;
    run_scoring(&plan, sets, batch_size, &AtomicBool::new(false), &mut |_| {})
}

/// [`run_scoring`] with a chosen [`DecodeSchedule`] (both give the same results).
pub fn run_scoring_with(
    plan: &Plan,
    sets: &[ImageSet],
    batch_size: usize,
    schedule: DecodeSchedule,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<ScoreRun, Error> {
    run_scoring_into(
        plan,
        sets,
        batch_size,
        schedule,
        cancel,
        on_progress,
        Keep::ALL,
        &mut [],
    )
}

/// [`run_scoring_with`] that keeps only `keep` of the outputs in the run and hands every batch to
/// each of `sinks` as it finishes (a sink's error stops the run).
#[allow(clippy::too_many_arguments)]
pub fn run_scoring_into(
    plan: &Plan,
    sets: &[ImageSet],
    batch_size: usize,
    schedule: DecodeSchedule,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(Progress),
    keep: Keep,
    sinks: &mut [&mut dyn BatchSink],
) -> Result<ScoreRun, Error> {
    let model = plan.model;
    let stream = Stream {
        sets,
        pre: model.card.preprocess(),
        device: model.device,
        batch_size,
        schedule,
    };
    let mut run = ScoreRun {
        methods: plan.methods.clone(),
        columns: vec![Vec::new(); plan.methods.len()],
        ..ScoreRun::default()
    };
    let stats = stream.run(cancel, on_progress, &mut |items, x| {
        let scores = score_in_any_batch(plan, x)?;
        if scores.pred.len() != items.len() {
            return Err(Error::Invalid("the model returned a result of the wrong length".into()));
        }
        for sink in sinks.iter_mut() {
            sink.batch(sets, items, &scores).map_err(Error::Invalid)?;
        }
        for (column, batch) in run.columns.iter_mut().zip(&scores.scores) {
            column.extend_from_slice(batch);
        }
        if keep.logits {
            run.logit_width = scores.logit_width;
            run.logits.extend_from_slice(&scores.logits);
        }
        if keep.features {
            run.feature_width = scores.feature_width;
            run.features.extend_from_slice(&scores.features);
            run.blocks.extend(&scores.blocks);
        }
        for (k, item) in items.iter().enumerate() {
            run.images.push(ImageScore {
                set: item.set,
                index: item.index,
                path: sets[item.set].item_name(item.index).into(),
                baseline: scores.baseline.as_ref().map(|b| b[k]),
                pred: scores.pred[k].max(0) as u32,
                pred_prob: scores.pred_prob[k],
                label: sets[item.set].label(item.index).map(|l| l as u32),
            });
        }
        Ok(())
    })?;
    run.skipped = stats.skipped;
    run.elapsed = stats.elapsed;
    run.stages = stats.stages;
    Ok(run)
}

/// [`Plan::score_batch`] for a batch of any size, one image included: it runs as two copies, since
/// libtorch's CPU kernels take another path for a single row (the fixture model's logits then
/// differ in the last bit), and an image must score the same in any batch (shards merged equal the
/// whole run bit for bit; a served image equals its `check`).
pub fn score_in_any_batch(plan: &Plan, x: &Tensor) -> Result<BatchScores, Error> {
    if x.size().first() != Some(&1) {
        return Ok(plan.score_batch(x)?);
    }
    let pair = Tensor::f_cat(&[x, x], 0).map_err(|e| {
        Error::Invalid(format!(
            "cannot batch an image: {}",
            crate::model::first_line(&e.to_string())
        ))
    })?;
    Ok(first_image(plan.score_batch(&pair)?))
}

/// The first image's entries of a batch's results.
fn first_image(mut s: BatchScores) -> BatchScores {
    for column in &mut s.scores {
        column.truncate(1);
    }
    if let Some(b) = &mut s.baseline {
        b.truncate(1);
    }
    s.pred.truncate(1);
    s.pred_prob.truncate(1);
    s.logits.truncate(s.logit_width);
    s.features.truncate(s.feature_width);
    s
}

/// Indices of the sets with the given role.
pub fn sets_with_role(sets: &[ImageSet], role: Role) -> Vec<usize> {
    sets.iter()
        .enumerate()
        .filter(|(_, s)| s.role == role)
        .map(|(i, _)| i)
        .collect()
}
