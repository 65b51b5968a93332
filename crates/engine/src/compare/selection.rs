//! Which methods a comparison runs: `all` or a list, split into those the model (and the fit, if
//! any) supports and those it cannot, each with its reason.

use crate::detect::{Method, Missing, ScoreSettings};
use crate::model::Capabilities;
use crate::stats::Fit;

/// The baseline every leaderboard marks (and every comparison includes when the model supports it).
pub const BASELINE: &str = "msp";

/// A method the comparison cannot run, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsupported {
    pub method: Method,
    pub missing: Missing,
}

/// The requested methods, split.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// In menu (registry) order, the baseline first when it was not requested.
    pub supported: Vec<Method>,
    pub unsupported: Vec<Unsupported>,
}

/// Parses `all` or `a,b,c` (case-insensitive, repeats dropped) into methods, in the order given.
pub fn parse_methods(text: &str) -> Result<Vec<Method>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("all") {
        return Ok(Method::all().collect());
    }
    let mut methods: Vec<Method> = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let method: Method = name.parse()?;
        if !methods.contains(&method) {
            methods.push(method);
        }
    }
    if methods.is_empty() {
        return Err("--methods: name at least one method, or `all`".into());
    }
    Ok(methods)
}

/// Splits `requested` by what the model offers; `has_fit` says whether a fit is (or can be) had.
/// The MSP baseline joins the supported methods when the model supports it.
pub fn select(requested: &[Method], caps: &Capabilities, has_fit: bool) -> Selection {
    let mut supported = Vec::new();
    let mut unsupported = Vec::new();
    let baseline = Method::named(BASELINE);
    if !requested.contains(&baseline) && baseline.missing(caps, has_fit).is_none() {
        supported.push(baseline);
    }
    for &method in requested {
        match method.missing(caps, has_fit) {
            None => supported.push(method),
            Some(missing) => unsupported.push(Unsupported { method, missing }),
        }
    }
    Selection { supported, unsupported }
}

/// Moves the methods whose statistics `fit` does not hold (its `fit_tensors`: a fit made without
/// class folders has no temperature, an older one no SHE patterns…) from `supported` to
/// `unsupported`, so that one such method does not stop the whole comparison.
pub fn drop_unserved(selection: &mut Selection, fit: Option<&Fit>) {
    let Some(fit) = fit else {
        return;
    };
    let (kept, dropped): (Vec<Method>, Vec<Method>) = selection.supported.iter().partition(|&&m| serves(fit, m));
    selection.supported = kept;
    selection
        .unsupported
        .extend(dropped.into_iter().map(|method| Unsupported {
            method,
            missing: lacking(fit, method),
        }));
}

/// What `fit` lacks for `method`: per-class covariances (which fits keep only when asked), or
/// statistics of labelled images or of a newer oodscope.
pub fn lacking(fit: &Fit, method: Method) -> Missing {
    let covariances = crate::stats::gaussians::CLASS_COVARIANCES;
    if method.detector().fit_tensors().contains(&covariances) && !fit.stored.contains(covariances) {
        Missing::ClassCovariances
    } else {
        Missing::FitContent
    }
}

/// Whether `fit` holds every statistic `method` reads.
pub fn serves(fit: &Fit, method: Method) -> bool {
    method
        .detector()
        .fit_tensors()
        .iter()
        .all(|name| fit.stored.contains(*name))
}

/// [`drop_unserved`] for settings chosen already (the window's comparison, whose fit is known only
/// where it runs): the settings `fit` can serve, and the others as unsupported.
pub fn split_served(settings: Vec<ScoreSettings>, fit: Option<&Fit>) -> (Vec<ScoreSettings>, Vec<Unsupported>) {
    let Some(fit) = fit else {
        return (settings, Vec::new());
    };
    let (kept, dropped): (Vec<ScoreSettings>, Vec<ScoreSettings>) =
        settings.into_iter().partition(|s| serves(fit, s.method));
    let unsupported = dropped
        .into_iter()
        .map(|s| Unsupported {
            method: s.method,
            missing: lacking(fit, s.method),
        })
        .collect();
    (kept, unsupported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_in_order_without_repeats() {
        let names = |text: &str| -> Vec<&str> { parse_methods(text).unwrap().iter().map(|m| m.name()).collect() };
        assert_eq!(names("energy, MSP,energy"), ["energy", "msp"]);
        assert_eq!(names("all").len(), Method::all().count());
        assert!(parse_methods("msp,nope").unwrap_err().contains("unknown method `nope`"));
        assert!(parse_methods(" , ").is_err());
    }

    #[test]
    fn unsupported_methods_keep_their_reason() {
        let caps = Capabilities {
            ensemble: false,
            confidence: false,
            features: Some(8),
            head: true,
            inference_only: false,
            ..Capabilities::default()
        };
        let requested = parse_methods("energy,knn,confidence").unwrap();
        let selection = select(&requested, &caps, false);
        let supported: Vec<&str> = selection.supported.iter().map(|m| m.name()).collect();
        assert_eq!(supported, ["msp", "energy"]);
        let reasons: Vec<(&str, Missing)> = selection
            .unsupported
            .iter()
            .map(|u| (u.method.name(), u.missing))
            .collect();
        assert_eq!(reasons, [("knn", Missing::Fit), ("confidence", Missing::Confidence)]);
    }
}
