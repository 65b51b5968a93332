//! Scores of outputs held in memory with any method that needs no input gradient, its parameters
//! checked as on the command line, and every missing need named in one line.

use tch::Device;

use super::{check_outputs, stand_in_card};
use crate::detect::cache::{CachedOutputs, rescore};
use crate::detect::{Context, Dims, Method, ScoreSettings};
use crate::model::Head;
use crate::stats::Fit;

/// What scoring arrays takes.
pub struct ArrayScoring<'a> {
    pub outputs: &'a CachedOutputs,
    /// The class names (one per logit column).
    pub classes: &'a [String],
    pub fit: Option<&'a Fit>,
    pub head: Option<&'a Head>,
}

/// Every row's score under `method` with `params` (the rest at their defaults); higher means more
/// in-distribution, as everywhere in oodscope.
pub fn score_arrays(scoring: &ArrayScoring, method: &str, params: &[(String, f64)]) -> Result<Vec<f32>, String> {
    let outputs = scoring.outputs;
    check_outputs(outputs)?;
    let found = Method::find(method).ok_or_else(|| {
        let names: Vec<&str> = Method::all().map(Method::name).collect();
        format!("unknown method `{method}` (the methods: {})", names.join(", "))
    })?;
    let needs = found.detector().needs();
    if needs.ensemble {
        return Err(format!(
            "method `{method}` needs a leave-out ensemble of models: score it with the oodscope command line on the ensemble's card"
        ));
    }
    if needs.confidence {
        return Err(format!(
            "method `{method}` needs a model's confidence branch, which outputs do not carry: score it with the oodscope command line"
        ));
    }
    if needs.features && outputs.feature_width == 0 {
        return Err(format!(
            "method `{method}` needs penultimate features: give features (capture records the head's input)"
        ));
    }
    if (needs.blocks || needs.pooled_block) && outputs.blocks.is_empty() {
        return Err(format!(
            "method `{method}` needs the model's inner blocks, which outputs do not carry: score it with the oodscope command line on a model exported with --blocks"
        ));
    }
    if needs.head && scoring.head.is_none() {
        return Err(format!(
            "method `{method}` needs the head: give head=(W, b), or a fit made with the head"
        ));
    }
    if let Some(fit) = scoring.fit {
        check_fit_matches(fit, outputs)?;
    } else if needs.fit {
        return Err(format!(
            "method `{method}` needs a fit: make one from ID training outputs with Fit.from_outputs (or `oodscope fit`) and pass fit="
        ));
    }
    let given: Vec<(&str, f64)> = params.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let settings = ScoreSettings::named(method, &given, &array_dims(scoring))?;
    if settings.needs_gradient() {
        return Err(format!(
            "{} takes a step against the input gradient, which outputs cannot give: capture with perturb=(\"{method}\", …) to step in PyTorch, or set epsilon=0",
            settings.describe()
        ));
    }
    score_checked(scoring, &settings)
}

/// The dimensions of the outputs (and of the fit's bank) that parameters are checked against.
pub fn array_dims(scoring: &ArrayScoring) -> Dims {
    let outputs = scoring.outputs;
    Dims {
        classes: outputs.logit_width,
        features: (outputs.feature_width > 0).then_some(outputs.feature_width),
        bank: scoring.fit.and_then(|f| f.bank.as_ref()).map(|b| b.len),
    }
}

/// What the outputs, head and fit given lack for `method`, if anything (the input gradient aside:
/// see [`ScoreSettings::needs_gradient`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayNeed {
    /// A leave-out ensemble of models.
    Ensemble,
    /// A model's confidence branch.
    Confidence,
    /// Penultimate features.
    Features,
    /// The head `(W, b)`.
    Head,
    /// A fit.
    Fit,
    /// Inner blocks' reductions (a model exported with `blocks`).
    Blocks,
}

/// The first need of `method` that `scoring` does not meet.
pub fn array_need(scoring: &ArrayScoring, method: Method) -> Option<ArrayNeed> {
    need_of(
        method,
        scoring.outputs.feature_width,
        !scoring.outputs.blocks.is_empty(),
        scoring.head.is_some(),
        scoring.fit.is_some(),
    )
}

/// The first need of `method` that outputs with `feature_width` features (0: none), with or
/// without inner blocks' reductions, a head and a fit, do not meet.
pub fn need_of(method: Method, feature_width: usize, blocks: bool, head: bool, fit: bool) -> Option<ArrayNeed> {
    let needs = method.detector().needs();
    if needs.ensemble {
        Some(ArrayNeed::Ensemble)
    } else if needs.confidence {
        Some(ArrayNeed::Confidence)
    } else if needs.features && feature_width == 0 {
        Some(ArrayNeed::Features)
    } else if (needs.blocks || needs.pooled_block) && !blocks {
        Some(ArrayNeed::Blocks)
    } else if needs.head && !head {
        Some(ArrayNeed::Head)
    } else if needs.fit && !fit {
        Some(ArrayNeed::Fit)
    } else {
        None
    }
}

/// Every row's score under checked `settings` (no input step), the fit matched to the outputs.
pub fn score_settings(scoring: &ArrayScoring, settings: &ScoreSettings) -> Result<Vec<f32>, String> {
    let outputs = scoring.outputs;
    check_outputs(outputs)?;
    if let Some(fit) = scoring.fit {
        check_fit_matches(fit, outputs)?;
    }
    if settings.needs_gradient() {
        return Err(format!(
            "{} takes a step against the input gradient, which saved outputs cannot give",
            settings.describe()
        ));
    }
    score_checked(scoring, settings)
}

/// [`score_settings`] once the outputs, the fit and the input step have been checked.
fn score_checked(scoring: &ArrayScoring, settings: &ScoreSettings) -> Result<Vec<f32>, String> {
    let outputs = scoring.outputs;
    let card = stand_in_card("arrays", scoring.classes, outputs.feature_width)?;
    let ctx = Context {
        card: &card,
        head: scoring.head,
        fit: scoring.fit,
        device: Device::Cpu,
    };
    settings.method.detector().check(&ctx, &settings.params)?;
    rescore(&ctx, outputs, settings).map_err(|e| e.0)
}

/// The fit was made for outputs like these: as many classes and the same feature width.
pub fn check_fit_matches(fit: &Fit, outputs: &CachedOutputs) -> Result<(), String> {
    let path = fit.info.path.display();
    if fit.info.classes.len() != outputs.logit_width {
        return Err(format!(
            "the fit {path} has {} classes and the outputs {} logit columns",
            fit.info.classes.len(),
            outputs.logit_width
        ));
    }
    let width = (outputs.feature_width > 0).then_some(outputs.feature_width);
    if fit.info.feature_width.is_some() && width.is_some() && fit.info.feature_width != width {
        return Err(format!(
            "the fit {path} was made from features of width {}, the outputs have width {}",
            fit.info.feature_width.unwrap_or(0),
            outputs.feature_width
        ));
    }
    let blocks = &outputs.blocks.widths;
    if !fit.info.block_widths.is_empty() && !blocks.is_empty() && &fit.info.block_widths != blocks {
        return Err(format!(
            "the fit {path} was made from blocks of widths {:?}, the outputs' are {blocks:?}",
            fit.info.block_widths
        ));
    }
    Ok(())
}
