//! `tune` chooses what an exhaustive PyTorch search chooses (tests/fixtures/make_tune_refs.py scores
//! every (T, ε) from scratch): same split sizes, every grid objective to 1e-6, the same best setting,
//! and the same test-split metrics at it, for ODIN, energy, the ensemble and the confidence branch.

use crate::support;

use std::sync::atomic::AtomicBool;

use oodscope_data::{ImageSet, Role};
use oodscope_engine::detect::plan::dims_of;
use oodscope_engine::model::{DeviceChoice, Model};
use oodscope_engine::score::Method;
use oodscope_engine::tune::{Objective, ParamGrid, TuneOptions, tune};
use oodscope_metrics::DetectionMetrics;
use serde_json::Value;

const TOLERANCE: f64 = 1e-6;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn assert_close(what: &str, actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() <= TOLERANCE,
        "{what}: oodscope {actual}, PyTorch reference {expected}"
    );
}

fn assert_metrics(what: &str, actual: &DetectionMetrics, expected: &Value) {
    assert_close(
        &format!("{what} fpr95"),
        actual.fpr_at_95_tpr,
        expected["fpr_at_95_tpr"].as_f64().unwrap(),
    );
    assert_close(
        &format!("{what} detection error"),
        actual.detection_error,
        expected["detection_error"].as_f64().unwrap(),
    );
    assert_close(
        &format!("{what} auroc"),
        actual.auroc,
        expected["auroc"].as_f64().unwrap(),
    );
    assert_close(
        &format!("{what} aupr-in"),
        actual.aupr_in,
        expected["aupr_in"].as_f64().unwrap(),
    );
    assert_close(
        &format!("{what} aupr-out"),
        actual.aupr_out,
        expected["aupr_out"].as_f64().unwrap(),
    );
}

#[test]
fn tune_matches_an_exhaustive_pytorch_search() {
    let fx = support::fixtures();
    let path = fx.join("tune_refs.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (scripts/test.sh makes it with make_tune_refs.py)",
            path.display()
        )
    });
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(
        cases.len() >= 5,
        "expected several reference cases, got {}",
        cases.len()
    );
    let mut distinct_choices = std::collections::HashSet::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let model = Model::load(&fx.join(case["model"].as_str().unwrap()), DeviceChoice::Cpu).unwrap();
        let classes = &model.card.classes;
        let sets = vec![
            ImageSet::open(
                fx.join(case["id"].as_str().unwrap()).to_str().unwrap(),
                Role::Id,
                classes,
            )
            .unwrap(),
            ImageSet::open(
                fx.join(case["ood"].as_str().unwrap()).to_str().unwrap(),
                Role::Ood,
                classes,
            )
            .unwrap(),
        ];
        let objective: Objective = case["objective"].as_str().unwrap().parse().unwrap();
        let method: Method = case["method"].as_str().unwrap().parse().unwrap();
        let dims = dims_of(&model);
        // The reference's T grid applies to the methods with a T (the confidence branch has none).
        let mut axes = vec![("epsilon".to_string(), floats(&case["epsilons"]))];
        if method.params(&dims).iter().any(|s| s.name == "temperature") {
            axes.push(("temperature".to_string(), floats(&case["temperatures"])));
        }
        let options = TuneOptions {
            grid: ParamGrid::for_method(method, &dims, &axes).unwrap(),
            objective,
            validation: case["validation"].as_str().unwrap().parse().unwrap(),
            tune_on: None,
            batch_size: 16,
        };
        let result = tune(&model, None, &sets, &options, &AtomicBool::new(false), &mut |_| {}).unwrap();

        let counts = |key: &str, role: &str| case[key][role].as_u64().unwrap() as usize;
        assert_eq!(
            result.validation_scored,
            [counts("validation_counts", "id"), counts("validation_counts", "ood")],
            "{name}: validation split sizes"
        );
        assert_eq!(
            result.test_split_scored(),
            [counts("test_counts", "id"), counts("test_counts", "ood")],
            "{name}: test split sizes"
        );

        let grid = case["grid"].as_array().unwrap();
        assert_eq!(result.results.len(), grid.len(), "{name}: grid size");
        // T where the method has one (the reference writes T = 1 for the confidence branch).
        let t_of = |p: &oodscope_engine::detect::Params| p.value("temperature").unwrap_or(1.0);
        for (ours, theirs) in result.results.iter().zip(grid) {
            let (t, eps) = (t_of(&ours.params), ours.params.get("epsilon").unwrap());
            let what = format!("{name} T={t} ε={eps}");
            assert_eq!(t, theirs["temperature"].as_f64().unwrap(), "{what}");
            assert_eq!(eps, theirs["epsilon"].as_f64().unwrap(), "{what}");
            let metrics = ours.per_set[0].metrics.as_ref().unwrap();
            assert_close(
                &format!("{what} fpr95"),
                metrics.fpr_at_95_tpr,
                theirs["fpr_at_95_tpr"].as_f64().unwrap(),
            );
            assert_close(
                &format!("{what} auroc"),
                metrics.auroc,
                theirs["auroc"].as_f64().unwrap(),
            );
            assert_close(
                &format!("{what} objective"),
                ours.objective.unwrap(),
                theirs["objective"].as_f64().unwrap(),
            );
        }

        let best = &case["best"];
        assert_eq!(
            result.best,
            best["index"].as_u64().unwrap() as usize,
            "{name}: best setting"
        );
        assert_eq!(
            t_of(&result.chosen.params),
            best["temperature"].as_f64().unwrap(),
            "{name}"
        );
        assert_eq!(
            result.chosen.get("epsilon").unwrap(),
            best["epsilon"].as_f64().unwrap(),
            "{name}"
        );
        distinct_choices.insert(result.best);

        let test = &result.test_evaluation.ood[0];
        assert_metrics(&format!("{name} test"), test.method.as_ref().unwrap(), &case["test"]);
        match (&test.baseline, &case["test_baseline"]) {
            (Some(ours), theirs) if !theirs.is_null() => {
                assert_metrics(&format!("{name} test baseline"), ours.as_ref().unwrap(), theirs);
            }
            (None, Value::Null) => {}
            (ours, theirs) => panic!("{name}: baseline {ours:?} vs reference {theirs}"),
        }
    }
    // The cases must exercise real choices, not only the first-setting tie-break.
    assert!(distinct_choices.len() >= 3, "choices: {distinct_choices:?}");
}
