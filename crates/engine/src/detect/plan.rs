//! The plan of a scoring run: the requested methods, checked against the model and the fit, and how
//! one batch is scored for all of them with each model output computed once.
//!
//! Per batch: one forward pass of the clean input gives the logits, features and confidence that
//! every method reads (with the autograd graph kept when some method takes an input step). Each
//! method with ε > 0 then takes its own backward pass (its own loss) and one forward pass of its
//! stepped input; methods without a step cost no further passes. The class prediction and the MSP
//! baseline come from the clean logits. Methods that take the same step (the same method with the
//! same parameters but ε, as in a tuning grid) share its gradient sign: one backward pass for all
//! their ε values.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use tch::{Kind, Tensor};

use super::{Context, DetectError, DetectResult, Dims, ScoreSettings, to_vec_f32, to_vec_i64};
use crate::model::{Model, ModelError, Outputs};
use crate::stats::Fit;

/// The methods of a run, checked.
pub struct Plan<'a> {
    pub model: &'a Model,
    pub methods: Vec<ScoreSettings>,
    pub fit: Option<&'a Fit>,
    /// Keep every image's features in the run (for re-scoring feature methods without the model).
    pub keep_features: bool,
    /// Checked between methods within a batch (a tuning grid makes batches long).
    pub cancel: Option<&'a AtomicBool>,
}

/// Why a batch was not scored.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl From<ScoreError> for crate::Error {
    fn from(e: ScoreError) -> Self {
        match e {
            ScoreError::Cancelled => crate::Error::Cancelled,
            ScoreError::Model(m) => crate::Error::Model(m),
        }
    }
}

/// Per-image results of one batch, on the CPU.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchScores {
    /// One score vector per method of the plan, in plan order.
    pub scores: Vec<Vec<f32>>,
    /// The MSP baseline (single models): max softmax of ℓ(x) at T = 1.
    pub baseline: Option<Vec<f32>>,
    /// Predicted class index (into the card's classes) and its probability.
    pub pred: Vec<i64>,
    pub pred_prob: Vec<f32>,
    /// The clean logits, `logit_width` per image (an ensemble: its members', concatenated).
    pub logits: Vec<f32>,
    pub logit_width: usize,
    /// The clean features, `feature_width` per image, when the plan keeps them.
    pub features: Vec<f32>,
    pub feature_width: usize,
    /// The inner blocks' reductions, when the plan keeps features and the model has blocks.
    pub blocks: crate::model::blocks::BlockRows,
}

impl<'a> Plan<'a> {
    /// Checks every method against the model and the fit (capabilities, parameter values that
    /// depend on them): the first problem is a one-line error.
    pub fn new(model: &'a Model, methods: Vec<ScoreSettings>, fit: Option<&'a Fit>) -> Result<Plan<'a>, crate::Error> {
        let plan = Plan {
            model,
            methods,
            fit,
            keep_features: false,
            cancel: None,
        };
        let caps = model.capabilities();
        for settings in &plan.methods {
            let method = settings.method.name().to_string();
            if let Some(missing) = settings.method.missing(&caps, fit.is_some()) {
                let message = missing.message(&method, &model.card.name);
                return Err(crate::Error::Unsupported {
                    method,
                    missing,
                    message,
                });
            }
            if caps.inference_only && settings.needs_gradient() {
                let missing = super::Missing::InputGradients;
                let message = missing.message(&method, &model.card.name).replacen(
                    "` needs",
                    &format!("` with ε = {} needs", settings.epsilon()),
                    1,
                );
                return Err(crate::Error::Unsupported {
                    method,
                    missing,
                    message,
                });
            }
            settings
                .method
                .detector()
                .check(&plan.context(), &settings.params)
                .map_err(|message| crate::Error::Parameters { method, message })?;
        }
        Ok(plan)
    }

    /// A plan for one method.
    pub fn single(model: &'a Model, settings: &ScoreSettings, fit: Option<&'a Fit>) -> Result<Plan<'a>, crate::Error> {
        Self::new(model, vec![settings.clone()], fit)
    }

    /// Whether a method of the plan reads the blocks' Gram rows (only then does a pass compute and
    /// keep them).
    pub fn reads_gram_rows(&self) -> bool {
        self.methods.iter().any(|m| m.method.detector().needs().gram_rows)
    }

    pub fn keeping_features(mut self, keep: bool) -> Self {
        self.keep_features = keep;
        self
    }

    pub fn cancelled_by(mut self, cancel: &'a AtomicBool) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// What the detectors score with.
    pub fn context(&self) -> Context<'a> {
        Context {
            card: &self.model.card,
            head: self.model.head.as_ref(),
            fit: self.fit,
            device: self.model.device,
        }
    }

    /// Whether some method takes an input step (and so a backward pass).
    pub fn needs_gradient(&self) -> bool {
        self.methods.iter().any(ScoreSettings::needs_gradient)
    }

    /// Scores a batch `x` (`[N, C, H, W]`, pixel units, on the model's device) with every method.
    pub fn score_batch(&self, x: &Tensor) -> Result<BatchScores, ScoreError> {
        let model = self.model;
        let fail = |e: DetectError| ModelError::model(model.file(), e.0);
        let (clean, tracked) = self.clean_outputs(x)?;
        let ctx = self.context();
        let mut scores = Vec::with_capacity(self.methods.len());
        // Gradient signs by step (method and parameters but ε), shared within the batch.
        let mut signs: HashMap<String, Vec<Tensor>> = HashMap::new();
        // The prediction a method implies (the ensemble's), else the clean softmax's.
        let mut implied_probs = None;
        for settings in &self.methods {
            if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(ScoreError::Cancelled);
            }
            let detector = settings.method.detector();
            let score = match (settings.epsilon(), &tracked) {
                (eps, Some((x_tracked, outputs))) if eps > 0.0 => {
                    let key = step_key(settings);
                    if !signs.contains_key(&key) {
                        let losses = detector.step_losses(outputs, &ctx, &settings.params).map_err(fail)?;
                        signs.insert(key.clone(), step_signs(model, x_tracked, &losses, settings)?);
                    }
                    let stepped = step_inputs(model, x, &signs[&key], eps)?;
                    let out = tch::no_grad(|| model.outputs(&stepped, false))?;
                    tch::no_grad(|| scored(detector, &out, &ctx, &settings.params, &mut implied_probs))
                }
                _ => tch::no_grad(|| scored(detector, &clean, &ctx, &settings.params, &mut implied_probs)),
            }
            .map_err(fail)?;
            scores.push(to_vec_f32(&score).map_err(|e| fail(e.into()))?);
        }
        let n = x.size()[0] as usize;
        if scores.iter().any(|s| s.len() != n) {
            return Err(ModelError::model(model.file(), "a method returned a score vector of the wrong length").into());
        }
        let probs = match implied_probs {
            Some(p) => p,
            None => model.class_probabilities(&clean)?,
        };
        let (pred_prob, pred) = probs.f_max_dim(1, false).map_err(|e| fail(e.into()))?;
        let pred_prob = to_vec_f32(&pred_prob).map_err(|e| fail(e.into()))?;
        let features = match (&clean.features, self.keep_features) {
            (Some(z), true) => to_vec_f32(z).map_err(|e| fail(e.into()))?,
            _ => Vec::new(),
        };
        let blocks = if self.keep_features {
            crate::model::blocks::BlockRows::of(&clean, self.reads_gram_rows()).map_err(|e| fail(e.into()))?
        } else {
            Default::default()
        };
        Ok(BatchScores {
            scores,
            baseline: (!model.card.is_ensemble()).then(|| pred_prob.clone()),
            pred: to_vec_i64(&pred).map_err(|e| fail(e.into()))?,
            pred_prob,
            logits: to_vec_f32(&clean.logits).map_err(|e| fail(e.into()))?,
            logit_width: clean.logits.size()[1] as usize,
            feature_width: if features.is_empty() {
                0
            } else {
                features.len() / n.max(1)
            },
            features,
            blocks,
        })
    }

    /// The clean outputs, detached; and when some method takes a step, the grad-tracking input
    /// with the outputs still attached to its graph.
    #[allow(clippy::type_complexity)]
    fn clean_outputs(&self, x: &Tensor) -> Result<(Outputs, Option<(Tensor, Outputs)>), ModelError> {
        let model = self.model;
        if !self.needs_gradient() {
            let inputs: Vec<Tensor> = (0..model.networks()).map(|_| x.shallow_clone()).collect();
            return Ok((tch::no_grad(|| model.outputs(&inputs, self.reads_gram_rows()))?, None));
        }
        let x_tracked = x
            .f_detach()
            .and_then(|t| t.f_set_requires_grad(true))
            .map_err(|e| ModelError::model(model.file(), e.to_string()))?;
        let inputs: Vec<Tensor> = (0..model.networks()).map(|_| x_tracked.shallow_clone()).collect();
        let outputs = model.outputs(&inputs, self.reads_gram_rows())?;
        Ok((outputs.detach(), Some((x_tracked, outputs))))
    }
}

/// A method's score of `outputs`, and the class probabilities it implies if no earlier method did.
fn scored(
    detector: &dyn super::Detector,
    outputs: &Outputs,
    ctx: &Context,
    params: &super::Params,
    implied: &mut Option<Tensor>,
) -> DetectResult<Tensor> {
    let score = detector.score(outputs, ctx, params)?;
    if implied.is_none() {
        *implied = detector.class_probabilities(outputs, ctx, params)?;
    }
    Ok(score)
}

/// What identifies a step: the method and its parameters other than ε.
fn step_key(settings: &ScoreSettings) -> String {
    let params: Vec<String> = settings
        .params
        .iter()
        .filter(|(name, _)| *name != "epsilon")
        .map(|(name, value)| format!("{name}={value:e}"))
        .collect();
    format!("{}:{}", settings.method, params.join(","))
}

/// `sign(∇ₓ loss_k)` for each network's loss. A model whose graph cannot be differentiated gives
/// one line naming the model and the method.
fn step_signs(
    model: &Model,
    x_tracked: &Tensor,
    losses: &[Tensor],
    settings: &ScoreSettings,
) -> Result<Vec<Tensor>, ModelError> {
    if losses.len() != model.networks() {
        return Err(ModelError::model(
            model.file(),
            format!(
                "method `{}` gave {} losses for {} networks",
                settings.method,
                losses.len(),
                model.networks()
            ),
        ));
    }
    losses
        .iter()
        .map(|loss| {
            gradient_sign(loss, x_tracked).map_err(|e| {
                ModelError::model(
                    model.file(),
                    format!(
                        "method `{}` needs input gradients, and the model cannot give them ({}); the methods without a step (ε = 0) still work",
                        settings.method,
                        crate::model::first_line(&e.0)
                    ),
                )
            })
        })
        .collect()
}

/// `x − ε·sign_k` for each network's sign.
fn step_inputs(model: &Model, x: &Tensor, signs: &[Tensor], eps: f64) -> Result<Vec<Tensor>, ModelError> {
    signs
        .iter()
        .map(|sign| {
            tch::no_grad(|| x.f_detach()?.f_sub(&sign.f_mul_scalar(eps)?))
                .map_err(|e| ModelError::model(model.file(), e.to_string()))
        })
        .collect()
}

/// `sign(∇ₓ loss)`, keeping the graph for the next method's loss.
pub fn gradient_sign(loss: &Tensor, x_tracked: &Tensor) -> DetectResult<Tensor> {
    Ok(input_gradient(loss, x_tracked)?.f_sign()?)
}

/// `∇ₓ loss`, keeping the graph.
pub fn input_gradient(loss: &Tensor, x_tracked: &Tensor) -> DetectResult<Tensor> {
    let mut grads = Tensor::f_run_backward(&[loss], &[x_tracked], true, false)?;
    grads
        .pop()
        .ok_or_else(|| DetectError("no gradient was returned".into()))
}

/// `∇ₓ L` of a batch for a method's step loss (its first network's, for an ensemble).
fn first_loss_gradient(
    model: &Model,
    x: &Tensor,
    settings: &ScoreSettings,
    fit: Option<&Fit>,
) -> Result<Tensor, ModelError> {
    let plan = Plan::single(model, settings, fit).map_err(|e| ModelError::model(model.file(), e.to_string()))?;
    let fail = |e: DetectError| ModelError::model(model.file(), e.0);
    let x_tracked = x
        .f_detach()
        .and_then(|t| t.f_set_requires_grad(true))
        .map_err(|e| fail(e.into()))?;
    let inputs: Vec<Tensor> = (0..model.networks()).map(|_| x_tracked.shallow_clone()).collect();
    let outputs = model.outputs(&inputs, false)?;
    let losses = settings
        .method
        .detector()
        .step_losses(&outputs, &plan.context(), &settings.params)
        .map_err(fail)?;
    let loss = losses.first().ok_or_else(|| fail(DetectError("no loss".into())))?;
    input_gradient(loss, &x_tracked).map_err(fail)
}

/// `‖∇ₓ L‖₁` per image of a method's step loss, for the first-order estimate.
pub fn gradient_l1(
    model: &Model,
    x: &Tensor,
    settings: &ScoreSettings,
    fit: Option<&Fit>,
) -> Result<Vec<f32>, ModelError> {
    let fail = |e: DetectError| ModelError::model(model.file(), e.0);
    let gradient = first_loss_gradient(model, x, settings, fit)?;
    let norms = gradient
        .f_abs()
        .and_then(|g| g.f_sum_dim_intlist(&[1i64, 2, 3][..], false, Kind::Float))
        .map_err(|e| fail(e.into()))?;
    to_vec_f32(&norms).map_err(|e| fail(e.into()))
}

/// The input step `x̃ − x = −ε·sign(∇ₓ L)` of a batch under a method's settings (its first
/// network's, for an ensemble), in pixel units, on the CPU as `[N, C, H, W]` values; zero when the
/// method takes no step.
pub fn perturbation(
    model: &Model,
    x: &Tensor,
    settings: &ScoreSettings,
    fit: Option<&Fit>,
) -> Result<Vec<f32>, ModelError> {
    let eps = settings.epsilon();
    if eps == 0.0 {
        return Ok(vec![0.0; x.numel()]);
    }
    let fail = |e: DetectError| ModelError::model(model.file(), e.0);
    let step = first_loss_gradient(model, x, settings, fit)?
        .f_sign()
        .and_then(|sign| sign.f_mul_scalar(-eps))
        .map_err(|e| fail(e.into()))?;
    to_vec_f32(&step).map_err(|e| fail(e.into()))
}

/// The dimensions parameter ranges depend on.
pub fn dims_of(model: &Model) -> Dims {
    Dims {
        classes: model.card.num_classes(),
        features: model.feature_width,
        bank: None,
    }
}

/// The dimensions with a fit's bank size.
pub fn dims_with_fit(model: &Model, fit: Option<&Fit>) -> Dims {
    Dims {
        bank: fit.and_then(|f| f.bank.as_ref()).map(|b| b.len),
        ..dims_of(model)
    }
}
