//! The leave-out ensemble (Vyas et al. 2018): each member takes its own ODIN step at temperature T;
//! score `Σ_k [max_j p_kj − H(p_k)]` with `p_k = softmax(ℓ_k(x̃_k)/T)`; its class prediction is the
//! argmax of the `p_k` scattered into the card's classes and averaged.

use tch::{Kind, Tensor};

use super::{Context, DetectError, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params, ops};
use crate::model::{CardKind, Outputs};

pub struct Ensemble;

impl Detector for Ensemble {
    fn name(&self) -> &'static str {
        "ensemble"
    }
    fn title(&self) -> &'static str {
        "Leave-out ensemble"
    }
    fn group(&self) -> Group {
        Group::Architecture
    }
    fn needs(&self) -> Needs {
        Needs {
            ensemble: true,
            gradient: true,
            ..Needs::default()
        }
    }
    fn params(&self, _dims: &Dims) -> Vec<ParamSpec> {
        vec![ParamSpec::temperature(1000.0), ParamSpec::epsilon(0.0014)]
    }
    /// One loss per member: its own ODIN loss (with its own argmax).
    fn step_losses(&self, outputs: &Outputs, _ctx: &Context, params: &Params) -> DetectResult<Vec<Tensor>> {
        let t = params.get("temperature")?;
        outputs.members.iter().map(|logits| ops::odin_loss(logits, t)).collect()
    }
    fn score(&self, outputs: &Outputs, _ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        let t = params.get("temperature")?;
        let mut terms = outputs
            .members
            .iter()
            .map(|logits| ops::max_softmax_minus_entropy(logits, t));
        let first = terms
            .next()
            .ok_or_else(|| DetectError("an ensemble with no members".into()))??;
        terms.try_fold(first, |sum, term| Ok(sum.f_add(&term?)?))
    }

    fn class_probabilities(&self, scored: &Outputs, ctx: &Context, params: &Params) -> DetectResult<Option<Tensor>> {
        let CardKind::Ensemble { members } = &ctx.card.kind else {
            return Ok(None);
        };
        let t = params.get("temperature")?;
        let n = scored.len();
        let mut averaged = Tensor::f_zeros([n, ctx.card.num_classes() as i64], (Kind::Float, ctx.device))?;
        for (member, logits) in members.iter().zip(&scored.members) {
            let columns: Vec<i64> = member.classes.iter().map(|&c| c as i64).collect();
            let index = Tensor::from_slice(&columns).f_to_device(ctx.device)?;
            let p = logits.f_div_scalar(t)?.f_softmax(1, Kind::Float)?;
            averaged = averaged.f_index_add(1, &index, &p)?;
        }
        Ok(Some(averaged.f_div_scalar(members.len() as f64)?))
    }
}
