//! Which method, at which temperature T and perturbation ε.

use std::fmt;
use std::str::FromStr;

use crate::model::ModelCard;

/// A scoring method (SCORING.md "Methods").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Maximum softmax probability (Hendrycks & Gimpel).
    Msp,
    /// Temperature scaling and input perturbation (Liang et al.).
    Odin,
    /// Energy score T·logsumexp(ℓ/T) (Liu et al.).
    Energy,
    /// Learned confidence branch (DeVries & Taylor).
    Confidence,
    /// Ensemble of leave-out classifiers (Vyas et al.).
    Ensemble,
}

impl Method {
    pub const ALL: [Method; 5] = [
        Method::Msp,
        Method::Odin,
        Method::Energy,
        Method::Confidence,
        Method::Ensemble,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Msp => "msp",
            Method::Odin => "odin",
            Method::Energy => "energy",
            Method::Confidence => "confidence",
            Method::Ensemble => "ensemble",
        }
    }

    /// The human name used in tables and titles.
    pub fn title(self) -> &'static str {
        match self {
            Method::Msp => "Baseline (MSP)",
            Method::Odin => "ODIN",
            Method::Energy => "Energy",
            Method::Confidence => "Confidence branch",
            Method::Ensemble => "Leave-out ensemble",
        }
    }

    /// Whether the method's score depends on T.
    pub fn uses_temperature(self) -> bool {
        matches!(self, Method::Odin | Method::Energy | Method::Ensemble)
    }

    /// Whether the method's score depends on ε.
    pub fn uses_epsilon(self) -> bool {
        !matches!(self, Method::Msp)
    }

    /// Why this method cannot run on this model, if it cannot.
    pub fn unsupported_reason(self, card: &ModelCard) -> Option<String> {
        match self {
            Method::Ensemble if !card.is_ensemble() => Some(format!(
                "method `ensemble` needs an ensemble card (with `members`); {} is a single model",
                card.name
            )),
            Method::Confidence if !card.has_confidence_branch() => Some(format!(
                "method `confidence` needs a model with a confidence branch (outputs = \"logits+confidence\"); {} outputs logits only",
                card.name
            )),
            Method::Msp | Method::Odin | Method::Energy | Method::Confidence if card.is_ensemble() => Some(format!(
                "method `{}` needs a single model; {} is a leave-out ensemble (use --method ensemble)",
                self.name(),
                card.name
            )),
            _ => None,
        }
    }

    /// The methods a model supports, in menu order.
    pub fn supported_by(card: &ModelCard) -> Vec<Method> {
        Method::ALL
            .into_iter()
            .filter(|m| m.unsupported_reason(card).is_none())
            .collect()
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown method `{s}` (expected msp, odin, energy, confidence or ensemble)"))
    }
}

/// A method with its parameters. ε is in pixel units (SCORING.md).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScoreSettings {
    pub method: Method,
    pub temperature: f64,
    pub epsilon: f64,
}

impl ScoreSettings {
    pub fn new(method: Method, temperature: f64, epsilon: f64) -> Result<Self, String> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(format!("temperature must be positive, got {temperature}"));
        }
        if !(epsilon.is_finite() && epsilon >= 0.0) {
            return Err(format!("epsilon must be zero or positive, got {epsilon}"));
        }
        Ok(ScoreSettings {
            method,
            temperature,
            epsilon,
        })
    }

    /// A short description for titles: `ODIN (T = 1000, ε = 0.0014)`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.method.uses_temperature() {
            parts.push(format!("T = {}", self.temperature));
        }
        if self.method.uses_epsilon() {
            parts.push(format!("ε = {}", self.epsilon));
        }
        if parts.is_empty() {
            self.method.title().to_string()
        } else {
            format!("{} ({})", self.method.title(), parts.join(", "))
        }
    }
}
