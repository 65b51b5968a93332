//! The search space of `oodscope tune`: the T and ε grids, the objective, and the validation split size.

use std::fmt;
use std::str::FromStr;

use crate::metrics::DetectionMetrics;
use crate::score::Method;

/// The ODIN paper's temperatures.
pub const DEFAULT_TEMPERATURES: [f64; 10] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
/// The ODIN paper's ε grid: 21 evenly spaced values from 0 to 0.004 (pixel units).
pub const DEFAULT_EPSILON_STEPS: usize = 21;
pub const DEFAULT_EPSILON_MAX: f64 = 0.004;
/// The reference protocol holds out the first 1000 images of every set.
pub const DEFAULT_VALIDATION: ValidationSplit = ValidationSplit::Count(1000);

/// The (T, ε) grid, both axes ascending without repeats. Grid order — the tie-break when two
/// settings score the same — is smaller T first, then smaller ε.
#[derive(Debug, Clone, PartialEq)]
pub struct TuneGrid {
    pub temperatures: Vec<f64>,
    pub epsilons: Vec<f64>,
}

impl Default for TuneGrid {
    fn default() -> Self {
        TuneGrid {
            temperatures: DEFAULT_TEMPERATURES.to_vec(),
            epsilons: evenly_spaced(DEFAULT_EPSILON_MAX, DEFAULT_EPSILON_STEPS),
        }
    }
}

impl TuneGrid {
    /// Checks and orders the grids: every T positive and finite, every ε finite and `≥ 0`, neither empty.
    pub fn new(temperatures: &[f64], epsilons: &[f64]) -> Result<TuneGrid, String> {
        if let Some(t) = temperatures.iter().find(|t| !(t.is_finite() && **t > 0.0)) {
            return Err(format!("every temperature must be positive, got {t}"));
        }
        if let Some(e) = epsilons.iter().find(|e| !(e.is_finite() && **e >= 0.0)) {
            return Err(format!("every epsilon must be zero or positive, got {e}"));
        }
        if temperatures.is_empty() || epsilons.is_empty() {
            return Err("the T and ε grids need at least one value each".into());
        }
        Ok(TuneGrid {
            temperatures: sorted_unique(temperatures),
            epsilons: sorted_unique(epsilons),
        })
    }

    /// The grid a method actually searches: a method that ignores T (the confidence branch)
    /// collapses the T axis to the single value 1.
    pub fn for_method(&self, method: Method) -> Result<TuneGrid, String> {
        if !method.uses_epsilon() {
            return Err(format!(
                "method `{method}` has no T or ε to tune (use odin, energy, confidence or ensemble)"
            ));
        }
        let temperatures = if method.uses_temperature() {
            self.temperatures.clone()
        } else {
            vec![1.0]
        };
        Ok(TuneGrid {
            temperatures,
            epsilons: self.epsilons.clone(),
        })
    }

    /// Number of (T, ε) settings.
    pub fn len(&self) -> usize {
        self.temperatures.len() * self.epsilons.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The flat index of (T index, ε index) in grid order.
    pub fn index(&self, t: usize, e: usize) -> usize {
        t * self.epsilons.len() + e
    }

    /// (T, ε) of the flat index `i`.
    pub fn setting(&self, i: usize) -> (f64, f64) {
        let n = self.epsilons.len();
        (self.temperatures[i / n], self.epsilons[i % n])
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

    #[test]
    fn default_grid_is_the_papers() {
        let grid = TuneGrid::default();
        assert_eq!(grid.temperatures.len(), 10);
        assert_eq!(grid.epsilons.len(), 21);
        assert_eq!(grid.epsilons[0], 0.0);
        assert_eq!(grid.epsilons[20], 0.004);
        assert_eq!(grid.epsilons[7], 0.0014);
        assert_eq!(format!("{:?}", &grid.epsilons[..4]), "[0.0, 0.0002, 0.0004, 0.0006]");
        assert_eq!(grid.len(), 210);
        assert_eq!(grid.setting(grid.index(9, 7)), (1000.0, grid.epsilons[7]));
    }

    #[test]
    fn grids_are_sorted_deduplicated_and_checked() {
        let grid = TuneGrid::new(&[1000.0, 1.0, 10.0, 1.0], &[0.002, 0.0]).unwrap();
        assert_eq!(grid.temperatures, [1.0, 10.0, 1000.0]);
        assert_eq!(grid.epsilons, [0.0, 0.002]);
        assert!(TuneGrid::new(&[0.0], &[0.0]).unwrap_err().contains("positive"));
        assert!(TuneGrid::new(&[1.0], &[-0.1]).unwrap_err().contains("epsilon"));
        assert!(TuneGrid::new(&[], &[0.0]).is_err());
    }

    #[test]
    fn confidence_collapses_the_temperature_axis() {
        let grid = TuneGrid::default().for_method(Method::Confidence).unwrap();
        assert_eq!(grid.temperatures, [1.0]);
        assert_eq!(grid.len(), 21);
        assert!(TuneGrid::default().for_method(Method::Msp).is_err());
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
