//! The per-image scores CSV: `set,role,path,score,pred,pred_prob,label`.

use crate::data::ImageSet;
use crate::score::ScoreRun;

pub const HEADER: &str = "set,role,path,score,pred,pred_prob,label";

/// The CSV text of a run; `pred` and `label` are class names.
pub fn scores_csv(run: &ScoreRun, sets: &[ImageSet], classes: &[String]) -> String {
    let mut out = String::with_capacity(64 * (run.images.len() + 1));
    out.push_str(HEADER);
    out.push('\n');
    let class = |i: usize| classes.get(i).map(String::as_str).unwrap_or("?");
    for (s, score) in run.images.iter().zip(run.scores()) {
        let set = &sets[s.set];
        let label = s.label.map(class).unwrap_or("");
        let row = [
            field(&set.name),
            set.role.name().to_string(),
            field(&s.path),
            format!("{score}"),
            field(class(s.pred)),
            format!("{}", s.pred_prob),
            field(label),
        ];
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// Quotes a field when it holds a comma, quote or line break (RFC 4180).
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_awkward_fields() {
        assert_eq!(super::field("a,b"), "\"a,b\"");
        assert_eq!(super::field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(super::field("plain"), "plain");
    }
}
