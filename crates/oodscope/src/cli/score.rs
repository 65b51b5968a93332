//! `oodscope score`: one method on ID and OOD sets, headless — the table, and CSV / JSON / PNG.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::paths::Paths;
use super::{
    FitArgs, InputArgs, MethodArgs, ResultsArgs, RunArgs, StreamedOutputs, open_sets, progress_bar, report_skipped,
    write_output,
};
use oodscope_data::{ImageSet, Role};
use oodscope_engine::detect::plan::{Plan, dims_of};
use oodscope_engine::evaluate::evaluate;
use oodscope_engine::model::{DeviceChoice, device_name};
use oodscope_engine::pipeline::DecodeSchedule;
use oodscope_engine::report::histogram::{HistogramPlot, Series, histogram_png};
use oodscope_engine::report::json::{RunContext, build_report};
use oodscope_engine::report::table::metrics_table;
use oodscope_engine::results::RunDescription;
use oodscope_engine::score::run::sets_with_role;
use oodscope_engine::score::{Keep, Method, ScoreRun, ScoreSettings, run_scoring_into};

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// The scoring method (`oodscope methods` lists them: msp, odin, energy, maxlogit, knn, vim, …).
    #[arg(long, default_value = "msp")]
    pub method: Method,
    #[command(flatten)]
    pub params: MethodArgs,
    #[command(flatten)]
    pub fit: FitArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub results: ResultsArgs,
    /// Write per-image scores as CSV.
    #[arg(long)]
    pub scores: Option<PathBuf>,
    /// Write the run's report as JSON.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write a PNG histogram of ID vs each OOD set's scores.
    #[arg(long)]
    pub histogram: Option<PathBuf>,
    /// Histogram bins.
    #[arg(long, default_value_t = 60)]
    pub bins: usize,
}

/// Runs `oodscope score`: everything a script needs, headless.
pub fn score_command(args: &ScoreArgs) -> Result<()> {
    if let Some(from) = &args.input.from {
        return score_from_file(args, from);
    }
    let model_path = args.input.model()?;
    let mut paths = Paths::new();
    paths
        .model("--model", model_path)
        .sets("--id", &args.input.id)
        .sets("--ood", &args.input.ood);
    args.fit
        .inputs(&mut paths)
        .output("--results", args.results.results.as_deref())
        .output("--scores", args.scores.as_deref())
        .output("--report", args.report.as_deref())
        .output("--histogram", args.histogram.as_deref())
        .check()
        .map_err(anyhow::Error::msg)?;
    let given = args.params.given().map_err(anyhow::Error::msg)?;
    let model = args.run.load_model(model_path)?;
    let settings = ScoreSettings::new(args.method, &given, &dims_of(&model)).map_err(anyhow::Error::msg)?;
    if let Some(missing) = args.method.missing(&model.capabilities(), true) {
        anyhow::bail!(missing.message(args.method.name(), &model.card.name));
    }
    args.results.check(&model)?;
    let fit = args.fit.obtain(&model, std::slice::from_ref(&settings), &args.run)?;
    let plan = Plan::single(&model, &settings, fit.as_ref())
        .map_err(anyhow::Error::msg)?
        .keeping_features(args.results.save_features);
    let whole = open_sets(&args.input.id, &args.input.ood, &model.card.classes)?;
    let sets = args.results.shard_sets(&whole, args.run.batch_size);
    let total: usize = sets.iter().map(ImageSet::len).sum();
    let shard = args.results.shard.map(|s| format!(", shard {s}")).unwrap_or_default();
    eprintln!(
        "oodscope: {} on {} ({} images in {} sets{shard}), {}",
        model.card.name,
        device_name(model.device),
        total,
        sets.len(),
        settings.describe()
    );
    let mut outputs = StreamedOutputs::create(
        args.results.results.as_deref(),
        args.scores.as_deref(),
        &RunDescription {
            command: "score",
            model: &model,
            model_path,
            methods: std::slice::from_ref(&settings),
            fit: fit.as_ref(),
            shard: args.results.shard_or_whole(),
            whole_sets: &whole,
            groups: &[],
            save_logits: args.results.save_logits,
            save_features: args.results.save_features,
            batch_size: args.run.batch_size,
        },
    )?;
    drop(whole);
    let bar = progress_bar(total as u64, args.run.quiet);
    let cancel = super::interrupt_flag();
    let schedule = DecodeSchedule::for_device(model.device);
    let mut progress = |p: oodscope_engine::pipeline::Progress| {
        bar.set_position(p.done as u64);
        if p.skipped > 0 {
            bar.set_message(format!("{} skipped", p.skipped));
        }
    };
    let run = run_scoring_into(
        &plan,
        &sets,
        args.run.batch_size,
        schedule,
        cancel,
        &mut progress,
        Keep::SCORES,
        &mut outputs.sinks(),
    )?;
    bar.finish_and_clear();
    report_skipped(&run, &sets);

    let evaluation = evaluate(&run, &sets);
    if let Some(note) = args.results.shard_note() {
        print!("{note}");
    }
    print!("{}", metrics_table(&model.card.name, &settings, &evaluation));
    let images = run.images.len() + run.skipped.len();
    eprintln!(
        "scored {images} images in {:.2} s ({})",
        run.elapsed.as_secs_f64(),
        rate(images, run.elapsed.as_secs_f64())
    );

    outputs.finish(&run, &sets)?;
    if let Some(path) = &args.report {
        let ctx = RunContext {
            model_path: model_path.display().to_string(),
            model_name: &model.card.name,
            settings: &settings,
            device: device_name(model.device),
            batch_size: args.run.batch_size,
            fit: fit.as_ref().map(|f| f.info.to_json()),
        };
        let report = build_report(&ctx, &sets, &run, &evaluation);
        write_output(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if let Some(path) = &args.histogram {
        let png = histogram_of_run(&run, &sets, &model.card.name, &settings, args.bins)?;
        write_output(path, &png)?;
    }
    Ok(())
}

/// `score --from FILE`: the file's outputs scored with no model.
fn score_from_file(args: &ScoreArgs, from: &std::path::Path) -> Result<()> {
    let mut paths = Paths::new();
    paths.input("--from", Some(from));
    args.fit
        .inputs(&mut paths)
        .input("--head", args.input.head.as_deref())
        .output("--scores", args.scores.as_deref())
        .output("--report", args.report.as_deref())
        .output("--histogram", args.histogram.as_deref())
        .check()
        .map_err(anyhow::Error::msg)?;
    if args.results.results.is_some() || args.fit.train.is_some() {
        anyhow::bail!(
            "--from scores a results file without images: --results and --train need the model; give --fit FILE for the methods that need a fit"
        );
    }
    let given = args.params.given().map_err(anyhow::Error::msg)?;
    super::from_file::score_from(&super::from_file::ScoreFrom {
        from,
        fit: args.fit.fit.as_deref(),
        head: args.input.head.as_deref(),
        method: args.method,
        params: &given,
        scores: args.scores.as_deref(),
        report: args.report.as_deref(),
        histogram: args.histogram.as_deref(),
        bins: args.bins,
    })
}

/// `4 248 images/s`, or `0.8 images/s` where a whole number would round a slow rate away.
pub fn rate(images: usize, seconds: f64) -> String {
    let per_s = images as f64 / seconds.max(1e-9);
    if per_s >= 100.0 {
        format!("{per_s:.0} images/s")
    } else {
        let digits = format!("{per_s:.3}");
        format!("{} images/s", digits.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// The histogram PNG of a run: pooled ID against each OOD set, with the 95%-TPR threshold.
pub fn histogram_of_run(
    run: &ScoreRun,
    sets: &[ImageSet],
    model_name: &str,
    settings: &ScoreSettings,
    bins: usize,
) -> Result<Vec<u8>> {
    let id: Vec<f32> = sets_with_role(sets, Role::Id)
        .into_iter()
        .flat_map(|s| run.set_scores(s))
        .collect();
    let ood: Vec<(String, Vec<f32>)> = sets_with_role(sets, Role::Ood)
        .into_iter()
        .map(|s| (sets[s].name.clone(), run.set_scores(s)))
        .collect();
    let threshold = oodscope_metrics::SortedScores::new(&id, &id)
        .ok()
        .map(|s| s.threshold_at_95_tpr());
    let mut series = vec![Series {
        name: "ID".into(),
        scores: &id,
    }];
    series.extend(ood.iter().map(|(name, scores)| Series {
        name: format!("OOD: {name}"),
        scores,
    }));
    let plot = HistogramPlot {
        title: format!("{model_name}: {}", settings.describe()),
        x_label: format!("{} score (higher = more in-distribution)", settings.method.title()),
        series,
        threshold,
        threshold_note: "95% TPR".into(),
        bins,
        width: 1200,
        height: 720,
    };
    histogram_png(&plot).map_err(anyhow::Error::msg)
}

/// The headless report of a results file (no display): each stored method's metrics table.
pub fn headless_results(path: &std::path::Path) -> Result<()> {
    let results = oodscope_engine::results::open_with(path, oodscope_engine::results::Load::SCORES)
        .map_err(anyhow::Error::msg)?;
    let (run, sets) = (&results.run, &results.sets);
    for (column, settings) in run.methods.iter().enumerate() {
        let evaluation = oodscope_engine::evaluate::evaluate_column(run, sets, column);
        print!("{}", metrics_table(&results.meta.model.name, settings, &evaluation));
    }
    Ok(())
}

/// The headless demo report: the bundled model on the demo sets, the table and a histogram PNG
/// (`oodscope-demo-histogram.png`), for machines without a display.
pub fn headless_demo() -> Result<()> {
    let root = oodscope_engine::assets::find()?;
    let path = |p: &str| root.join(p).display().to_string();
    let args = ScoreArgs {
        input: InputArgs {
            model: Some(root.join("models/fmnist-resnet.pt")),
            id: vec![path("assets/demo/fmnist-test")],
            ood: vec![
                path("assets/demo/mnist"),
                path("assets/demo/photo-crops"),
                "uniform:1000".into(),
                "gaussian:1000".into(),
            ],
            from: None,
            head: None,
        },
        method: Method::named("odin"),
        params: MethodArgs {
            params: Vec::new(),
            temperature: None,
            epsilon: None,
        },
        fit: FitArgs::default(),
        run: RunArgs {
            batch_size: 64,
            device: DeviceChoice::Auto,
            threads: None,
            quiet: false,
        },
        results: ResultsArgs::default(),
        scores: None,
        report: None,
        histogram: Some(PathBuf::from("oodscope-demo-histogram.png")),
        bins: 60,
    };
    score_command(&args)
}

#[cfg(test)]
mod tests {
    #[test]
    fn slow_rates_keep_their_decimals() {
        assert_eq!(super::rate(4, 5.0), "0.8 images/s");
        assert_eq!(super::rate(4248, 1.0), "4248 images/s");
        assert_eq!(super::rate(30, 2.0), "15 images/s");
        assert_eq!(super::rate(1, 3.0), "0.333 images/s");
    }
}
