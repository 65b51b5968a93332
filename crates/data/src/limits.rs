//! Bounds on what decoding an image may take on, and why a file is skipped.

/// Why a file was skipped; the run goes on without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipReason(pub String);

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Bounds on what a decoder may take on: guards against decompression bombs and huge files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    pub max_file_bytes: u64,
    pub max_side: u32,
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_file_bytes: 256 << 20,
            max_side: 16_384,
            max_alloc_bytes: 1 << 30,
        }
    }
}
