//! `oodscope compare` end to end: every method's metrics equal `score --method X`'s, unsupported
//! methods are listed with their reasons, groups average their sets as OpenOOD does, tuning reports
//! the validation choice on the test split (also where the test split would prefer another), and a
//! cancelled comparison writes nothing.

use crate::support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use oodscope_data::{ImageSet, Role};
use oodscope_engine::Error;
use oodscope_engine::compare::{CompareOptions, Leaderboard, Stage, TuneSpec, compare};
use oodscope_engine::detect::plan::{Plan, dims_with_fit};
use oodscope_engine::evaluate::evaluate_column;
use oodscope_engine::fit::{FitOptions, fit_model};
use oodscope_engine::model::{DeviceChoice, Model};
use oodscope_engine::score::{Method, ScoreSettings, run_scoring};
use oodscope_engine::stats::Fit;
use oodscope_engine::tune::split::drop_validation_scores;
use oodscope_engine::tune::{Objective, ValidationSplit};
use serde_json::Value;

fn fx(rel: &str) -> String {
    support::fixtures().join(rel).to_str().unwrap().to_string()
}

use support::oodscope_with_cache as oodscope;

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const METRICS: [&str; 6] = [
    "fpr_at_95_tpr",
    "fpr_at_95_tpr_ood_positive",
    "detection_error",
    "auroc",
    "aupr_in",
    "aupr_out",
];

/// Compares every method of a `compare` report with a `score --method X` run of the same model and sets.
fn assert_compare_equals_score(model: &str, extra: &[&str], id: &str, ood: &[&str], expected_methods: usize) {
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let report = out.path().join("compare.json");
    let mut args = vec!["compare", "--model", model, "--device", "cpu", "--quiet", "--id", id];
    for o in ood {
        args.extend(["--ood", o]);
    }
    args.extend(extra);
    args.extend(["--report", report.to_str().unwrap()]);
    let (code, table, err) = oodscope(cache.path(), &args);
    assert_eq!(code, 0, "{err}");
    let compared = read_json(&report);
    let methods = compared["methods"].as_object().unwrap();
    assert_eq!(methods.len(), expected_methods, "{table}");
    if methods.contains_key("msp") {
        assert!(
            table.contains("| **Baseline (MSP)** |"),
            "the baseline is marked: {table}"
        );
        assert_eq!(methods["msp"]["baseline"], true);
    }
    for (name, entry) in methods {
        let single = out.path().join(format!("{name}.json"));
        let mut args = vec![
            "score", "--model", model, "--device", "cpu", "--quiet", "--method", name, "--id", id,
        ];
        for o in ood {
            // `score` takes no groups: the set spec after `GROUP:`.
            let spec = o
                .split_once(':')
                .filter(|(g, _)| *g == "near" || *g == "far")
                .map_or(*o, |(_, s)| s);
            args.extend(["--ood", spec]);
        }
        args.extend(extra);
        args.extend(["--report", single.to_str().unwrap()]);
        let (code, _, err) = oodscope(cache.path(), &args);
        assert_eq!(code, 0, "score --method {name}: {err}");
        let scored = read_json(&single);
        assert_eq!(
            scored["settings"]["params"], entry["params"],
            "{name}: the same parameters"
        );
        let sets = scored["metrics"].as_object().unwrap();
        assert_eq!(sets.len(), ood.len());
        for (set, metrics) in sets {
            for metric in METRICS {
                let a = metrics[metric].as_f64().unwrap();
                let b = entry["metrics"][set][metric].as_f64().unwrap_or(f64::NAN);
                assert!(
                    (a - b).abs() <= 1e-12,
                    "{name} on {set}, {metric}: score {a}, compare {b}"
                );
            }
        }
    }
}

#[test]
fn every_method_of_a_comparison_equals_its_own_score_run() {
    // A model with features, a head and a confidence branch, fitted on labelled training images:
    // every method but the ensemble's and the three on inner blocks.
    assert_compare_equals_score(
        &fx("features/models/feat_conf.pt"),
        &["--train", &fx("features/fit"), "--batch-size", "7"],
        &fx("features/images/id"),
        &["near:uniform:60", &fx("features/images/ood")],
        Method::all().count() - 4,
    );
    // The same network returning its inner blocks (no confidence branch): its methods too, one
    // pass and one fit for all.
    assert_compare_equals_score(
        &fx("features/models/feat_blocks.pt"),
        &["--train", &fx("features/fit"), "--batch-size", "7"],
        &fx("features/images/id"),
        &["near:uniform:60", &fx("features/images/ood")],
        Method::all().count() - 2,
    );
    // A leave-out ensemble: its own method and the logit methods that its averaged logits allow.
    let ensemble_methods = Method::all()
        .filter(|m| {
            m.missing(
                &Model::load(Path::new(&fx("models/ensemble.toml")), DeviceChoice::Cpu)
                    .unwrap()
                    .capabilities(),
                false,
            )
            .is_none()
        })
        .count();
    assert_compare_equals_score(
        &fx("models/ensemble.toml"),
        &[],
        &fx("images/id"),
        &[&fx("images/ood")],
        ensemble_methods,
    );
}

#[test]
fn unsupported_methods_are_listed_with_reasons_and_groups_average_their_sets() {
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (report, table_md, csv, roc) = (
        out.path().join("r.json"),
        out.path().join("t.md"),
        out.path().join("t.csv"),
        out.path().join("roc.png"),
    );
    let (code, table, err) = oodscope(
        cache.path(),
        &[
            "compare",
            "--model",
            &fx("features/models/feat.pt"),
            "--device",
            "cpu",
            "--quiet",
            "--methods",
            "energy,knn,confidence,vim,odin",
            "--id",
            &fx("features/images/id"),
            "--ood",
            &format!("near:{}", fx("features/images/ood")),
            "--ood",
            "far:uniform:40",
            "--ood",
            "far:gaussian:50",
            "--report",
            report.to_str().unwrap(),
            "--table",
            table_md.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
            "--roc",
            roc.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    // No fit was given, and the model has no confidence branch: both said, nothing silently dropped.
    let json = read_json(&report);
    let unsupported = json["unsupported"].as_object().unwrap();
    let mut names: Vec<&str> = unsupported.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["confidence", "knn", "vim"]);
    assert!(
        unsupported["knn"].as_str().unwrap().contains("--train"),
        "{unsupported:?}"
    );
    assert!(
        unsupported["confidence"]
            .as_str()
            .unwrap()
            .contains("confidence branch")
    );
    assert!(table.contains("Not run on this model:\n- knn: needs a fit"), "{table}");
    assert!(err.contains("not run: method `vim`"), "{err}");
    // The baseline joins the three that run, ranked by mean AUROC.
    let ranking: Vec<&str> = json["ranking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ranking.len(), 3);
    assert!(ranking.contains(&"msp") && ranking.contains(&"energy") && ranking.contains(&"odin"));
    let mean_auroc = |name: &str| json["methods"][name]["mean_metrics"]["auroc"].as_f64().unwrap();
    assert!(
        ranking.windows(2).all(|w| mean_auroc(w[0]) >= mean_auroc(w[1])),
        "{ranking:?}"
    );
    assert_eq!(json["methods"]["msp"]["baseline"], true);
    // Groups: the plain mean of their sets' metrics (OpenOOD's), and the overall mean over all sets.
    assert_eq!(json["groups"]["far"], serde_json::json!(["uniform", "gaussian"]));
    for name in ranking {
        let m = &json["methods"][name];
        for metric in METRICS {
            let set = |s: &str| m["metrics"][s][metric].as_f64().unwrap();
            let far = m["group_metrics"]["far"][metric].as_f64().unwrap();
            assert!(
                (far - (set("uniform") + set("gaussian")) / 2.0).abs() < 1e-15,
                "{name} {metric}"
            );
            let near = m["group_metrics"]["near"][metric].as_f64().unwrap();
            assert_eq!(near, set("ood"));
            let mean = m["mean_metrics"][metric].as_f64().unwrap();
            assert!((mean - (set("ood") + set("uniform") + set("gaussian")) / 3.0).abs() < 1e-15);
        }
    }
    // The table file is what was printed; the CSV has a row per method and scope; the PNG is a PNG.
    assert_eq!(std::fs::read_to_string(&table_md).unwrap(), table);
    assert!(table.contains("| near AUROC | far AUROC |"), "{table}");
    let mut reader = csv::Reader::from_path(&csv).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3 * (3 + 2 + 1), "3 methods × (3 sets, 2 groups, the mean)");
    let auroc_col = reader.headers().unwrap().iter().position(|h| h == "auroc").unwrap();
    let msp_mean = rows.iter().find(|r| &r[1] == "msp" && &r[4] == "mean").unwrap();
    // (serde_json's default float parsing may be 1 ulp off; the CSV holds the shortest exact text.)
    assert!((msp_mean[auroc_col].parse::<f64>().unwrap() - mean_auroc("msp")).abs() < 1e-15);
    let png = std::fs::read(&roc).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let image = image::load_from_memory(&png).unwrap();
    assert_eq!((image.width(), image.height()), (1200, 900));
}

fn fitted(model: &Model) -> Fit {
    let dir = tempfile::tempdir().unwrap();
    let train = ImageSet::open(&fx("features/fit"), Role::Id, &model.card.classes).unwrap();
    let path = dir.path().join("fit.safetensors");
    let options = FitOptions {
        batch_size: 16,
        max_images: None,
        class_covariances: false,
    };
    fit_model(model, &train, &options, &path, &AtomicBool::new(false), &mut |_| {}).unwrap();
    Fit::load(&path, model, usize::MAX).unwrap()
}

#[test]
fn tuning_reports_the_validation_choice_on_the_test_split() {
    let model = Model::load(Path::new(&fx("features/models/feat.pt")), DeviceChoice::Cpu).unwrap();
    let fit = fitted(&model);
    let dims = dims_with_fit(&model, Some(&fit));
    let sets = vec![
        ImageSet::open(&fx("features/images/id"), Role::Id, &model.card.classes).unwrap(),
        ImageSet::open(&fx("features/images/ood"), Role::Ood, &model.card.classes).unwrap(),
        ImageSet::open("gaussian:80", Role::Ood, &model.card.classes).unwrap(),
    ];
    let methods = ["msp", "knn", "react", "ash-p", "vim", "gen", "odin"];
    let settings: Vec<ScoreSettings> = methods
        .iter()
        .map(|m| ScoreSettings::default_for(Method::named(m), &dims))
        .collect();
    let options = CompareOptions {
        settings,
        tune: Some(TuneSpec {
            objective: Objective::Auroc,
            validation: ValidationSplit::Fraction(0.4),
        }),
        batch_size: 16,
        keep_features: false,
    };
    let mut stages = Vec::new();
    let result = compare(&model, Some(&fit), &sets, &options, &AtomicBool::new(false), &mut |p| {
        if stages.last() != Some(&p.stage) {
            stages.push(p.stage);
        }
    })
    .unwrap();
    assert_eq!(stages, [Stage::Decoding, Stage::Searching, Stage::Scoring]);
    let tuning = result.tuning.as_ref().unwrap();
    let board = Leaderboard::new(&result.run, &result.sets, &[]);
    let mut differs = 0;
    for (m, search) in tuning.searches.iter().enumerate() {
        let Some(search) = search else {
            assert_eq!(methods[m], "msp", "only MSP has no parameters");
            continue;
        };
        // The run scored the validation choice, on the test split only.
        let chosen = search.grid.settings(search.best.unwrap());
        assert_eq!(result.run.methods[m], chosen, "{}", methods[m]);
        // Every grid setting on the same test split: the test-optimal one may differ from the
        // choice; what is reported is the choice's, not the best the test split could show.
        let grid = search.grid.all_settings();
        let plan = Plan::new(&model, grid.clone(), Some(&fit)).unwrap();
        let mut every = run_scoring(&plan, &result.sets, 16, &AtomicBool::new(false), &mut |_| {}).unwrap();
        // A noise set's test split is its images after the validation ones (they are seeded by index).
        drop_validation_scores(&mut every, &sets, &tuning.splits);
        let mean_auroc = |column: usize| {
            let e = evaluate_column(&every, &result.sets, column);
            e.ood.iter().map(|o| o.method.as_ref().unwrap().auroc).sum::<f64>() / e.ood.len() as f64
        };
        let test_aurocs: Vec<f64> = (0..grid.len()).map(mean_auroc).collect();
        let test_best = (0..grid.len()).fold(0, |b, i| if test_aurocs[i] > test_aurocs[b] { i } else { b });
        let row = board.row(methods[m]).unwrap();
        let reported = row.mean.unwrap().auroc;
        assert!(
            (reported - test_aurocs[search.best.unwrap()]).abs() < 1e-12,
            "{}: reported {reported}, the choice scores {}",
            methods[m],
            test_aurocs[search.best.unwrap()]
        );
        if test_aurocs[test_best] > test_aurocs[search.best.unwrap()] + 1e-9 {
            differs += 1;
            assert!(reported < test_aurocs[test_best], "{}", methods[m]);
        }
        // The choice is the validation split's best (first in grid order among equals).
        let objectives: Vec<f64> = search.results.iter().map(|r| r.objective.unwrap()).collect();
        let best = objectives.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(
            search.best.unwrap(),
            objectives.iter().position(|&o| o == best).unwrap()
        );
    }
    assert!(
        differs >= 1,
        "the fixture must have a method whose test-optimal setting is not the validation choice"
    );
    // The test split excludes the validation images: 60% of each folder; the noise set's too.
    let counts: Vec<usize> = (0..sets.len())
        .map(|s| result.run.images.iter().filter(|i| i.set == s).count())
        .collect();
    let expected: Vec<usize> = tuning.splits.iter().map(|s| s.test).collect();
    assert_eq!(counts, expected);
}

#[test]
fn a_cancelled_comparison_returns_cancelled_and_the_cli_writes_nothing() {
    // In the library: cancel after the first batch.
    let model = Model::load(Path::new(&fx("features/models/feat.pt")), DeviceChoice::Cpu).unwrap();
    let sets = vec![
        ImageSet::open(&fx("features/images/id"), Role::Id, &model.card.classes).unwrap(),
        ImageSet::open("uniform:500", Role::Ood, &model.card.classes).unwrap(),
    ];
    let dims = dims_with_fit(&model, None);
    let options = CompareOptions {
        settings: ["msp", "odin", "energy"]
            .iter()
            .map(|m| ScoreSettings::default_for(Method::named(m), &dims))
            .collect(),
        tune: None,
        batch_size: 8,
        keep_features: false,
    };
    let cancel = AtomicBool::new(false);
    let result = compare(&model, None, &sets, &options, &cancel, &mut |p| {
        if p.done >= 8 {
            cancel.store(true, Ordering::Relaxed);
        }
    });
    assert!(matches!(result, Err(Error::Cancelled)), "{:?}", result.map(|_| ()));

    // On the command line: Ctrl-C (SIGINT) mid-run ends it with one line, exit 130 and no output files.
    let out = tempfile::tempdir().unwrap();
    let report = out.path().join("r.json");
    let table = out.path().join("t.md");
    let child = Command::new(env!("CARGO_BIN_EXE_oodscope"))
        .args([
            "compare",
            "--model",
            &fx("features/models/feat.pt"),
            "--device",
            "cpu",
            "--batch-size",
            "4",
            "--id",
            &fx("features/images/id"),
            "--ood",
            "uniform:400000",
            "--methods",
            "odin,energy,gradnorm",
            "--param",
            "energy.epsilon=0.002",
            "--report",
            report.to_str().unwrap(),
            "--table",
            table.to_str().unwrap(),
        ])
        .env("OODSCOPE_CACHE_DIR", out.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it is scoring (its progress bar draws), then interrupt.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{err}");
    assert_eq!(
        err.lines().last(),
        Some(
            "oodscope: interrupted (SIGINT): stopping after this batch and removing temporary files (Ctrl-C again stops at once)"
        ),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.iter()
            .all(|f| f != "r.json" && f != "t.md" && !f.to_string_lossy().contains(".tmp")),
        "{left:?}"
    );
}

#[test]
fn a_method_whose_statistics_the_fit_lacks_is_listed_not_run_and_the_rest_compare() {
    // A fit of unlabelled images has no fitted temperature: `tempscale` cannot run, every other
    // method of the comparison does.
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let report = out.path().join("r.json");
    let (code, _, err) = oodscope(
        cache.path(),
        &[
            "compare",
            "--model",
            &fx("features/models/feat.pt"),
            "--device",
            "cpu",
            "--quiet",
            "--methods",
            "energy,knn,tempscale,she",
            "--train",
            &fx("features/fit_unlabelled"),
            "--id",
            &fx("features/images/id"),
            "--ood",
            &fx("features/images/ood"),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let json = read_json(&report);
    let unsupported = json["unsupported"].as_object().unwrap();
    assert_eq!(unsupported.keys().collect::<Vec<_>>(), ["tempscale"], "{unsupported:?}");
    assert!(
        unsupported["tempscale"]
            .as_str()
            .unwrap()
            .contains("refit on a labelled folder")
    );
    assert!(
        err.contains("not run: method `tempscale` needs statistics this fit does not hold"),
        "{err}"
    );
    let mut ranking: Vec<&str> = json["ranking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    ranking.sort_unstable();
    assert_eq!(ranking, ["energy", "knn", "msp", "she"]);
}
