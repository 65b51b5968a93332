//! The search space of `oodscope tune`: a grid over a method's parameters, the objective, and the
//! validation split size.

use std::fmt;
use std::str::FromStr;

use crate::detect::params::{Dims, ParamSpec, Params, fmt_value};
use crate::score::{Method, ScoreSettings};
use oodscope_metrics::DetectionMetrics;

/// The reference protocol holds out the first 1000 images of every set.
pub const DEFAULT_VALIDATION: ValidationSplit = ValidationSplit::Count(1000);

/// One axis of a grid: a parameter and its values, ascending, without repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub name: String,
    /// The parameter's symbol and label, for tables and plots.
    pub symbol: String,
    pub label: String,
    pub values: Vec<f64>,
}

/// Every combination of the axes' values. Grid order — the tie-break when two settings score the
/// same — takes the first axis slowest: smaller values of earlier parameters first (for ODIN:
/// smaller T, then smaller ε).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGrid {
    pub method: Method,
    pub axes: Vec<Axis>,
}

impl ParamGrid {
    /// The grid of a method for a model of these dimensions: each parameter's default grid (the
    /// OpenOOD sweeps, the ODIN paper's T and ε), or the values given for it in `overrides`.
    pub fn for_method(method: Method, dims: &Dims, overrides: &[(String, Vec<f64>)]) -> Result<ParamGrid, String> {
        let specs = method.params(dims);
        if specs.is_empty() {
            return Err(format!("method `{method}` has no parameters to tune"));
        }
        if let Some((name, _)) = overrides.iter().find(|(n, _)| !specs.iter().any(|s| s.name == n)) {
            let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
            return Err(format!(
                "method `{method}` has no parameter `{name}` to tune (its parameters: {})",
                names.join(", ")
            ));
        }
        let axes = specs
            .iter()
            .map(|spec| {
                let values = overrides
                    .iter()
                    .find(|(n, _)| n == spec.name)
                    .map_or_else(|| spec.grid.clone(), |(_, v)| v.clone());
                axis(spec, &values)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ParamGrid { method, axes })
    }

    /// Number of settings.
    pub fn len(&self) -> usize {
        self.axes.iter().map(|a| a.values.len()).product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index of each axis's value at the flat index `i`.
    pub fn coordinates(&self, mut i: usize) -> Vec<usize> {
        let mut coords = vec![0; self.axes.len()];
        for (a, axis) in self.axes.iter().enumerate().rev() {
            coords[a] = i % axis.values.len();
            i /= axis.values.len();
        }
        coords
    }

    /// The parameter values at the flat index `i`.
    pub fn params(&self, i: usize) -> Params {
        self.axes
            .iter()
            .zip(self.coordinates(i))
            .map(|(axis, c)| (axis.name.clone(), axis.values[c]))
            .collect()
    }

    /// The settings at the flat index `i`.
    pub fn settings(&self, i: usize) -> ScoreSettings {
        ScoreSettings {
            method: self.method,
            params: self.params(i),
        }
    }

    /// Every setting, in grid order.
    pub fn all_settings(&self) -> Vec<ScoreSettings> {
        (0..self.len()).map(|i| self.settings(i)).collect()
    }

    /// `10 T × 21 ε`.
    pub fn describe(&self) -> String {
        self.axes
            .iter()
            .map(|a| format!("{} {}", a.values.len(), a.symbol))
            .collect::<Vec<_>>()
            .join(" × ")
    }
}

/// An axis of `values` for `spec`: each value checked, sorted and deduplicated.
fn axis(spec: &ParamSpec, values: &[f64]) -> Result<Axis, String> {
    if values.is_empty() {
        return Err(format!("the grid of {} needs at least one value", spec.name));
    }
    for &v in values {
        spec.check(v).map_err(|e| format!("grid: {e}"))?;
    }
    Ok(Axis {
        name: spec.name.to_string(),
        symbol: spec.symbol.to_string(),
        label: spec.label.to_string(),
        values: sorted_unique(values),
    })
}

/// Parses `name=v1,v2,…` (as given to `--grid`).
pub fn parse_axis(text: &str) -> Result<(String, Vec<f64>), String> {
    let (name, values) = text
        .split_once('=')
        .ok_or_else(|| format!("--grid `{text}`: expected name=v1,v2,… (e.g. k=10,50,100)"))?;
    let values = values
        .split(',')
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .map_err(|_| format!("--grid `{text}`: `{}` is not a number", v.trim()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name.trim().to_string(), values))
}

/// A value as printed in the grid's tables.
pub fn label(v: f64) -> String {
    fmt_value(v)
}

fn sorted_unique(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// What the search optimises on the validation split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// FPR at 95% TPR, lower is better.
    #[default]
    Fpr95,
    /// AUROC, higher is better.
    Auroc,
}

impl Objective {
    pub fn name(self) -> &'static str {
        match self {
            Objective::Fpr95 => "fpr95",
            Objective::Auroc => "auroc",
        }
    }

    /// The human name, with its direction.
    pub fn title(self) -> &'static str {
        match self {
            Objective::Fpr95 => "FPR at 95% TPR (lower is better)",
            Objective::Auroc => "AUROC (higher is better)",
        }
    }

    /// A short label for axes and tables.
    pub fn short(self) -> &'static str {
        match self {
            Objective::Fpr95 => "FPR95",
            Objective::Auroc => "AUROC",
        }
    }

    /// The metric this objective reads.
    pub fn value(self, metrics: &DetectionMetrics) -> f64 {
        match self {
            Objective::Fpr95 => metrics.fpr_at_95_tpr,
            Objective::Auroc => metrics.auroc,
        }
    }

    /// Whether `candidate` is strictly better than `incumbent` (ties are not: the first wins).
    pub fn is_better(self, candidate: f64, incumbent: f64) -> bool {
        match self {
            Objective::Fpr95 => candidate < incumbent,
            Objective::Auroc => candidate > incumbent,
        }
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Objective {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "fpr95" | "fpr" => Ok(Objective::Fpr95),
            "auroc" => Ok(Objective::Auroc),
            _ => Err(format!("unknown objective `{s}` (expected fpr95 or auroc)")),
        }
    }
}

/// How many of each set's first images form the validation split (the rest is the test split).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum ValidationSplit {
    /// The first N images of every set.
    Count(usize),
    /// The first ⌊f·n⌋ images of a set of n (at least one), 0 < f < 1.
    Fraction(f64),
}

impl ValidationSplit {
    /// The validation size of a set of `n` images.
    pub fn count_for(self, n: usize) -> usize {
        match self {
            ValidationSplit::Count(k) => k,
            ValidationSplit::Fraction(f) => ((f * n as f64).floor() as usize).max(1),
        }
    }

    /// `the first 1000 images` / `the first 20% of the images`.
    pub fn describe(self) -> String {
        match self {
            ValidationSplit::Count(k) => format!("the first {k} images of each set"),
            ValidationSplit::Fraction(f) => format!("the first {}% of each set's images", 100.0 * f),
        }
    }
}

impl FromStr for ValidationSplit {
    type Err = String;
    /// A whole number is a count (`500`); a number with a point or exponent is a fraction (`0.2`).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(k) = s.parse::<usize>() {
            return if k > 0 {
                Ok(ValidationSplit::Count(k))
            } else {
                Err("the validation split needs at least one image".into())
            };
        }
        match s.parse::<f64>() {
            Ok(f) if f > 0.0 && f < 1.0 => Ok(ValidationSplit::Fraction(f)),
            _ => Err(format!(
                "`{s}` is neither an image count (e.g. 1000) nor a fraction between 0 and 1 (e.g. 0.2)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn odin_grid() -> ParamGrid {
        ParamGrid::for_method(Method::named("odin"), &Dims::default(), &[]).unwrap()
    }

    #[test]
    fn the_default_odin_grid_is_the_papers() {
        let grid = odin_grid();
        assert_eq!(grid.axes[0].name, "temperature");
        assert_eq!(grid.axes[0].values.len(), 10);
        let eps = &grid.axes[1].values;
        assert_eq!((eps.len(), eps[0], eps[20], eps[7]), (21, 0.0, 0.004, 0.0014));
        assert_eq!(format!("{:?}", &eps[..4]), "[0.0, 0.0002, 0.0004, 0.0006]");
        assert_eq!(grid.len(), 210);
        // Grid order: T slowest, ε fastest.
        assert_eq!(grid.coordinates(9 * 21 + 7), vec![9, 7]);
        let s = grid.settings(9 * 21 + 7);
        assert_eq!((s.get("temperature"), s.get("epsilon")), (Ok(1000.0), Ok(0.0014)));
    }

    #[test]
    fn overrides_are_sorted_deduplicated_and_checked() {
        let over = vec![
            ("temperature".to_string(), vec![1000.0, 1.0, 10.0, 1.0]),
            ("epsilon".into(), vec![0.002, 0.0]),
        ];
        let grid = ParamGrid::for_method(Method::named("odin"), &Dims::default(), &over).unwrap();
        assert_eq!(grid.axes[0].values, [1.0, 10.0, 1000.0]);
        assert_eq!(grid.axes[1].values, [0.0, 0.002]);
        let bad = |name: &str, v: f64| {
            ParamGrid::for_method(Method::named("odin"), &Dims::default(), &[(name.to_string(), vec![v])]).unwrap_err()
        };
        assert!(bad("temperature", 0.0).contains("temperature must be positive, got 0"));
        assert!(bad("epsilon", -0.1).contains("epsilon must be zero or positive"));
        assert!(bad("k", 1.0).contains("has no parameter `k`"));
        assert!(
            ParamGrid::for_method(Method::named("msp"), &Dims::default(), &[])
                .unwrap_err()
                .contains("no parameters to tune")
        );
        assert_eq!(parse_axis("k=10, 50"), Ok(("k".into(), vec![10.0, 50.0])));
        assert!(parse_axis("k").is_err() && parse_axis("k=x").is_err());
    }

    #[test]
    fn confidence_searches_epsilon_only() {
        let grid = ParamGrid::for_method(Method::named("confidence"), &Dims::default(), &[]).unwrap();
        assert_eq!(grid.axes.len(), 1);
        assert_eq!(grid.len(), 21);
    }

    #[test]
    fn objectives_keep_the_first_of_equals() {
        assert!(Objective::Fpr95.is_better(0.1, 0.2));
        assert!(!Objective::Fpr95.is_better(0.2, 0.2));
        assert!(Objective::Auroc.is_better(0.9, 0.8));
        assert!(!Objective::Auroc.is_better(0.9, 0.9));
        assert_eq!("AUROC".parse::<Objective>(), Ok(Objective::Auroc));
        assert!("f1".parse::<Objective>().is_err());
    }

    #[test]
    fn validation_counts_and_fractions() {
        assert_eq!("500".parse(), Ok(ValidationSplit::Count(500)));
        assert_eq!("0.2".parse(), Ok(ValidationSplit::Fraction(0.2)));
        assert!("0".parse::<ValidationSplit>().is_err());
        assert!("1.5".parse::<ValidationSplit>().is_err());
        assert!("many".parse::<ValidationSplit>().is_err());
        assert_eq!(ValidationSplit::Fraction(0.6).count_for(18), 10);
        assert_eq!(ValidationSplit::Fraction(0.6).count_for(52), 31);
        assert_eq!(ValidationSplit::Fraction(0.01).count_for(10), 1);
        assert_eq!(ValidationSplit::Count(1000).count_for(10), 1000);
    }
}
