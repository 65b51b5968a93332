//! `oodscope score --from FILE` and `oodscope compare --from FILE`: a results file's saved logits and
//! features scored with no model (the engine's `arrays`), every method whose needs the file, the fit
//! (`--fit`) and the head (`--head`, or the fit's) meet; one line per method that cannot run, saying
//! what is missing. The file's own score columns join compare's leaderboard as "external".

use std::path::Path;

use anyhow::{Result, bail};
use tch::Device;

use super::write_output;
use oodscope_engine::arrays::{
    ArrayNeed, ArrayScoring, array_dims, array_need, check_head, head_of_fit, score_settings,
};
use oodscope_engine::compare::{CompareResult, Leaderboard, parse_methods};
use oodscope_engine::detect::cache::CachedOutputs;
use oodscope_engine::detect::{Method, Params, ScoreSettings};
use oodscope_engine::evaluate::evaluate;
use oodscope_engine::fit::cache::bank_budget;
use oodscope_engine::model::{Head, HeadSource};
use oodscope_engine::report::compare_files::{CompareContext, compare_report, leaderboard_csv, leaderboard_markdown};
use oodscope_engine::report::json::{RunContext, build_report};
use oodscope_engine::report::table::metrics_table;
use oodscope_engine::results::{Results, open};
use oodscope_engine::stats::Fit;

/// A results file open for scoring: its sets and records, its outputs, and the fit and head given.
pub struct FromFile {
    pub results: Results,
    pub outputs: CachedOutputs,
    pub fit: Option<Fit>,
    pub head: Option<Head>,
    pub name: String,
}

impl FromFile {
    /// Opens `path` with everything it saved, loads `fit` (no model to check it against) and the
    /// head (`head`, else the fit's), each checked against the file's outputs.
    pub fn open(path: &Path, fit: Option<&Path>, head: Option<&Path>) -> Result<FromFile> {
        let mut results = open(path).map_err(anyhow::Error::msg)?;
        let run = &mut results.run;
        let outputs = CachedOutputs {
            logits: std::mem::take(&mut run.logits),
            logit_width: run.logit_width,
            features: std::mem::take(&mut run.features),
            feature_width: run.feature_width,
            member_widths: Vec::new(),
            blocks: Default::default(),
            rows: run.images.len(),
        };
        let fit = match fit {
            Some(p) => {
                let fit = Fit::load_unbound(p, Device::Cpu, bank_budget()).map_err(anyhow::Error::msg)?;
                eprintln!("fit: {} (from {})", fit.info.describe(), p.display());
                Some(fit)
            }
            None => None,
        };
        let head = match (head, &fit) {
            (Some(p), _) => {
                let head =
                    Head::load(&HeadSource::File(p.to_path_buf()), None, Device::Cpu).map_err(anyhow::Error::msg)?;
                Some((head, format!("--head {}", p.display())))
            }
            (None, Some(fit)) => head_of_fit(fit)
                .map_err(anyhow::Error::msg)?
                .map(|h| (h, format!("the fit {}", fit.info.path.display()))),
            (None, None) => None,
        };
        let head = match head {
            Some((head, from)) => {
                check_head(&head, &outputs).map_err(|e| anyhow::anyhow!("{from}: {e}"))?;
                Some(head)
            }
            None => None,
        };
        let name = if results.meta.model.name.is_empty() {
            path.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        } else {
            results.meta.model.name.clone()
        };
        Ok(FromFile {
            results,
            outputs,
            fit,
            head,
            name,
        })
    }

    /// The dimensions parameters are checked against: the saved outputs' and the fit's bank.
    pub fn dims(&self) -> oodscope_engine::detect::Dims {
        array_dims(&self.scoring())
    }

    fn scoring(&self) -> ArrayScoring<'_> {
        ArrayScoring {
            outputs: &self.outputs,
            classes: &self.results.meta.model.classes,
            fit: self.fit.as_ref(),
            head: self.head.as_ref(),
        }
    }

    /// `method`'s scores at `params`, or what the file, fit and head lack for it (one line).
    pub fn score(&self, method: Method, params: &Params) -> Result<(ScoreSettings, Vec<f32>), String> {
        let scoring = self.scoring();
        if self.outputs.logit_width == 0 {
            return Err("the file has no logits: write it with --save-logits (or a `logits` column)".into());
        }
        if let Some(need) = array_need(&scoring, method) {
            return Err(need_text(need).into());
        }
        let settings = ScoreSettings::new(method, params, &array_dims(&scoring))?;
        if settings.needs_gradient() {
            return Err(format!(
                "{} steps against the input gradient, which a results file cannot give: set its epsilon to 0, or score with the model",
                settings.describe()
            ));
        }
        let scores = score_settings(&scoring, &settings)?;
        Ok((settings, scores))
    }

    /// The MSP baseline of every row, from the logits as the `msp` method computes it.
    fn set_baseline(&mut self) {
        if let Ok((_, msp)) = self.score(Method::named("msp"), &Params::new()) {
            for (image, v) in self.results.run.images.iter_mut().zip(msp) {
                image.baseline = Some(v);
            }
        }
    }

    fn fit_json(&self) -> Option<serde_json::Value> {
        self.fit.as_ref().map(|f| f.info.to_json())
    }
}

/// What a method lacks, in the command line's terms.
fn need_text(need: ArrayNeed) -> &'static str {
    match need {
        ArrayNeed::Ensemble => "needs a leave-out ensemble of models: score it with the ensemble's card",
        ArrayNeed::Confidence => "needs the model's confidence branch, which a results file does not hold",
        ArrayNeed::Features => {
            "needs penultimate features: the file has no `features` column (write it with --save-features)"
        }
        ArrayNeed::Head => "needs the head: give --head FILE.safetensors (weight, bias), or a --fit made with the head",
        ArrayNeed::Fit => "needs a fit: give --fit FILE (made by `oodscope fit`, or from arrays)",
        ArrayNeed::Blocks => {
            "needs the model's inner blocks, which a results file does not hold: score it with --model (a card with `blocks`)"
        }
    }
}

/// Outputs of `score --from`.
pub struct ScoreFrom<'a> {
    pub from: &'a Path,
    pub fit: Option<&'a Path>,
    pub head: Option<&'a Path>,
    pub method: Method,
    pub params: &'a Params,
    pub scores: Option<&'a Path>,
    pub report: Option<&'a Path>,
    pub histogram: Option<&'a Path>,
    pub bins: usize,
}

/// `oodscope score --from FILE --method M`: the metrics table, and CSV / JSON / PNG as with a model.
pub fn score_from(args: &ScoreFrom) -> Result<()> {
    let mut file = FromFile::open(args.from, args.fit, args.head)?;
    file.set_baseline();
    let (settings, scores) = file
        .score(args.method, args.params)
        .map_err(|why| anyhow::anyhow!("{}: {why}", args.method.name()))?;
    let run = &mut file.results.run;
    run.methods = vec![settings.clone()];
    run.columns = vec![scores];
    run.external.clear();
    let (run, sets) = (&file.results.run, &file.results.sets);
    eprintln!(
        "oodscope: {} from {} ({} rows in {} sets), {}",
        file.name,
        args.from.display(),
        run.images.len(),
        sets.len(),
        settings.describe()
    );
    let evaluation = evaluate(run, sets);
    print!("{}", metrics_table(&file.name, &settings, &evaluation));
    if let Some(path) = args.scores {
        let bytes = oodscope_engine::report::csv::scores_csv(run, sets, &file.results.meta.model.classes)
            .map_err(anyhow::Error::msg)?;
        write_output(path, &bytes)?;
    }
    if let Some(path) = args.report {
        let ctx = RunContext {
            model_path: args.from.display().to_string(),
            model_name: &file.name,
            settings: &settings,
            device: "cpu (from a results file)".into(),
            batch_size: 0,
            fit: file.fit_json(),
        };
        let report = build_report(&ctx, sets, run, &evaluation);
        write_output(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if let Some(path) = args.histogram {
        let png = super::score::histogram_of_run(run, sets, &file.name, &settings, args.bins)?;
        write_output(path, &png)?;
    }
    Ok(())
}

/// Outputs of `compare --from`.
pub struct CompareFrom<'a> {
    pub from: &'a Path,
    pub fit: Option<&'a Path>,
    pub head: Option<&'a Path>,
    pub methods: &'a str,
    pub given: &'a [(Method, Params)],
    pub table: Option<&'a Path>,
    pub csv: Option<&'a Path>,
    pub scores: Option<&'a Path>,
    pub report: Option<&'a Path>,
    pub roc: Option<&'a Path>,
}

/// `oodscope compare --from FILE`: every requested method the file can serve, and its own score
/// columns as "external", on one leaderboard.
pub fn compare_from(args: &CompareFrom) -> Result<()> {
    let mut file = FromFile::open(args.from, args.fit, args.head)?;
    file.set_baseline();
    let requested = parse_methods(args.methods).map_err(anyhow::Error::msg)?;
    let mut settings = Vec::new();
    let mut columns = Vec::new();
    let mut not_run = Vec::new();
    for method in requested {
        let params = args
            .given
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        match file.score(method, &params) {
            Ok((s, c)) => {
                settings.push(s);
                columns.push(c);
            }
            Err(why) => not_run.push(format!("{}: {why}", method.name())),
        }
    }
    if let Some((method, _)) = args
        .given
        .iter()
        .find(|(m, _)| !settings.iter().any(|s| s.method == *m))
    {
        bail!("--param for `{method}`, which this comparison does not run");
    }
    let external = std::mem::take(&mut file.results.run.external);
    let mut external_columns: Vec<Vec<f32>> = file.results.run.columns.split_off(file.results.run.methods.len());
    if settings.is_empty() && external.is_empty() {
        bail!(
            "{}: no method can run from it ({})",
            args.from.display(),
            not_run.join("; ")
        );
    }
    columns.append(&mut external_columns);
    let run = &mut file.results.run;
    run.methods = settings;
    run.columns = columns;
    run.external = external;
    let names: Vec<String> = run
        .methods
        .iter()
        .map(|s| s.method.name().to_string())
        .chain(run.external.iter().map(|e| format!("{e} (external)")))
        .collect();
    eprintln!(
        "oodscope: comparing {} methods from {} ({} rows in {} sets): {}",
        names.len(),
        args.from.display(),
        run.images.len(),
        file.results.sets.len(),
        names.join(", ")
    );
    for line in &not_run {
        eprintln!("  not run: {line}");
    }
    let groups: Vec<Option<String>> = file.results.meta.sets.iter().map(|s| s.group.clone()).collect();
    let result = CompareResult {
        run: std::mem::take(&mut file.results.run),
        sets: file.results.sets.clone(),
        tuning: None,
    };
    let board = Leaderboard::new(&result.run, &result.sets, &groups);
    let mut table = leaderboard_markdown(&file.name, &board, &result, &[]);
    for line in &not_run {
        table.push_str(&format!("- not run: {line}\n"));
    }
    print!("{table}");
    if let Some(path) = args.table {
        write_output(path, table.as_bytes())?;
    }
    if let Some(path) = args.csv {
        write_output(path, &leaderboard_csv(&board).map_err(anyhow::Error::msg)?)?;
    }
    if let Some(path) = args.scores {
        let bytes =
            oodscope_engine::report::csv::scores_csv(&result.run, &result.sets, &file.results.meta.model.classes)
                .map_err(anyhow::Error::msg)?;
        write_output(path, &bytes)?;
    }
    if let Some(path) = args.report {
        let ctx = CompareContext {
            model_path: args.from.display().to_string(),
            model_name: &file.name,
            device: "cpu (from a results file)".into(),
            batch_size: 0,
            fit: file.fit_json(),
            unsupported: &[],
        };
        let report = compare_report(&ctx, &board, &result, &groups);
        write_output(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if let Some(path) = args.roc {
        let png = oodscope_engine::report::compare_files::roc_overlay_png(&file.name, &board, &result)
            .map_err(anyhow::Error::msg)?;
        write_output(path, &png)?;
    }
    Ok(())
}
