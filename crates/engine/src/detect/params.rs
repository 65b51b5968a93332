//! Typed method parameters: what each detector declares (name, default, range, tuning grid), and the
//! values a run uses (checked, defaults filled in).

use std::collections::BTreeMap;
use std::fmt;

/// What a model offers that parameter ranges and defaults depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dims {
    /// Number of classes C.
    pub classes: usize,
    /// Penultimate feature width D, when the model exposes features.
    pub features: Option<usize>,
    /// Images in the fit's KNN bank, when there is a fit.
    pub bank: Option<usize>,
}

/// A parameter asked for by a name the parameters do not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no parameter `{name}` (the parameters here: {})", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
pub struct UnknownParam {
    pub name: String,
    pub known: Vec<String>,
}

impl From<UnknownParam> for String {
    fn from(e: UnknownParam) -> Self {
        e.to_string()
    }
}

/// One parameter of a method, as its detector declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// The name used on the command line (`--param k=10`) and in reports.
    pub name: &'static str,
    /// The short symbol used in titles: `T`, `ε`, `k`.
    pub symbol: &'static str,
    /// The slider's label in the window.
    pub label: &'static str,
    pub help: &'static str,
    pub default: f64,
    /// The allowed range (`min` itself excluded when `exclusive_min`).
    pub min: f64,
    pub max: f64,
    pub exclusive_min: bool,
    /// The slider's range in the window (inside the allowed range), and its step (0: continuous;
    /// `step` where that is set).
    pub slider: [f64; 2],
    pub slider_step: f64,
    /// Whole numbers only.
    pub integer: bool,
    /// A logarithmic slider.
    pub log_scale: bool,
    /// When not zero, values must be multiples of it (a slider moves in these steps).
    pub step: f64,
    /// The values `tune` searches by default (OpenOOD's sweeps where it has one).
    pub grid: Vec<f64>,
}

impl ParamSpec {
    /// A real parameter in `[min, max]`.
    pub fn real(name: &'static str, symbol: &'static str, label: &'static str, default: f64, range: [f64; 2]) -> Self {
        ParamSpec {
            name,
            symbol,
            label,
            help: "",
            default,
            min: range[0],
            max: range[1],
            exclusive_min: false,
            slider: range,
            slider_step: 0.0,
            integer: false,
            log_scale: false,
            step: 0.0,
            grid: vec![default],
        }
    }

    /// A whole-number parameter in `[min, max]`.
    pub fn integer(
        name: &'static str,
        symbol: &'static str,
        label: &'static str,
        default: usize,
        range: [usize; 2],
    ) -> Self {
        ParamSpec {
            integer: true,
            step: 1.0,
            slider_step: 1.0,
            ..Self::real(name, symbol, label, default as f64, [range[0] as f64, range[1] as f64])
        }
    }

    pub fn help(mut self, help: &'static str) -> Self {
        self.help = help;
        self
    }

    /// Any value above zero (`max` may be infinite); the slider keeps `slider`.
    pub fn positive(mut self, slider: [f64; 2]) -> Self {
        self.min = 0.0;
        self.max = f64::INFINITY;
        self.exclusive_min = true;
        self.slider = slider;
        self
    }

    /// The slider's range, when narrower than the allowed one, and its step (0: continuous).
    pub fn slider(mut self, range: [f64; 2], step: f64) -> Self {
        self.slider = range;
        self.slider_step = step;
        self
    }

    pub fn log_scale(mut self) -> Self {
        self.log_scale = true;
        self
    }

    /// Values must be multiples of `step`, and the slider moves in it.
    pub fn step(mut self, step: f64) -> Self {
        self.step = step;
        self.slider_step = step;
        self
    }

    /// The tuning grid, kept to the values inside the range (the default alone if none is).
    pub fn grid(mut self, values: &[f64]) -> Self {
        let inside: Vec<f64> = values
            .iter()
            .copied()
            .filter(|v| *v >= self.min && *v <= self.max)
            .collect();
        self.grid = if inside.is_empty() { vec![self.default] } else { inside };
        self
    }

    /// Why `value` is not allowed, if it is not.
    pub fn check(&self, value: f64) -> Result<(), String> {
        let name = self.name;
        if !value.is_finite() {
            return Err(format!("{name} must be a finite number, got {value}"));
        }
        if self.exclusive_min && value <= self.min && self.max == f64::INFINITY {
            return Err(format!("{name} must be positive, got {value}"));
        }
        if self.min == 0.0 && self.max == f64::INFINITY && value < 0.0 {
            return Err(format!("{name} must be zero or positive, got {value}"));
        }
        if value < self.min || value > self.max || (self.exclusive_min && value == self.min) {
            return Err(format!(
                "{name} must be between {} and {}, got {value}",
                fmt_value(self.min),
                fmt_value(self.max)
            ));
        }
        if self.integer && value.fract() != 0.0 {
            return Err(format!("{name} must be a whole number, got {value}"));
        }
        if self.step > 0.0 && !self.integer {
            let steps = value / self.step;
            if (steps - steps.round()).abs() > 1e-9 * steps.abs().max(1.0) {
                return Err(format!(
                    "{name} must be a multiple of {}, got {value}",
                    fmt_value(self.step)
                ));
            }
        }
        Ok(())
    }
}

/// The ODIN paper's temperatures, the default T grid of `tune`.
pub const TEMPERATURE_GRID: [f64; 10] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
/// The ODIN paper's ε grid: 21 evenly spaced values from 0 to 0.004 (pixel units).
pub const EPSILON_GRID_STEPS: usize = 21;
pub const EPSILON_GRID_MAX: f64 = 0.004;

impl ParamSpec {
    /// The softmax temperature T (positive; slider 1–1000, logarithmic).
    pub fn temperature(default: f64) -> Self {
        ParamSpec::real("temperature", "T", "Temperature T", default, [0.0, f64::INFINITY])
            .help("Divides the logits before the softmax")
            .positive([1.0, 1000.0])
            .log_scale()
            .grid(&TEMPERATURE_GRID)
    }

    /// The input step ε, in pixel units (zero or positive; slider 0–0.02 in steps of 0.0001).
    pub fn epsilon(default: f64) -> Self {
        ParamSpec::real("epsilon", "ε", "Perturbation ε", default, [0.0, f64::INFINITY])
            .help("Step x̃ = x − ε·sign(∇ₓ loss), in pixel units")
            .slider([0.0, 0.02], 0.0001)
            .grid(&evenly_spaced(EPSILON_GRID_MAX, EPSILON_GRID_STEPS))
    }
}

/// `steps` values evenly spaced from 0 to `max` inclusive (`max·i/(steps−1)`), each rounded to 15
/// significant digits so that they print as typed (0.0006, not 0.0006000000000000001).
pub fn evenly_spaced(max: f64, steps: usize) -> Vec<f64> {
    let clean = |v: f64| format!("{v:.14e}").parse().unwrap_or(v);
    match steps {
        0 => Vec::new(),
        1 => vec![0.0],
        _ => (0..steps).map(|i| clean(max * i as f64 / (steps - 1) as f64)).collect(),
    }
}

/// Parameter values by name. A checked set (see [`resolve`]) has exactly the method's parameters.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Params(BTreeMap<String, f64>);

impl Params {
    pub fn new() -> Self {
        Params::default()
    }

    /// The value of `name`; a name these parameters do not have (a misspelt one) is an error,
    /// never a NaN that flows into a score.
    pub fn get(&self, name: &str) -> Result<f64, UnknownParam> {
        self.value(name).ok_or_else(|| UnknownParam {
            name: name.to_string(),
            known: self.0.keys().cloned().collect(),
        })
    }

    /// The value of `name`, if these parameters have it.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.0.get(name).copied()
    }

    /// The value of `name` as a count (rounded; 0 when not positive).
    pub fn count(&self, name: &str) -> Result<usize, UnknownParam> {
        let v = self.get(name)?;
        Ok(if v.is_finite() && v > 0.0 {
            v.round() as usize
        } else {
            0
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn set(&mut self, name: &str, value: f64) {
        self.0.insert(name.to_string(), value);
    }

    pub fn with(mut self, name: &str, value: f64) -> Self {
        self.set(name, value);
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses `name=value` (as given to `--param`).
    pub fn parse_assignment(text: &str) -> Result<(String, f64), String> {
        let (name, value) = text
            .split_once('=')
            .ok_or_else(|| format!("--param `{text}`: expected name=value, e.g. k=50"))?;
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| format!("--param `{text}`: `{}` is not a number", value.trim()))?;
        Ok((name.trim().to_string(), value))
    }
}

impl FromIterator<(String, f64)> for Params {
    fn from_iter<I: IntoIterator<Item = (String, f64)>>(iter: I) -> Self {
        Params(iter.into_iter().collect())
    }
}

/// Checks `given` against `specs` and fills in the defaults: an unknown name, or a value out of
/// range, is an error naming the method.
pub fn resolve(method: &str, specs: &[ParamSpec], given: &Params) -> Result<Params, String> {
    if let Some((name, _)) = given.iter().find(|(name, _)| !specs.iter().any(|s| s.name == *name)) {
        let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
        return Err(if known.is_empty() {
            format!("method `{method}` has no parameters (got `{name}`)")
        } else {
            format!(
                "method `{method}` has no parameter `{name}` (its parameters: {})",
                known.join(", ")
            )
        });
    }
    specs
        .iter()
        .map(|spec| {
            let value = given.value(spec.name).unwrap_or(spec.default);
            spec.check(value).map_err(|e| format!("method `{method}`: {e}"))?;
            Ok((spec.name.to_string(), value))
        })
        .collect()
}

/// A value as typed: `1000`, `0.0014`, `85`.
pub fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v}");
        if s.len() > 12 { format!("{v:.6e}") } else { s }
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.iter().map(|(k, v)| format!("{k}={}", fmt_value(v))).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<ParamSpec> {
        vec![
            ParamSpec::integer("k", "k", "Neighbour k", 50, [1, 1000]),
            ParamSpec::real("percentile", "p", "Percentile", 90.0, [0.0, 100.0]).step(0.1),
        ]
    }

    #[test]
    fn defaults_fill_in_and_values_are_checked() {
        let p = resolve("knn", &specs(), &Params::new().with("k", 10.0)).unwrap();
        assert_eq!((p.get("k"), p.get("percentile")), (Ok(10.0), Ok(90.0)));
        assert!(
            resolve("knn", &specs(), &Params::new().with("k", 0.0))
                .unwrap_err()
                .contains("between 1 and 1000")
        );
        assert!(
            resolve("knn", &specs(), &Params::new().with("k", 2.5))
                .unwrap_err()
                .contains("whole number")
        );
        assert!(
            resolve("knn", &specs(), &Params::new().with("percentile", 90.05))
                .unwrap_err()
                .contains("multiple of 0.1")
        );
        assert!(resolve("knn", &specs(), &Params::new().with("percentile", 90.1)).is_ok());
        let err = resolve("knn", &specs(), &Params::new().with("gamma", 1.0)).unwrap_err();
        assert!(
            err.contains("no parameter `gamma`") && err.contains("k, percentile"),
            "{err}"
        );
        assert!(
            resolve("msp", &[], &Params::new().with("k", 1.0))
                .unwrap_err()
                .contains("has no parameters")
        );
    }

    #[test]
    fn assignments_parse() {
        assert_eq!(Params::parse_assignment("k=10"), Ok(("k".into(), 10.0)));
        assert_eq!(Params::parse_assignment(" gamma = 0.5"), Ok(("gamma".into(), 0.5)));
        assert!(Params::parse_assignment("k").is_err());
        assert!(Params::parse_assignment("k=ten").is_err());
        assert_eq!(Params::new().with("b", 2.0).with("a", 0.5).to_string(), "a=0.5,b=2");
    }
}
