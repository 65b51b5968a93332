//! The window's errors at its boundary: opening it, and exporting what it shows.

use std::path::PathBuf;

/// Why the window could not open, or an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundled assets are nowhere to be found (the demo needs them).
    #[error(transparent)]
    Assets(#[from] oodscope_engine::assets::NotFound),
    /// eframe could not open a window (no display server, no OpenGL).
    #[error("cannot open the window: {0}")]
    Window(String),
    /// An export asked for before anything was scored.
    #[error("nothing scored yet")]
    NothingScored,
    /// An export that needs the model's name and classes, with neither a model nor a results file.
    #[error("no model loaded")]
    NoModel,
    /// A chart or table that could not be rendered.
    #[error("{0}")]
    Render(String),
    /// A report that could not be serialised.
    #[error("cannot write the report: {0}")]
    Report(#[from] serde_json::Error),
    /// A report asked for while a results file's own score column is shown (a report describes a
    /// method's run).
    #[error("{0} is the results file's own column, not a method: show a method to export its report")]
    NotAMethod(String),
    /// A file or folder that could not be written.
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}
