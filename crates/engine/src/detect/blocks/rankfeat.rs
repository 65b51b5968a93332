//! RankFeat (Song et al. 2022): the last inner block's feature map `X` (`C × HW` per image) loses
//! its rank-1 part `σ₁u₁v₁ᵀ` (the largest singular value's), the rest is pooled as the network
//! pools it and goes through the head; the score is the energy `logsumexp(W·mean_hw(X − σ₁u₁v₁ᵀ) + b)`.
//! It needs the block before the global pooling, listed last in the card's `blocks`; the model's
//! load computes the pooled rank-1-free map once per pass (`model::blocks`).

use tch::{Kind, Tensor};

use crate::detect::{Context, DetectError, DetectResult, Detector, Group, Needs, Params, ops};
use crate::model::Outputs;

pub struct RankFeat;

impl Detector for RankFeat {
    fn name(&self) -> &'static str {
        "rankfeat"
    }
    fn title(&self) -> &'static str {
        "RankFeat"
    }
    fn group(&self) -> Group {
        Group::Features
    }
    fn needs(&self) -> Needs {
        Needs {
            features: true,
            head: true,
            pooled_block: true,
            ..Needs::default()
        }
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, _params: &Params) -> DetectResult<Tensor> {
        let pooled = outputs
            .rank1_removed
            .as_ref()
            .ok_or_else(|| DetectError("the model returned no inner blocks (the card's `blocks`)".into()))?;
        ops::energy_of_head(&pooled.f_to_kind(Kind::Double)?, ctx)
    }
}
