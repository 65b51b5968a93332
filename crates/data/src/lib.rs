//! Image sets: folder scanning, decoding and preprocessing, and the synthetic noise sets; the
//! memory budgets checked before allocating; paths written as text losslessly.

pub mod decode;
mod error;
pub mod geometry;
pub mod jpeg;
pub mod limits;
pub mod noise;
pub mod path_text;
pub mod pil;
pub mod pil_convert;
pub mod preprocessing;
pub mod read;
pub mod resize;
pub mod rng;
pub mod scan;
pub mod set;
pub mod shard;
pub mod torch_u8;

pub use decode::{DecodeLimits, Preprocess, SkipReason, decode_file};
pub use error::{Error, SetError};
pub use noise::NoiseKind;
pub use path_text::{path_from_text, path_to_text};
pub use set::{ImageSet, Role, SetSource};
pub use shard::Shard;
