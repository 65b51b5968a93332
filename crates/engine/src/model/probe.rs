//! The load probe: a few deterministic images through a freshly loaded model, checked against its
//! card (shapes, the head) and against the ways an export goes subtly wrong: a model left in
//! training mode (dropout, batch norm on batch statistics), a half-precision model, and one traced
//! with its batch size frozen at 1. Each is one line that says what the model is and how to
//! export it right.
//!
//! Half precision is refused rather than run by casting the input: the model's own numbers would be
//! reproduced, but float16 resolves about 1e-3 near 1, which is the size of ODIN's step ε and of
//! the differences between softmax scores at T = 1000, so the scores would say little; libtorch's
//! half kernels on the CPU are also slow or missing. `model.float()` before export is one line.

use tch::{Kind, Tensor};

use super::{Model, ModelError, Network, Outputs};

/// Outputs that differ by more than this (relative to the largest |logit|) for the same image are
/// not float noise: a different GEMM blocking at another batch size gives ~1e-6, dropout and
/// batch statistics give 1e-2 and more.
const SAME_OUTPUT_RTOL: f64 = 1e-3;

/// The last block is the map the features are pooled from when its spatial mean equals them to
/// this (relative to the largest |z|): float32 pooling differs by ~1e-7.
const POOLED_RTOL: f64 = 1e-4;

const EXPORT_ADVICE: &str = "call model.eval() before torch.jit.trace, or export it with scripts/export_model.py";

impl Model {
    /// Runs probe batches through every network: checks the shapes against the card, that the model
    /// is in eval mode (the same image gives the same outputs, alone or in a batch), records D and
    /// checks the head against the logits.
    pub(super) fn probe(&mut self) -> Result<(), ModelError> {
        self.refuse_half_parameters()?;
        let [c, h, w] = self.card.input_shape();
        // Two different, deterministic images (a zero image makes a poor test of the head). The
        // card's `input` is within its memory budget (card.rs), so these take at most 512 MiB; an
        // allocation that fails all the same (a small GPU) is an error, not a panic.
        let x = Tensor::f_linspace(0.0, 1.0, 2 * c * h * w, (Kind::Float, self.device))
            .and_then(|x| x.f_view([2, c, h, w]))
            .map_err(|e| {
                ModelError::model(
                    self.file(),
                    format!(
                        "cannot make the probe's 2 images of {c}×{h}×{w}: {}",
                        super::first_line(&e.to_string())
                    ),
                )
            })?;
        let first = match self.probe_outputs(&x) {
            Ok(out) => out,
            Err(e) => return Err(self.explain_failure(&x, e)),
        };
        if let Some(z) = &first.features {
            self.feature_width = Some(z.size()[1] as usize);
            self.block_widths = first.block_means.iter().map(|m| m.size()[1] as usize).collect();
            if let Some(last) = first.block_means.last() {
                self.pooled_block = last.size() == z.size() && self.difference(last, z)? <= POOLED_RTOL;
            }
        }
        let again = self.probe_outputs(&x).map_err(|e| self.card_error(e))?;
        let drift = self.difference(&first.logits, &again.logits)?;
        if drift > SAME_OUTPUT_RTOL {
            return Err(ModelError::model(
                self.file(),
                format!(
                    "gives different outputs for the same input (max relative difference {drift:.1e}): it was exported in training mode (dropout active); {EXPORT_ADVICE}"
                ),
            ));
        }
        let one = x.narrow(0, 0, 1);
        let alone = match self.probe_outputs(&one) {
            Ok(out) => out,
            Err(e) if message_of(&e).contains("Expected more than 1 value per channel when training") => {
                return Err(self.batch_statistics_error("batch norm in training mode cannot take one image"));
            }
            Err(e) => {
                return Err(ModelError::model(
                    self.file(),
                    format!("works on 2 images but fails on 1 ({})", message_of(&e)),
                ));
            }
        };
        let drift = self.difference(&first.logits.narrow(0, 0, 1), &alone.logits)?;
        if drift > SAME_OUTPUT_RTOL {
            return Err(self.batch_statistics_error(&format!(
                "an image's outputs change with the other images in its batch (max relative difference {drift:.1e})"
            )));
        }
        match (&self.head, &first.features) {
            (Some(head), Some(z)) => head
                .check(&first.logits, z)
                .map_err(|m| ModelError::card(&self.card.path, m)),
            (Some(_), None) => Err(ModelError::card(
                &self.card.path,
                "`head` is given but the model returns no features (outputs = \"logits+features\" is needed for it)"
                    .into(),
            )),
            _ => Ok(()),
        }
    }

    /// The outputs of every network on `x` (no autograd).
    fn probe_outputs(&self, x: &Tensor) -> Result<Outputs, ModelError> {
        let inputs: Vec<Tensor> = (0..self.networks()).map(|_| x.shallow_clone()).collect();
        tch::no_grad(|| self.outputs(&inputs, true))
    }

    /// `max |a − b| / max |b|` (b's scale at least 1e-12).
    fn difference(&self, a: &Tensor, b: &Tensor) -> Result<f64, ModelError> {
        let measured = || -> Result<f64, tch::TchError> {
            let diff = a.f_sub(b)?.f_abs()?.f_max()?.f_double_value(&[])?;
            let scale = b.f_abs()?.f_max()?.f_double_value(&[])?;
            Ok(diff / scale.max(1e-12))
        };
        let relative = measured().map_err(|e| ModelError::model(self.file(), e.to_string()))?;
        // NaN outputs are reported by the head check or the scores; they are no sign of train mode.
        Ok(if relative.is_nan() { 0.0 } else { relative })
    }

    fn batch_statistics_error(&self, what: &str) -> ModelError {
        ModelError::model(
            self.file(),
            format!("{what}: it was exported in training mode (batch norm on batch statistics); {EXPORT_ADVICE}"),
        )
    }

    /// Why the first probe batch failed: a half-precision model, a batch size frozen at 1, or
    /// else a mismatch with the card.
    fn explain_failure(&self, x: &Tensor, error: ModelError) -> ModelError {
        let message = message_of(&error);
        if ["Half", "BFloat16", "float16"].iter().any(|k| message.contains(k)) {
            return half_error(self.file(), "float16");
        }
        if self.probe_outputs(&x.narrow(0, 0, 1)).is_ok() {
            return ModelError::model(
                self.file(),
                format!(
                    "the model only accepts batch size 1 (traced with a fixed shape; at batch size 2: {message}); re-export it with a batch of 2 and shapes taken from the input (x.shape[0], torch.flatten(x, 1) rather than a constant), or with scripts/export_model.py, which checks batch sizes 1 and 2"
                ),
            );
        }
        self.card_error(error)
    }

    fn card_error(&self, error: ModelError) -> ModelError {
        match error {
            ModelError::Model { path, message } => ModelError::Model {
                path,
                message: format!("does not match its card ({}): {message}", self.card.path.display()),
            },
            other => other,
        }
    }

    /// A model whose parameters are float16 or bfloat16.
    fn refuse_half_parameters(&self) -> Result<(), ModelError> {
        // An AOTInductor package's weights are compiled in: its outputs are checked instead.
        let modules: Vec<(&tch::CModule, &std::path::Path)> = match &self.network {
            Network::Single { module, path, .. } => module.script().map(|m| (m, path.as_path())).into_iter().collect(),
            Network::Ensemble { members } => members
                .iter()
                .filter_map(|m| m.module.script().map(|s| (s, m.path.as_path())))
                .collect(),
        };
        for (module, path) in modules {
            let params = module
                .named_parameters()
                .map_err(|e| ModelError::model(path, e.to_string()))?;
            if let Some((_, t)) = params
                .iter()
                .find(|(_, t)| matches!(t.kind(), Kind::Half | Kind::BFloat16))
            {
                let name = if t.kind() == Kind::Half { "float16" } else { "bfloat16" };
                return Err(half_error(path, name));
            }
        }
        Ok(())
    }
}

/// The one line for a half-precision model (also used when its outputs are float16).
pub(super) fn half_message(kind: &str) -> String {
    format!(
        "the model is {kind} (half precision); export it in float32: model.float() before torch.jit.trace (scripts/export_model.py does)"
    )
}

fn half_error(path: &std::path::Path, kind: &str) -> ModelError {
    ModelError::model(path, half_message(kind))
}

fn message_of(error: &ModelError) -> String {
    match error {
        ModelError::Model { message, .. } | ModelError::Card { message, .. } => message.clone(),
        ModelError::Device(message) => message.clone(),
    }
}
