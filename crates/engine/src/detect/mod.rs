//! Scoring methods as detectors: one file per method, listed in [`registry`]. Each declares its
//! name, group, needs and typed parameters, and how it scores a batch from a model's outputs;
//! [`plan`] computes each output a batch needs once for every requested method.
//!
//! A detector never runs the model itself. It scores [`Outputs`] — of the clean input, or of the
//! input after its own gradient-sign step when it has one (`epsilon > 0`): the planner runs the
//! forward and backward passes from the detector's [`Detector::step_losses`]. That is also what
//! lets the same code re-score cached outputs without the model (a new T, k, percentile or dim).

pub mod blocks;
pub mod cache;
pub mod confidence;
pub mod ensemble;
pub mod features;
pub mod logits;
pub mod method;
pub mod ops;
pub mod params;
pub mod plan;
pub mod registry;

use tch::{Device, Tensor};

use crate::model::{Capabilities, Head, ModelCard, Outputs};
use crate::stats::Fit;

pub use method::{Method, ScoreSettings};
pub use params::{Dims, ParamSpec, Params};

/// How the window groups methods: by what they need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// From the logits alone.
    Logits,
    /// From the logits after an input step against the gradient.
    Gradient,
    /// From the penultimate features and the head.
    Features,
    /// From features or logits compared with statistics of ID training images (a fit).
    Fit,
    /// Needing a particular model: a confidence branch, a leave-out ensemble.
    Architecture,
}

impl Group {
    pub const ALL: [Group; 5] = [
        Group::Logits,
        Group::Gradient,
        Group::Features,
        Group::Fit,
        Group::Architecture,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Group::Logits => "Logits",
            Group::Gradient => "Logits + input gradient",
            Group::Features => "Features + head",
            Group::Fit => "Fit on ID training data",
            Group::Architecture => "Special models",
        }
    }
}

/// What a method needs from the model and the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// Penultimate features z.
    pub features: bool,
    /// The head `ℓ = W·z + b`.
    pub head: bool,
    /// Statistics of ID training images (`fit`).
    pub fit: bool,
    /// A confidence branch.
    pub confidence: bool,
    /// A leave-out ensemble (every other method needs a single model).
    pub ensemble: bool,
    /// Input gradients, at least for some parameter values (ε > 0).
    pub gradient: bool,
    /// Inner blocks' feature maps (the card's `blocks`).
    pub blocks: bool,
    /// The last block being the map the features are pooled from (the head applies to it).
    pub pooled_block: bool,
    /// The blocks' Gram row sums (a run keeps them for re-scoring only when a method reads them).
    pub gram_rows: bool,
}

/// Why a method cannot run here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Ensemble,
    SingleModel,
    Confidence,
    Features,
    Head,
    Fit,
    /// Input gradients, from a model that gives none (an AOTInductor package).
    InputGradients,
    /// Statistics the fit does not hold (a fit made without class folders, or by an older oodscope).
    FitContent,
    /// Each class's covariance (gmm), which a fit keeps only when asked (`fit --class-covariances`).
    ClassCovariances,
    /// Inner blocks' feature maps (a card without `blocks`).
    Blocks,
    /// The last of the card's blocks is not the map the features are pooled from.
    PooledBlock,
}

impl Missing {
    /// One line for the command line: what the card (or the command) must provide.
    pub fn message(self, method: &str, model: &str) -> String {
        match self {
            Missing::Ensemble => {
                format!("method `{method}` needs an ensemble card (with `members`); {model} is a single model")
            }
            Missing::SingleModel => format!(
                "method `{method}` needs a single model; {model} is a leave-out ensemble (use --method ensemble)"
            ),
            Missing::Confidence => format!(
                "method `{method}` needs a model with a confidence branch (outputs = \"logits+confidence\"); {model} has none"
            ),
            Missing::Features => format!(
                "method `{method}` needs penultimate features: the card of {model} must say outputs = \"logits+features\" (see README, Models and their cards)"
            ),
            Missing::Head => format!(
                "method `{method}` needs the final linear layer: the card of {model} must give `head` (a linear submodule's name or a .safetensors file)"
            ),
            Missing::Fit => format!(
                "method `{method}` needs statistics of ID training images: give --train DIR (labelled ImageFolder) or --fit FILE"
            ),
            Missing::InputGradients => format!(
                "an AOTInductor package is inference-only: `{method}` needs input gradients; export TorchScript with scripts/export_model.py for it"
            ),
            Missing::FitContent => format!(
                "method `{method}` needs statistics this fit does not hold (it was made without class folders, or by an older oodscope): refit on a labelled folder with `oodscope fit`, or give --train"
            ),
            Missing::ClassCovariances => format!(
                "method `{method}` needs each class's covariance, which this fit does not keep: refit with `oodscope fit --class-covariances`, or give --train with --method {method}"
            ),
            Missing::Blocks => format!(
                "method `{method}` needs inner blocks' feature maps: the card of {model} lists no `blocks`; export with scripts/export_model.py --blocks NAME,… (docs/models.md, Inner blocks)"
            ),
            Missing::PooledBlock => format!(
                "method `{method}` needs the last of the card's `blocks` to be the map the features are pooled from (its spatial mean is z); in {model} it is not: list the block before the global pooling last (for a ResNet, layer4)"
            ),
        }
    }

    /// A short reason for the window (beside a disabled method).
    pub fn short(self) -> &'static str {
        match self {
            Missing::Ensemble => "needs a leave-out ensemble",
            Missing::SingleModel => "needs a single model",
            Missing::Confidence => "needs a confidence branch",
            Missing::Features => "needs features (outputs = \"logits+features\")",
            Missing::Head => "needs the head (`head` in the card)",
            Missing::Fit => "needs a fit: choose an ID training folder",
            Missing::InputGradients => "needs input gradients (an AOTInductor package is inference-only)",
            Missing::FitContent => "needs statistics this fit lacks: refit on labelled images",
            Missing::ClassCovariances => "needs per-class covariances: refit with --class-covariances",
            Missing::Blocks => "needs inner blocks: export with --blocks",
            Missing::PooledBlock => "needs the block before the global pooling, listed last in `blocks`",
        }
    }
}

impl Needs {
    /// What is missing for these needs, given the model's capabilities and whether a fit exists.
    pub fn missing(&self, caps: &Capabilities, has_fit: bool) -> Option<Missing> {
        if self.ensemble != caps.ensemble {
            return Some(if self.ensemble {
                Missing::Ensemble
            } else {
                Missing::SingleModel
            });
        }
        if self.confidence && !caps.confidence {
            return Some(Missing::Confidence);
        }
        if self.features && caps.features.is_none() {
            return Some(Missing::Features);
        }
        if self.head && !caps.head {
            return Some(Missing::Head);
        }
        if (self.blocks || self.pooled_block) && caps.blocks == 0 {
            return Some(Missing::Blocks);
        }
        if self.pooled_block && !caps.pooled_block {
            return Some(Missing::PooledBlock);
        }
        if self.fit && !has_fit {
            return Some(Missing::Fit);
        }
        None
    }
}

/// What a detector scores with besides the outputs: the card, the head and the fit, on `device`.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub card: &'a ModelCard,
    pub head: Option<&'a Head>,
    pub fit: Option<&'a Fit>,
    pub device: Device,
}

impl<'a> Context<'a> {
    pub fn head(&self) -> Result<&'a Head, DetectError> {
        self.head
            .ok_or_else(|| DetectError("this method needs the head, and the model has none".into()))
    }

    pub fn fit(&self) -> Result<&'a Fit, DetectError> {
        self.fit
            .ok_or_else(|| DetectError("this method needs a fit, and none was given".into()))
    }
}

/// A detector's failure, as one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct DetectError(pub String);

impl From<tch::TchError> for DetectError {
    fn from(e: tch::TchError) -> Self {
        DetectError(e.to_string())
    }
}

impl From<crate::stats::StatsError> for DetectError {
    fn from(e: crate::stats::StatsError) -> Self {
        DetectError(e.0)
    }
}

impl From<params::UnknownParam> for DetectError {
    fn from(e: params::UnknownParam) -> Self {
        DetectError(e.to_string())
    }
}

impl From<String> for DetectError {
    fn from(e: String) -> Self {
        DetectError(e)
    }
}

pub type DetectResult<T> = Result<T, DetectError>;

/// A scoring method. Scores are oriented as docs/methods.md says: higher means more in-distribution.
pub trait Detector: Send + Sync {
    /// The name on the command line (`--method`).
    fn name(&self) -> &'static str;
    /// The human name for tables and titles.
    fn title(&self) -> &'static str;
    fn group(&self) -> Group;
    fn needs(&self) -> Needs;

    /// The method's parameters for a model of these dimensions (defaults and ranges may depend on C
    /// and D).
    fn params(&self, _dims: &Dims) -> Vec<ParamSpec> {
        Vec::new()
    }

    /// The size of the input step `x̃ = x − ε·sign(∇ₓ L)` at these parameters (0: no step, the
    /// score comes from the clean outputs).
    fn epsilon(&self, params: &Params) -> f64 {
        params.value("epsilon").unwrap_or(0.0)
    }

    /// The losses whose input-gradient sign is the step: one per network, computed from the
    /// outputs of the clean input (attached to the autograd graph), summed over the batch (each
    /// image keeps its own gradient). Called only when [`Detector::epsilon`] is positive.
    fn step_losses(&self, _outputs: &Outputs, _ctx: &Context, _params: &Params) -> DetectResult<Vec<Tensor>> {
        Err(DetectError(format!("method `{}` has no input step", self.name())))
    }

    /// Each image's score `[N]` from the outputs of its (clean, or stepped) input.
    fn score(&self, outputs: &Outputs, ctx: &Context, params: &Params) -> DetectResult<Tensor>;

    /// The class probabilities `[N, C]` this method's scoring implies, where they are not the clean
    /// softmax (the leave-out ensemble's prediction: its members' probabilities at T after their
    /// steps, scattered into the card's classes and averaged). `scored`: the outputs it scored.
    fn class_probabilities(&self, _scored: &Outputs, _ctx: &Context, _params: &Params) -> DetectResult<Option<Tensor>> {
        Ok(None)
    }

    /// The tensors of a fit file this method reads (a saved detector keeps only these, besides the
    /// counts and the KL templates every fit has).
    fn fit_tensors(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether these parameters can score with this context (enough fit images for k, …).
    fn check(&self, _ctx: &Context, _params: &Params) -> Result<(), String> {
        Ok(())
    }

    /// The score after a step of ε to first order, from the clean score and `ε·‖∇ₓ L‖₁` (for
    /// showing an estimate at once while ε moves); `None` where there is no such estimate.
    fn first_order(&self, _clean: f64, _epsilon_times_norm: f64) -> Option<f64> {
        None
    }
}

pub use crate::tensor::{to_vec_f32, to_vec_i64};
