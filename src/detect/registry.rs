//! Every scoring method, in menu order. Adding a method is its file plus one line here.

use super::Detector;
use super::confidence::Confidence;
use super::ensemble::Ensemble;
use super::logits::{energy::Energy, msp::Msp, odin::Odin};

/// The registered detectors.
pub static DETECTORS: &[&dyn Detector] = &[&Msp, &Odin, &Energy, &Confidence, &Ensemble];
