//! The gradient-sign reuse of `tune::search` (one plan for the whole grid) gives the scores a plan
//! of one setting computes from scratch at each (T, ε) (to 1e-6), for every tunable method, in one
//! batch and in batches of 5; and a tuning run stops on cancel.

use crate::support;

use std::sync::atomic::AtomicBool;

use oodscope_data::{ImageSet, Role, SetSource, decode_file};
use oodscope_engine::Error;
use oodscope_engine::detect::plan::{Plan, dims_of};
use oodscope_engine::model::{DeviceChoice, Model};
use oodscope_engine::score::Method;
use oodscope_engine::tune::search::{batch_grid_scores, grid_scores};
use oodscope_engine::tune::split::{load_validation, split_sets};
use oodscope_engine::tune::{Objective, ParamGrid, TuneOptions, ValidationSplit, tune};
use tch::{Kind, Tensor};

const TOLERANCE: f32 = 1e-6;

/// Every fixture image (ID then OOD) decoded for the model, as one batch.
fn fixture_batch(model: &Model) -> Tensor {
    let fx = support::fixtures();
    let pre = model.card.preprocess();
    let mut pixels = Vec::new();
    let mut n = 0;
    for folder in ["images/id", "images/ood"] {
        let set = ImageSet::open(fx.join(folder).to_str().unwrap(), Role::Id, &model.card.classes).unwrap();
        let SetSource::Folder { files, .. } = &set.source else {
            unreachable!()
        };
        for file in files {
            pixels.extend(decode_file(&file.path, &pre).unwrap());
            n += 1;
        }
    }
    let [c, h, w] = model.card.input_shape();
    Tensor::from_slice(&pixels).view([n, c, h, w]).to_kind(Kind::Float)
}

/// The largest |reuse − from scratch| over the grid and the images.
fn largest_deviation(model: &Model, x: &Tensor, grid: &ParamGrid) -> f32 {
    let reused = batch_grid_scores(model, None, &grid.all_settings(), x).unwrap();
    let mut worst = 0.0f32;
    for (i, scores) in reused.iter().enumerate() {
        let settings = grid.settings(i);
        let scratch = Plan::single(model, &settings, None).unwrap().score_batch(x).unwrap();
        assert_eq!(scores.len(), scratch.scores[0].len());
        for (a, b) in scores.iter().zip(&scratch.scores[0]) {
            assert!(a.is_finite(), "{}: {a}", settings.describe());
            worst = worst.max((a - b).abs());
        }
    }
    worst
}

/// A grid of the method's T (where it has one) and ε values.
fn grid(model: &Model, method: &str, temperatures: &[f64], epsilons: &[f64]) -> ParamGrid {
    let method = Method::named(method);
    let dims = dims_of(model);
    let mut over = vec![("epsilon".to_string(), epsilons.to_vec())];
    if method.params(&dims).iter().any(|s| s.name == "temperature") {
        over.push(("temperature".to_string(), temperatures.to_vec()));
    }
    ParamGrid::for_method(method, &dims, &over).unwrap()
}

#[test]
fn reused_signs_give_the_from_scratch_scores() {
    let fx = support::fixtures();
    let cases = [
        ("models/plain.pt", "odin"),
        ("models/plain.pt", "energy"),
        ("models/grey.pt", "odin"),
        ("models/conf.pt", "confidence"),
        ("models/conf_flat.pt", "confidence"),
        ("models/conf.pt", "odin"),
        ("models/ensemble.toml", "ensemble"),
    ];
    for (path, method) in cases {
        let model = Model::load(&fx.join(path), DeviceChoice::Cpu).unwrap();
        let x = fixture_batch(&model);
        let grid = grid(&model, method, &[1.0, 10.0, 1000.0], &[0.0, 0.0014, 0.004, 0.02]);
        let worst = largest_deviation(&model, &x, &grid);
        eprintln!(
            "{path} {method}: largest deviation {worst:e} over {} settings",
            grid.len()
        );
        assert!(worst <= TOLERANCE, "{path} {method}: deviation {worst}");
    }
}

#[test]
fn batching_the_validation_split_does_not_change_scores() {
    let fx = support::fixtures();
    let model = Model::load(&fx.join("models/plain.pt"), DeviceChoice::Cpu).unwrap();
    let sets = vec![
        ImageSet::open(fx.join("images/id").to_str().unwrap(), Role::Id, &model.card.classes).unwrap(),
        ImageSet::open(fx.join("images/ood").to_str().unwrap(), Role::Ood, &model.card.classes).unwrap(),
    ];
    let splits = split_sets(&sets, ValidationSplit::Count(17)).unwrap();
    let pre = model.card.preprocess();
    let data = load_validation(&sets, &splits, &pre, 4, &AtomicBool::new(false), &mut |_, _| {}).unwrap();
    assert_eq!(data.len(), 34);
    let grid = grid(&model, "odin", &[1.0, 1000.0], &[0.0, 0.002]);
    let settings = grid.all_settings();
    let mut progress = Vec::new();
    let in_fives = grid_scores(
        &model,
        None,
        &settings,
        &data,
        5,
        &AtomicBool::new(false),
        &mut |d, t| progress.push((d, t)),
    )
    .unwrap();
    let whole = grid_scores(
        &model,
        None,
        &settings,
        &data,
        64,
        &AtomicBool::new(false),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(progress.last(), Some(&(34, 34)));
    for (a, b) in in_fives.iter().flatten().zip(whole.iter().flatten()) {
        assert!((a - b).abs() <= TOLERANCE, "{a} vs {b}");
    }
}

#[test]
fn tuning_stops_on_cancel() {
    let fx = support::fixtures();
    let model = Model::load(&fx.join("models/plain.pt"), DeviceChoice::Cpu).unwrap();
    let sets = vec![
        ImageSet::open(fx.join("images/id").to_str().unwrap(), Role::Id, &model.card.classes).unwrap(),
        ImageSet::open("uniform:20", Role::Ood, &model.card.classes).unwrap(),
    ];
    let options = TuneOptions {
        grid: ParamGrid::for_method(Method::named("odin"), &dims_of(&model), &[]).unwrap(),
        objective: Objective::Fpr95,
        validation: ValidationSplit::Count(10),
        tune_on: None,
        batch_size: 4,
    };
    let cancel = AtomicBool::new(false);
    let mut calls = 0;
    let result = tune(&model, None, &sets, &options, &cancel, &mut |p| {
        calls += 1;
        if p.stage == oodscope_engine::tune::Stage::Searching {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    assert!(matches!(result, Err(Error::Cancelled)), "{:?}", result.map(|r| r.best));
    assert!(calls < 20, "stopped late: {calls} progress reports");
}
