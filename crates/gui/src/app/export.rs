//! Exports of what the user sees: histogram and ROC PNGs, scores CSV and report JSON in the CLI's
//! formats, each written atomically. Each carries δ and its rule (score ≥ δ → ID): in the PNGs'
//! titles, as `threshold` and `verdict` columns of the CSV, as the report's `decision`.

use std::path::Path;

use super::{ExportKind, OodscopeApp};
use crate::Error;
use oodscope_engine::deploy::manifest::RULE;
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
    let title = match app.threshold {
        Some(t) => format!("{model_name}: {} · δ = {t} (score ≥ δ → ID)", result.title()),
        None => format!("{model_name}: {}", result.title()),
    };
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
                x_label: match &result.external {
                    Some(e) => format!("{} (external; higher = more in-distribution)", e.name),
                    None => format!("{} score (higher = more in-distribution)", result.shown.method.title()),
                },
                series,
                threshold: app.threshold,
                threshold_note: "as set in the window; score ≥ δ → ID".into(),
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
        ExportKind::ScoresCsv => with_verdicts(
            &scores_csv(&run, &result.sets, &classes).map_err(Error::Render)?,
            app.threshold,
        )?,
        ExportKind::ReportJson => {
            if let Some(e) = &result.external {
                return Err(Error::NotAMethod(e.name.clone()));
            }
            let evaluation = evaluate(&run, &result.sets);
            let ctx = RunContext {
                model_path,
                model_name: &model_name,
                settings: &result.shown,
                device,
                batch_size: app.settings.batch_size,
                fit: None,
            };
            let mut report = serde_json::to_value(build_report(&ctx, &result.sets, &run, &evaluation))?;
            if let (Some(object), Some(t)) = (report.as_object_mut(), app.threshold) {
                let mut decision = serde_json::json!({ "threshold": t, "rule": RULE, "chosen_in": "window" });
                // δ as an open detector file set it: which file, and for which false-alarm rate.
                if let Some(view) = &app.detector
                    && let (Some(m), Some(c)) = (&view.manifest, &view.calibration)
                    && c.threshold == t
                {
                    decision["detector"] = serde_json::json!({
                        "name": m.name,
                        "path": view.path.display().to_string(),
                        "false_alarm": c.false_alarm,
                        "calibration_images": c.scores.len(),
                    });
                }
                object.insert("decision".into(), decision);
            }
            serde_json::to_string_pretty(&report)?.into_bytes()
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

/// The scores CSV with two more columns: `threshold` (δ) and `verdict` (`id` when score ≥ δ, else
/// `ood`); unchanged when no δ is set.
fn with_verdicts(csv_bytes: &[u8], threshold: Option<f32>) -> Result<Vec<u8>, Error> {
    let Some(t) = threshold else {
        return Ok(csv_bytes.to_vec());
    };
    let render = |e: csv::Error| Error::Render(format!("cannot add the verdicts to the scores CSV: {e}"));
    let mut reader = csv::Reader::from_reader(csv_bytes);
    let mut header = reader.headers().map_err(render)?.clone();
    let score = header
        .iter()
        .position(|h| h == "score")
        .ok_or_else(|| Error::Render("the scores CSV has no score column".into()))?;
    header.push_field("threshold");
    header.push_field("verdict");
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&header).map_err(render)?;
    let delta = t.to_string();
    for record in reader.records() {
        let mut record = record.map_err(render)?;
        let id = record
            .get(score)
            .and_then(|s| s.parse::<f32>().ok())
            .is_some_and(|s| s >= t);
        record.push_field(&delta);
        record.push_field(if id { "id" } else { "ood" });
        writer.write_record(&record).map_err(render)?;
    }
    writer
        .into_inner()
        .map_err(|e| Error::Render(format!("cannot add the verdicts to the scores CSV: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_gains_threshold_and_verdict_columns() {
        let csv =
            b"set,role,path,score,pred,pred_prob,label\na,id,\"x,1.png\",0.5,cat,0.9,\nb,ood,y.png,0.2,dog,0.8,\n";
        let out = String::from_utf8(with_verdicts(csv, Some(0.5)).unwrap()).unwrap();
        assert_eq!(
            out,
            "set,role,path,score,pred,pred_prob,label,threshold,verdict\na,id,\"x,1.png\",0.5,cat,0.9,,0.5,id\nb,ood,y.png,0.2,dog,0.8,,0.5,ood\n"
        );
        assert_eq!(with_verdicts(csv, None).unwrap(), csv.to_vec());
    }
}
