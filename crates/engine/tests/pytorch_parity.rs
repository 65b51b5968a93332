//! oodscope's per-image scores equal PyTorch's (computed in Python by make_fixtures.py) to 1e-5,
//! for every method and (T, ε) in the manifest, at batch size 1 and 64, with decoding in turn with the
//! model (the CPU's schedule) and overlapped (a GPU's).

use crate::support;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use oodscope_data::{ImageSet, Role};
use oodscope_engine::detect::plan::Plan;
use oodscope_engine::model::{DeviceChoice, Model};
use oodscope_engine::pipeline::DecodeSchedule;
use oodscope_engine::score::run_scoring_with;

#[derive(Debug)]
struct Expected {
    score: f64,
    pred: usize,
    pred_prob: f64,
}

fn read_reference(path: &std::path::Path) -> HashMap<String, Expected> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            (
                f[0].to_string(),
                Expected {
                    score: f[1].parse().unwrap(),
                    pred: f[2].parse().unwrap(),
                    pred_prob: f[3].parse().unwrap(),
                },
            )
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * b.abs().max(1.0)
}

#[test]
fn scores_match_pytorch_for_every_method_and_setting() {
    let fx = support::fixtures();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.join("reference/manifest.json")).unwrap()).unwrap();
    let cases = manifest.as_array().unwrap();
    assert!(cases.len() >= 20, "expected many reference cases, got {}", cases.len());
    let mut checked = 0;
    let mut worst = 0.0f64;
    for case in cases {
        let model = Model::load(&fx.join(case["model"].as_str().unwrap()), DeviceChoice::Cpu).unwrap();
        let method = case["method"].as_str().unwrap();
        let (t, eps) = (case["temperature"].as_f64().unwrap(), case["epsilon"].as_f64().unwrap());
        let settings = support::t_eps(&model, method, t, eps);
        let plan = Plan::single(&model, &settings, None).unwrap();
        let expected = read_reference(&fx.join(case["file"].as_str().unwrap()));
        let sets = vec![
            ImageSet::open(fx.join("images/id").to_str().unwrap(), Role::Id, &model.card.classes).unwrap(),
            ImageSet::open(fx.join("images/ood").to_str().unwrap(), Role::Ood, &model.card.classes).unwrap(),
        ];
        let mut by_batch = Vec::new();
        let runs = [
            (1, DecodeSchedule::InTurn),
            (64, DecodeSchedule::InTurn),
            (64, DecodeSchedule::Overlapped),
        ];
        for (batch_size, schedule) in runs {
            let run =
                run_scoring_with(&plan, &sets, batch_size, schedule, &AtomicBool::new(false), &mut |_| {}).unwrap();
            assert!(
                run.skipped.is_empty(),
                "fixture images must all decode: {:?}",
                run.skipped
            );
            assert_eq!(run.images.len(), expected.len(), "{case}");
            for (s, &score) in run.images.iter().zip(run.scores()) {
                let rel = std::path::Path::new(&*s.path)
                    .strip_prefix(&fx)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                let want = expected.get(&rel).unwrap_or_else(|| panic!("no reference for {rel}"));
                let what = format!(
                    "{} {} T={t} eps={eps} batch {batch_size} {schedule:?}: {rel}",
                    case["model"], method
                );
                assert!(
                    close(score as f64, want.score),
                    "{what}: score {score} vs PyTorch {}",
                    want.score
                );
                assert_eq!(s.pred as usize, want.pred, "{what}: predicted class");
                assert!(
                    close(s.pred_prob as f64, want.pred_prob),
                    "{what}: pred_prob {} vs {}",
                    s.pred_prob,
                    want.pred_prob
                );
                worst = worst.max((score as f64 - want.score).abs() / want.score.abs().max(1.0));
                checked += 1;
            }
            by_batch.push(run.scores().to_vec());
        }
        for (a, b) in by_batch[0].iter().zip(&by_batch[1]) {
            assert!(close(*a as f64, *b as f64), "batch size changed a score: {a} vs {b}");
        }
        assert_eq!(by_batch[1], by_batch[2], "the decode schedule changed a score");
    }
    eprintln!("checked {checked} scores against PyTorch; largest deviation {worst:.2e}");
}
