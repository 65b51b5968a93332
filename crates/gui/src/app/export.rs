//! Exports of what the user sees: histogram and ROC PNGs, scores CSV and report JSON in the CLI's
//! formats, each written atomically.

use std::path::Path;

use super::{ExportKind, OodscopeApp};
use crate::Error;
use oodscope_engine::evaluate::evaluate;
use oodscope_engine::output::write_atomically;
use oodscope_engine::report::csv::scores_csv;
use oodscope_engine::report::histogram::{HistogramPlot, Series, histogram_png};
use oodscope_engine::report::json::{RunContext, build_report};
use oodscope_engine::report::roc::{RocCurve, roc_png};
use oodscope_engine::score::ScoreRun;

pub fn export(app: &OodscopeApp, kind: ExportKind, path: &Path) -> Result<(), Error> {
    let result = app.result.as_ref().ok_or(Error::NothingScored)?;
    // The model's name and classes: the loaded model's, else the open results file's.
    let (model_name, model_path, classes, device) = match (&app.model, &app.opened) {
        (Some(m), _) => (
            m.card.name.clone(),
            m.path.display().to_string(),
            m.card.classes.clone(),
            m.device.clone(),
        ),
        (None, Some(o)) => (
            o.meta.model.name.clone(),
            o.meta.model.path.clone(),
            o.meta.model.classes.clone(),
            o.meta.device.clone(),
        ),
        (None, None) => return Err(Error::NoModel),
    };
    // The run as displayed: scores re-derived for the shown settings where that happened.
    let run: ScoreRun = result.displayed_run();
    let title = format!("{model_name}: {}", result.shown.describe());
    let bytes = match kind {
        ExportKind::HistogramPng => {
            let sets = result.set_scores();
            let series = sets
                .iter()
                .map(|(name, role, scores)| Series {
                    name: format!("{}: {name}", role.name().to_uppercase()),
                    scores,
                })
                .collect();
            histogram_png(&HistogramPlot {
                title,
                x_label: format!("{} score (higher = more in-distribution)", result.shown.method.title()),
                series,
                threshold: app.threshold,
                bins: app.settings.bins,
                width: 1600,
                height: 960,
            })
            .map_err(Error::Render)?
        }
        ExportKind::RocPng => {
            let derived = app.derived.as_ref().ok_or(Error::NothingScored)?;
            let curves: Vec<RocCurve> = derived
                .ood
                .iter()
                .filter_map(|o| {
                    let curve = o.curves.as_ref()?;
                    let point = app.threshold.and_then(|t| o.operating_point(t)).map(|p| (p.fpr, p.tpr));
                    Some(RocCurve {
                        name: o.name.clone(),
                        auroc: o.metrics?.auroc,
                        points: &curve.roc,
                        operating_point: point,
                    })
                })
                .collect();
            roc_png(&title, &curves, 1200, 1000).map_err(Error::Render)?
        }
        ExportKind::ScoresCsv => scores_csv(&run, &result.sets, &classes).map_err(Error::Render)?,
        ExportKind::ReportJson => {
            let evaluation = evaluate(&run, &result.sets);
            let ctx = RunContext {
                model_path,
                model_name: &model_name,
                settings: &result.shown,
                device,
                batch_size: app.settings.batch_size,
                fit: None,
            };
            serde_json::to_string_pretty(&build_report(&ctx, &result.sets, &run, &evaluation))?.into_bytes()
        }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| Error::Write {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    write_atomically(path, &bytes).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(())
}
