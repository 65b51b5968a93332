//! The crate's one error type: why a metric cannot be computed from the given scores.

use std::fmt;

/// Why a metric cannot be computed from the given scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Error {
    /// One of the two sets has no scores (`which` is `"ID"` or `"OOD"`).
    EmptySet { which: &'static str },
    /// A score is NaN (`which` is `"ID"` or `"OOD"`; `index` is its position in that slice).
    NaN { which: &'static str, index: usize },
    /// Every score of both sets is the same value, so no threshold separates anything.
    AllEqual { count: usize, value: f32 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptySet { which } => write!(f, "the {which} set has no scores"),
            Self::NaN { which, index } => write!(f, "{which} score at index {index} is NaN"),
            Self::AllEqual { count, value } => {
                write!(f, "all {count} scores are equal ({value}): the score separates nothing")
            }
        }
    }
}

impl std::error::Error for Error {}
