//! Re-scoring a results file's saved logits and features without the model: a stand-in card with
//! the logits' width stands for the model, and a fit loaded beside the file (with the head it
//! keeps) serves the methods that need them; only gradients, ensembles and confidence branches
//! need the model itself.

use crate::arrays::{ArrayNeed, ArrayScoring, array_need, need_of, numbered_classes, score_settings};
use crate::detect::cache::CachedOutputs;
use crate::model::Head;
use crate::score::ScoreSettings;
use crate::stats::Fit;

/// What is open beside a results file's saved outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Beside {
    /// A fit (loaded without the model).
    pub fit: bool,
    /// The head `(W, b)`: kept in the fit, or given.
    pub head: bool,
}

/// Why `settings` cannot be scored from saved outputs without the model, with what is `beside`
/// them, if it cannot.
pub fn stored_missing(settings: &ScoreSettings, cache: &CachedOutputs, beside: Beside) -> Option<String> {
    let title = settings.method.title();
    if settings.needs_gradient() {
        return Some(format!(
            "{title} re-scores from the file only at ε = 0: a step (ε > 0) needs the model's gradients — open the model"
        ));
    }
    if cache.logit_width == 0 {
        return Some("needs the model — open it to re-score (or write the file with --save-logits)".into());
    }
    if !cache.member_widths.is_empty() {
        return Some(format!("{title} needs the model — open it to re-score"));
    }
    let need = need_of(
        settings.method,
        cache.feature_width,
        !cache.blocks.is_empty(),
        beside.head,
        beside.fit,
    );
    need.map(|need| match need {
        ArrayNeed::Ensemble | ArrayNeed::Confidence => format!("{title} needs the model — open it to re-score"),
        ArrayNeed::Features => {
            format!("{title} needs the features — open the model, or write the file with --save-features")
        }
        ArrayNeed::Head => format!(
            "{title} needs the head (W, b) — open a fit that keeps it (made from arrays with the head), or the model"
        ),
        ArrayNeed::Fit => {
            format!("{title} needs a fit — open the fit file beside the results (Fit), or the model")
        }
        ArrayNeed::Blocks => format!("{title} needs the model's inner blocks — open the model to re-score"),
    })
}

/// Every saved row's score under `settings`, on the CPU, without the model; `fit` (and the head it
/// keeps, or `head`) when open.
pub fn rescore_stored(
    cache: &CachedOutputs,
    settings: &ScoreSettings,
    fit: Option<&Fit>,
    head: Option<&Head>,
) -> Result<Vec<f32>, String> {
    let beside = Beside {
        fit: fit.is_some(),
        head: head.is_some(),
    };
    if let Some(why) = stored_missing(settings, cache, beside) {
        return Err(why);
    }
    let classes = numbered_classes(cache.logit_width);
    let scoring = ArrayScoring {
        outputs: cache,
        classes: &classes,
        fit,
        head,
    };
    debug_assert!(array_need(&scoring, settings.method).is_none());
    score_settings(&scoring, settings)
}
