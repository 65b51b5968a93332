//! The per-image scores CSV: `set,role,path,score,pred,pred_prob,label` for one method, or one
//! score column per method (named after it) for a comparison. Written with the `csv` crate by
//! `results::csv_writer`, which also streams it as a run goes.

use crate::score::ScoreRun;
use oodscope_data::ImageSet;

pub use crate::results::csv_writer::HEADER;

/// The CSV bytes of a run; `pred` and `label` are class names.
pub fn scores_csv(run: &ScoreRun, sets: &[ImageSet], classes: &[String]) -> Result<Vec<u8>, String> {
    crate::results::csv_writer::run_csv(run, sets, classes)
}
