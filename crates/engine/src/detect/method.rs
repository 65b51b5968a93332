//! `Method`, a handle on a registered detector (by name in files and on the command line), and
//! `ScoreSettings`, a method with its checked parameter values.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use super::params::{Dims, ParamSpec, Params, fmt_value, resolve};
use super::{Detector, Missing, registry};
use crate::model::Capabilities;

/// A registered scoring method.
#[derive(Clone, Copy)]
pub struct Method(&'static dyn Detector);

impl Method {
    /// The method named `name` (case-insensitive), if registered.
    pub fn find(name: &str) -> Option<Method> {
        registry::DETECTORS
            .iter()
            .find(|d| d.name().eq_ignore_ascii_case(name))
            .map(|d| Method(*d))
    }

    /// Every registered method, in menu order.
    pub fn all() -> impl Iterator<Item = Method> {
        registry::DETECTORS.iter().map(|d| Method(*d))
    }

    /// The method named `name`, for names the code spells out (user input goes through `FromStr`,
    /// which says what is wrong). An unregistered name is a bug: debug builds stop on it, release
    /// builds take the first method rather than panic.
    pub fn named(name: &str) -> Method {
        let found = Self::find(name);
        debug_assert!(found.is_some(), "method `{name}` is not registered");
        found.unwrap_or_else(|| Method(registry::DETECTORS[0]))
    }

    pub fn detector(self) -> &'static dyn Detector {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    pub fn title(self) -> &'static str {
        self.0.title()
    }

    /// The parameters for a model of these dimensions.
    pub fn params(self, dims: &Dims) -> Vec<ParamSpec> {
        self.0.params(dims)
    }

    /// Why this method cannot run on a model with these capabilities (and a fit or not). A method
    /// that steps its input at its defaults (ODIN) cannot run on an inference-only model; one that
    /// steps only at some values (energy with ε > 0) is refused at those ([`ScoreSettings::needs_gradient`]).
    pub fn missing(self, caps: &Capabilities, has_fit: bool) -> Option<Missing> {
        self.0.needs().missing(caps, has_fit).or_else(|| {
            (caps.inference_only && ScoreSettings::default_for(self, &Dims::default()).needs_gradient())
                .then_some(Missing::InputGradients)
        })
    }

    /// The methods a model supports, in menu order.
    pub fn supported_by(caps: &Capabilities, has_fit: bool) -> Vec<Method> {
        Self::all().filter(|m| m.missing(caps, has_fit).is_none()).collect()
    }
}

impl PartialEq for Method {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Method {}

impl Hash for Method {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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
        Method::find(s).ok_or_else(|| {
            let names: Vec<&str> = Method::all().map(Method::name).collect();
            format!("unknown method `{s}` (expected one of: {})", names.join(", "))
        })
    }
}

impl serde::Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A method with its parameter values (checked by [`ScoreSettings::new`]: every parameter of the
/// method, and no other).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScoreSettings {
    pub method: Method,
    pub params: Params,
}

impl ScoreSettings {
    /// The method called `name` with `name=value` parameters (the rest at their defaults), checked
    /// against `dims`.
    pub fn named(name: &str, params: &[(&str, f64)], dims: &Dims) -> Result<Self, String> {
        let method = Method::find(name).ok_or_else(|| format!("unknown method `{name}`"))?;
        let mut given = Params::new();
        for (param, value) in params {
            given.set(param, *value);
        }
        Self::new(method, &given, dims)
    }

    /// Checks `given` against the method's parameters for a model of these dimensions and fills
    /// in the defaults.
    pub fn new(method: Method, given: &Params, dims: &Dims) -> Result<Self, String> {
        let params = resolve(method.name(), &method.params(dims), given)?;
        Ok(ScoreSettings { method, params })
    }

    /// The method at its defaults.
    pub fn default_for(method: Method, dims: &Dims) -> Self {
        let params = method
            .params(dims)
            .iter()
            .map(|s| (s.name.to_string(), s.default))
            .collect();
        ScoreSettings { method, params }
    }

    /// These settings with one parameter changed (not checked).
    pub fn with(&self, name: &str, value: f64) -> Self {
        let mut s = self.clone();
        s.params.set(name, value);
        s
    }

    /// The value of parameter `name` (an error for a name this method does not have).
    pub fn get(&self, name: &str) -> Result<f64, super::params::UnknownParam> {
        self.params.get(name)
    }

    /// The size of the input step (0 when the method has none at these parameters).
    pub fn epsilon(&self) -> f64 {
        self.method.detector().epsilon(&self.params)
    }

    /// Whether scoring at these settings takes input gradients (and so the model).
    pub fn needs_gradient(&self) -> bool {
        self.epsilon() > 0.0
    }

    /// A short description for titles: `ODIN (T = 1000, ε = 0.0014)`, `KNN (k = 50)`.
    pub fn describe(&self) -> String {
        let params = self.describe_params();
        if params.is_empty() {
            self.method.title().to_string()
        } else {
            format!("{} ({params})", self.method.title())
        }
    }

    /// The parameters alone, by symbol: `T = 1000, ε = 0.0014` (empty for none).
    pub fn describe_params(&self) -> String {
        // In the order the method declares its parameters (the names do not depend on the dims).
        let parts: Vec<String> = self
            .method
            .params(&Dims::default())
            .iter()
            .filter(|s| self.params.contains(s.name))
            .filter_map(|s| Some(format!("{} = {}", s.symbol, fmt_value(self.params.value(s.name)?))))
            .collect();
        parts.join(", ")
    }
}
