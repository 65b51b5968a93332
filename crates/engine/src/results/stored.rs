//! Re-scoring a results file's saved logits and features without the model: a stand-in card with
//! the logits' width stands for the model (methods that need its head, a fit or gradients cannot).

use tch::Device;

use crate::arrays::{numbered_classes, stand_in_card};
use crate::detect::Context;
use crate::detect::cache::{CachedOutputs, rescore};
use crate::score::ScoreSettings;

/// Why `settings` cannot be scored from saved outputs without the model, if it cannot.
pub fn stored_missing(settings: &ScoreSettings, cache: &CachedOutputs) -> Option<String> {
    let needs = settings.method.detector().needs();
    let title = settings.method.title();
    if settings.needs_gradient() {
        Some(format!(
            "{title} re-scores from the file only at ε = 0: a step (ε > 0) needs the model's gradients — open the model"
        ))
    } else if needs.fit {
        Some(format!("{title} needs the model and a fit — open them to re-score"))
    } else if needs.head || needs.confidence || needs.ensemble || !cache.member_widths.is_empty() {
        Some(format!("{title} needs the model — open it to re-score"))
    } else if cache.logit_width == 0 {
        Some("needs the model — open it to re-score (or write the file with --save-logits)".into())
    } else if needs.features && cache.feature_width == 0 {
        Some(format!(
            "{title} needs the features — open the model, or write the file with --save-features"
        ))
    } else {
        None
    }
}

/// Every saved row's score under `settings`, on the CPU, without the model.
pub fn rescore_stored(cache: &CachedOutputs, settings: &ScoreSettings) -> Result<Vec<f32>, String> {
    if let Some(why) = stored_missing(settings, cache) {
        return Err(why);
    }
    let classes = numbered_classes(cache.logit_width);
    let card = stand_in_card("results", &classes, cache.feature_width)?;
    let ctx = Context {
        card: &card,
        head: None,
        fit: None,
        device: Device::Cpu,
    };
    rescore(&ctx, cache, settings).map_err(|e| e.0)
}
