//! Fitting and scoring outputs held in memory — logits, penultimate features, labels and a head
//! `(W, b)` computed anywhere (the Python package's `capture`, a user's own arrays) — with no model
//! file: the same detectors, parameters and fit files as a run over images.

mod fit;
mod score;

pub use fit::{FitRequest, fit_arrays};
pub use score::{
    ArrayNeed, ArrayScoring, array_dims, array_need, check_fit_matches, need_of, score_arrays, score_settings,
};

use tch::{Kind, Tensor};

use crate::detect::cache::CachedOutputs;
use crate::model::{Head, HeadSource, ModelCard};

/// Checks that `outputs` hold whole rows, the same count in logits and features, and only finite
/// values; one line naming the first bad row otherwise.
pub fn check_outputs(outputs: &CachedOutputs) -> Result<(), String> {
    if outputs.logit_width == 0 || outputs.rows == 0 {
        return Err("the outputs are empty: give logits of shape [N, C] with N ≥ 1 and C ≥ 1".into());
    }
    if outputs.logits.len() != outputs.rows * outputs.logit_width {
        return Err(format!(
            "{} logit values do not make {} rows of {}",
            outputs.logits.len(),
            outputs.rows,
            outputs.logit_width
        ));
    }
    if outputs.feature_width > 0 && outputs.features.len() != outputs.rows * outputs.feature_width {
        return Err(format!(
            "the features have {} rows and the logits {}: give one feature row per logit row",
            outputs.features.len() / outputs.feature_width,
            outputs.rows
        ));
    }
    let first_bad = |values: &[f32], width: usize| values.iter().position(|v| !v.is_finite()).map(|i| i / width);
    if let Some(row) = first_bad(&outputs.logits, outputs.logit_width) {
        return Err(format!(
            "the logits of row {row} are NaN or infinite: every value must be finite"
        ));
    }
    if outputs.feature_width > 0
        && let Some(row) = first_bad(&outputs.features, outputs.feature_width)
    {
        return Err(format!(
            "the features of row {row} are NaN or infinite: every value must be finite"
        ));
    }
    Ok(())
}

/// A head `(W [C, D], b [C])` from plain values, checked against the outputs' widths and, where
/// `outputs` has features, against the logits (`ℓ = W·z + b` within 1e-4 of the largest logit).
pub fn head_from_values(
    weight: &[f32],
    bias: &[f32],
    outputs: &CachedOutputs,
    source: HeadSource,
) -> Result<Head, String> {
    let (c, d) = (outputs.logit_width, outputs.feature_width);
    if d == 0 {
        return Err("a head needs features: give the features the head takes (its input)".into());
    }
    if weight.len() != c * d || bias.len() != c {
        return Err(format!(
            "the head has {} weights and {} biases; the outputs have {c} logits from {d} features (expected W [{c}, {d}] and b [{c}])",
            weight.len(),
            bias.len()
        ));
    }
    if weight.iter().chain(bias).any(|v| !v.is_finite()) {
        return Err("the head's W or b holds NaN or infinite values".into());
    }
    let torch = |e: tch::TchError| crate::model::first_line(&e.to_string());
    let head = Head {
        weight: Tensor::from_slice(weight).f_view([c as i64, d as i64]).map_err(torch)?,
        bias: Tensor::from_slice(bias),
        source,
    };
    check_head(&head, outputs)?;
    Ok(head)
}

/// Checks a head against outputs with features: its shape, and `ℓ = W·z + b` within 1e-4 of the
/// largest logit on the first rows.
pub fn check_head(head: &Head, outputs: &CachedOutputs) -> Result<(), String> {
    let (c, d) = (outputs.logit_width, outputs.feature_width);
    if d == 0 {
        return Err("a head needs features: give the features the head takes (its input)".into());
    }
    let torch = |e: tch::TchError| crate::model::first_line(&e.to_string());
    let rows = outputs.rows.min(4096);
    let logits = Tensor::from_slice(&outputs.logits[..rows * c])
        .f_view([rows as i64, c as i64])
        .map_err(torch)?;
    let features = Tensor::from_slice(&outputs.features[..rows * d])
        .f_view([rows as i64, d as i64])
        .map_err(torch)?;
    head.check(&logits, &features)
}

/// A head kept in a fit (float64) as a float32 [`Head`].
pub fn head_of_fit(fit: &crate::stats::Fit) -> Result<Option<Head>, String> {
    let Some((w, b)) = &fit.head else {
        return Ok(None);
    };
    let torch = |e: tch::TchError| crate::model::first_line(&e.to_string());
    Ok(Some(Head {
        weight: w.f_to_kind(Kind::Float).map_err(torch)?,
        bias: b.f_to_kind(Kind::Float).map_err(torch)?,
        source: HeadSource::File(fit.info.path.clone()),
    }))
}

/// A card called `name` standing for the model that made the outputs: its class names and feature
/// width (0: none).
pub fn stand_in_card(name: &str, classes: &[String], feature_width: usize) -> Result<ModelCard, String> {
    let names: Vec<String> = classes
        .iter()
        .map(|c| toml::Value::String(c.clone()).to_string())
        .collect();
    let (outputs, features) = if feature_width > 0 {
        ("logits+features", format!("features = {feature_width}\n"))
    } else {
        ("logits", String::new())
    };
    let text = format!(
        "name = {}\ninput = [1, 1, 1]\nmean = [0.0]\nstd = [1.0]\nclasses = [{}]\noutputs = \"{outputs}\"\n{features}",
        toml::Value::String(name.to_string()),
        names.join(", ")
    );
    ModelCard::parse(&text, std::path::Path::new(name)).map_err(|e| e.to_string())
}

/// Class names `"0"`, `"1"`, … for outputs with `classes` unnamed classes.
pub fn numbered_classes(classes: usize) -> Vec<String> {
    (0..classes).map(|c| c.to_string()).collect()
}
