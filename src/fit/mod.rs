//! Statistics of ID training images (the "fit" of the feature methods).

/// A loaded fit, its statistics on the model's device.
pub struct Fit {}
