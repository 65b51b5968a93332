//! Image sets: folder scanning, decoding and preprocessing, and the synthetic noise sets.

pub mod decode;
pub mod jpeg;
pub mod noise;
pub mod resize;
pub mod scan;
pub mod set;

pub use decode::{DecodeLimits, Preprocess, SkipReason, decode_file};
pub use noise::NoiseKind;
pub use set::{ImageSet, Role, SetError, SetSource};
