//! The per-image scores CSV: `set,role,path,score,pred,pred_prob,label` for one method, or one
//! score column per method (named after it) for a comparison. Written with the `csv` crate.

use crate::data::ImageSet;
use crate::score::ScoreRun;

/// The header of a one-method run.
pub const HEADER: &str = "set,role,path,score,pred,pred_prob,label";

/// The CSV bytes of a run; `pred` and `label` are class names.
pub fn scores_csv(run: &ScoreRun, sets: &[ImageSet], classes: &[String]) -> Result<Vec<u8>, String> {
    let mut writer = ::csv::Writer::from_writer(Vec::with_capacity(64 * (run.images.len() + 1)));
    let score_names: Vec<&str> = if run.columns.len() == 1 {
        vec!["score"]
    } else {
        run.methods.iter().map(|m| m.method.name()).collect()
    };
    let mut header = vec!["set", "role", "path"];
    header.extend(&score_names);
    header.extend(["pred", "pred_prob", "label"]);
    writer.write_record(&header).map_err(|e| e.to_string())?;
    let class = |i: usize| classes.get(i).map(String::as_str).unwrap_or("?");
    for (i, s) in run.images.iter().enumerate() {
        let set = &sets[s.set];
        let mut row = vec![set.name.clone(), set.role.name().to_string(), s.path.clone()];
        row.extend(run.columns.iter().map(|c| c[i].to_string()));
        row.push(class(s.pred).to_string());
        row.push(s.pred_prob.to_string());
        row.push(s.label.map(class).unwrap_or("").to_string());
        writer.write_record(&row).map_err(|e| e.to_string())?;
    }
    writer.into_inner().map_err(|e| e.to_string())
}
