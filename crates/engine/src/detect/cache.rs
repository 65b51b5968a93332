//! Outputs kept from a run (clean logits and features, on the CPU) and re-scoring them with a method
//! that takes no input step: a new T, k, percentile or dim costs no model pass.

use tch::{Device, Kind, Tensor};

use super::{Context, DetectError, DetectResult, ScoreSettings, to_vec_f32};
use crate::model::Outputs;
use crate::model::blocks::BlockRows;

/// A run's clean outputs as plain values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CachedOutputs {
    /// `rows × logit_width` logits (an ensemble: its members' logits, concatenated).
    pub logits: Vec<f32>,
    pub logit_width: usize,
    /// `rows × feature_width` features, or empty.
    pub features: Vec<f32>,
    pub feature_width: usize,
    /// An ensemble's member widths (their logits' column counts), in order; empty otherwise.
    pub member_widths: Vec<usize>,
    /// The inner blocks' reductions, when the model has blocks and the run kept them.
    pub blocks: BlockRows,
    pub rows: usize,
}

/// Rows re-scored per step (bounds the device memory a re-score takes).
const CHUNK: usize = 8192;

impl CachedOutputs {
    /// Rows `start..start + len` as [`Outputs`] on `device`, with their features (and block
    /// reductions) when `features` is set and the outputs hold some (a method that reads no
    /// features need not copy them).
    pub fn outputs(&self, start: usize, len: usize, device: Device, features: bool) -> DetectResult<Outputs> {
        let block = |values: &[f32], width: usize| -> DetectResult<Tensor> {
            let slice = values
                .get(start * width..(start + len) * width)
                .ok_or_else(|| DetectError("the cached outputs are shorter than the run".into()))?;
            Ok(Tensor::from_slice(slice)
                .f_view([len as i64, width as i64])?
                .f_to_device(device)?)
        };
        let (block_means, rank1_removed, gram) = if features {
            self.blocks.tensors(start, len, device)?
        } else {
            (Vec::new(), None, None)
        };
        let logits = block(&self.logits, self.logit_width)?;
        let mut members = Vec::new();
        let mut column = 0;
        for &width in &self.member_widths {
            members.push(logits.f_narrow(1, column, width as i64)?);
            column += width as i64;
        }
        let features = if features && self.feature_width > 0 {
            Some(block(&self.features, self.feature_width)?)
        } else {
            None
        };
        Ok(Outputs {
            logits,
            confidence: None,
            features,
            members,
            block_means,
            rank1_removed,
            gram,
        })
    }
}

/// Whether `settings` can be scored from cached outputs: no input step, and no confidence branch
/// (its logit is not kept).
pub fn can_rescore(settings: &ScoreSettings, cached: &CachedOutputs) -> bool {
    let needs = settings.method.detector().needs();
    !settings.needs_gradient()
        && !needs.confidence
        && (!needs.features || cached.feature_width > 0)
        && (!(needs.blocks || needs.pooled_block) || !cached.blocks.is_empty())
        && (!needs.gram_rows || cached.blocks.gram)
}

/// Every cached row's score under `settings` (see [`can_rescore`]), computed in chunks on the
/// context's device.
pub fn rescore(ctx: &Context, cached: &CachedOutputs, settings: &ScoreSettings) -> DetectResult<Vec<f32>> {
    if !can_rescore(settings, cached) {
        return Err(DetectError(format!(
            "{} cannot be computed from the cached outputs",
            settings.describe()
        )));
    }
    let detector = settings.method.detector();
    let mut scores = Vec::with_capacity(cached.rows);
    for start in (0..cached.rows).step_by(CHUNK) {
        let len = CHUNK.min(cached.rows - start);
        let needs = detector.needs();
        let vectors = needs.features || needs.blocks || needs.pooled_block;
        let outputs = cached.outputs(start, len, ctx.device, vectors)?;
        let block = tch::no_grad(|| detector.score(&outputs, ctx, &settings.params))?;
        scores.extend(to_vec_f32(&block.f_to_kind(Kind::Float)?)?);
    }
    Ok(scores)
}
