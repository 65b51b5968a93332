//! What panels ask for: commands collected during drawing and applied once per frame.

use std::path::PathBuf;

use oodscope_data::Role;
use oodscope_engine::detect::Params;
use oodscope_engine::score::Method;

use super::deploy::SaveDetectorForm;
use super::settings::Tab;
use super::tasks::ViewJob;

/// Which file an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    HistogramPng,
    RocPng,
    ScoresCsv,
    ReportJson,
}

impl ExportKind {
    pub fn default_name(self) -> &'static str {
        match self {
            ExportKind::HistogramPng => "histogram.png",
            ExportKind::RocPng => "roc.png",
            ExportKind::ScoresCsv => "scores.csv",
            ExportKind::ReportJson => "report.json",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    LoadModel(PathBuf),
    /// Open a results file (`oodscope score --results`): read on the worker, shown without a model.
    OpenResults(PathBuf),
    /// Open a fit file beside the open results file (no model): its statistics and the head it
    /// keeps serve the methods that need them.
    OpenFit(PathBuf),
    AddSet {
        spec: String,
        role: Role,
    },
    RemoveSet(usize),
    ToggleSet(usize),
    SetMethod(Method),
    /// Show the open results file's own score column of this name in place of the method's scores.
    ShowExternal(String),
    /// One parameter of the current method (a slider moved).
    SetParam(String, f64),
    SetThreshold(f32),
    ThresholdAt95Tpr,
    SetBins(usize),
    SetTab(Tab),
    Rescore,
    /// Esc or the status bar's Cancel: every cancellable background job.
    Cancel,
    /// A view's own Cancel, beside its job's progress bar: that kind of job only.
    CancelJobs(ViewJob),
    ScoreFiles(Vec<PathBuf>),
    /// A dropped folder waits for the user to say ID, OOD or training (fit) folder.
    AskFolderRole(PathBuf),
    ResolveFolder(Option<Role>),
    /// The dropped folder is the ID training folder of the fit.
    ResolveFolderAsTrain,
    /// Set (or clear) the ID training folder; a set one is fitted (or read from the cache).
    SetTrain(Option<String>),
    Export {
        kind: ExportKind,
        path: Option<PathBuf>,
    },
    Select(Option<usize>),
    DismissMessage,
    /// Start the parameter search of the current method on the enabled sets.
    Tune,
    /// Score every method the model supports on the enabled sets in one pass (the Compare view).
    Compare,
    /// Set several parameters of the current method at once (a heatmap cell was clicked).
    SetParams(Params),
    Message(String),
    SetLogY(bool),
    SetDensity(bool),
    SetExportDir(String),
    /// Save the current method, parameters and δ as a detector file (on the worker).
    SaveDetector(SaveDetectorForm),
    /// Open a detector file: its manifest, calibration and δ shown, the open sets re-scored with it.
    OpenDetector(PathBuf),
    /// Watch a running `oodscope serve` at this address.
    Watch(String),
    StopWatch,
}
