//! What a results file's reading loads besides the scores, and how far it has come.

use std::ops::ControlFlow;

/// Which saved lists to load besides the scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub logits: bool,
    pub features: bool,
}

impl Load {
    /// Everything the file saved.
    pub const ALL: Load = Load {
        logits: true,
        features: true,
    };
    /// The scores and records only.
    pub const SCORES: Load = Load {
        logits: false,
        features: false,
    };
}

/// Rows read so far of the file's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowsRead {
    pub done: u64,
    pub total: u64,
}

/// Told after every batch of rows read; `Break` stops the reading.
pub type OnRows<'a> = &'a mut dyn FnMut(RowsRead) -> ControlFlow<()>;
