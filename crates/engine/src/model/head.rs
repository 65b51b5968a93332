//! The classifier head `ℓ = W·z + b`: read from a linear submodule of the TorchScript file or from a
//! `.safetensors` file, and checked against what the model computes.

use std::path::Path;

use tch::{CModule, Device, Kind, Tensor};

use super::card::HeadSource;

/// The final linear layer, on the model's device, in float32.
pub struct Head {
    /// `[C, D]`.
    pub weight: Tensor,
    /// `[C]`.
    pub bias: Tensor,
    /// Where it came from, for messages and reports.
    pub source: HeadSource,
}

impl Head {
    /// Reads the head the card names. `module` is the model's TorchScript module (none for an
    /// AOTInductor package, whose head must be a file); errors are one-line messages.
    pub fn load(source: &HeadSource, module: Option<&CModule>, device: Device) -> Result<Head, String> {
        let (weight, bias) = match (source, module) {
            (HeadSource::Submodule(name), Some(module)) => from_submodule(name, module)?,
            (HeadSource::Submodule(name), None) => {
                return Err(format!(
                    "head = \"{name}\" names a submodule, but an AOTInductor package has none by name: give the head as a .safetensors file (scripts/export_model.py --format aoti writes one)"
                ));
            }
            (HeadSource::File(path), _) => from_file(path)?,
        };
        let to_device = |t: Tensor| {
            t.f_to_kind(Kind::Float)
                .and_then(|t| t.f_to_device(device))
                .map_err(|e| e.to_string())
        };
        Ok(Head {
            weight: to_device(weight)?,
            bias: to_device(bias)?,
            source: source.clone(),
        })
    }

    /// `[C, D]`.
    pub fn shape(&self) -> (i64, i64) {
        let s = self.weight.size();
        (s[0], s[1])
    }

    /// Checks the head's shape against C classes and D features, and that it maps `features` to
    /// `logits` within a relative 1e-4 (of the largest logit); the message says what disagrees.
    pub fn check(&self, logits: &Tensor, features: &Tensor) -> Result<(), String> {
        let (c, d) = (logits.size()[1], features.size()[1]);
        let what = self.source.describe();
        if self.weight.size() != [c, d] || self.bias.size() != [c] {
            return Err(format!(
                "head {what} has weight {:?} and bias {:?}, but the model gives {c} logits from {d} features (expected weight [{c}, {d}], bias [{c}])",
                self.weight.size(),
                self.bias.size()
            ));
        }
        let deviation = tch::no_grad(|| -> Result<(f64, f64), tch::TchError> {
            let recomputed = features.f_linear(&self.weight, Some(&self.bias))?;
            let diff = (logits - recomputed).f_abs()?.f_max()?.f_double_value(&[])?;
            let scale = logits.f_abs()?.f_max()?.f_double_value(&[])?;
            Ok((diff, scale))
        })
        .map_err(|e| e.to_string())?;
        let (diff, scale) = deviation;
        let relative = diff / scale.max(1e-6);
        // NaN (a model returning NaN logits) fails too.
        if relative.is_nan() || relative > 1e-4 {
            return Err(format!(
                "head {what} does not reproduce the logits from the features: max |ℓ − (W·z + b)| = {diff:.3e} ({relative:.1e} of the largest logit; at most 1e-4 allowed). Check that `head` is the final linear layer and the features are its input"
            ));
        }
        Ok(())
    }
}

fn from_submodule(name: &str, module: &CModule) -> Result<(Tensor, Tensor), String> {
    let params = module.named_parameters().map_err(|e| e.to_string())?;
    let find = |suffix: &str| {
        let key = format!("{name}.{suffix}");
        params.iter().find(|(k, _)| *k == key).map(|(_, t)| t.detach())
    };
    let Some(weight) = find("weight") else {
        let mut names: Vec<&str> = params.iter().filter_map(|(k, _)| k.strip_suffix(".weight")).collect();
        names.dedup();
        return Err(if names.is_empty() {
            format!(
                "head `{name}`: the TorchScript file has no parameters (a module traced with its weights frozen into constants keeps none): give `head` as a .safetensors file with weight and bias"
            )
        } else {
            let shown: Vec<&str> = names.iter().rev().take(8).copied().collect();
            format!(
                "head `{name}`: no submodule of that name with a weight (submodules with weights, last first: {})",
                shown.join(", ")
            )
        });
    };
    if weight.dim() != 2 {
        return Err(format!(
            "head `{name}` is not a linear layer: its weight has shape {:?}",
            weight.size()
        ));
    }
    let bias = match find("bias") {
        Some(b) => b,
        None => Tensor::zeros([weight.size()[0]], (weight.kind(), weight.device())),
    };
    Ok((weight, bias))
}

fn from_file(path: &Path) -> Result<(Tensor, Tensor), String> {
    if !path.is_file() {
        return Err(format!("head file {}: no such file", path.display()));
    }
    let tensors = Tensor::read_safetensors(path)
        .map_err(|e| format!("head file {}: not a safetensors file ({e})", path.display()))?;
    let find = |name: &str| {
        tensors
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, t)| t.shallow_clone())
            .ok_or_else(|| {
                let names: Vec<&str> = tensors.iter().map(|(k, _)| k.as_str()).collect();
                format!(
                    "head file {}: no tensor `{name}` (it holds: {}); expected `weight` [C, D] and `bias` [C]",
                    path.display(),
                    names.join(", ")
                )
            })
    };
    let weight = find("weight")?;
    let bias = find("bias")?;
    if weight.dim() != 2 || bias.dim() != 1 {
        return Err(format!(
            "head file {}: weight {:?} and bias {:?} must be [C, D] and [C]",
            path.display(),
            weight.size(),
            bias.size()
        ));
    }
    Ok((weight, bias))
}
