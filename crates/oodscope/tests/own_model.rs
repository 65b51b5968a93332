//! Your own model, end to end: real architectures exported by scripts/export_model.py (made by
//! tests/fixtures/make_own_models.py) score like the eager PyTorch model with the same
//! preprocessing (MSP and KNN to 1e-4 relative; ODIN at T = 10, ε = 0.002 in two parts that no
//! CPU's kernels can move: its step's signs against float64's, and its score of the same stepped
//! input to 1e-4; see `odin_matches_eager_pytorch`). Each is the exporter's frozen file (its
//! default: head beside as safetensors) but two plain traced files, one asked for with `--no-freeze`
//! and one the exporter fell back to when its frozen file failed the check; every other
//! model format gets one line naming it and the command that converts it; models that are wrong in
//! subtle ways (no derivative, training mode, float16, batch size frozen at 1) get one line that
//! says so, and what still works, works.

use crate::support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

const TOLERANCE: f64 = 1e-4;
/// The share of ODIN's determined gradient signs (|∇| above float32's measured noise, see
/// make_own_models.py) that may differ from float64's: a max-pool or ReLU switching between two
/// nearly equal inputs on another CPU moves a small region's signs (0.06% here for the ONNX graph,
/// whose converted operators round otherwise); a wrong step (another loss, class or sign) differs on
/// a large share (a wrong class's loss: tens of percent; the opposite sign: all).
const ODIN_SIGNS_OFF: f64 = 1e-2;

/// The own-model fixtures (scripts/test.sh makes them).
fn own() -> PathBuf {
    support::fixture_folder("own", "make_own_models.py")
}

fn path(rel: &str) -> String {
    own().join(rel).to_str().unwrap().to_string()
}

fn references() -> Value {
    support::references(&own())
}

use support::oodscope_with_cache as oodscope;

/// `oodscope score` of the fixture images with one method; the per-image scores by file name.
fn scores(model: &str, method: &str, extra: &[&str]) -> HashMap<String, f64> {
    let cache = tempfile::tempdir().unwrap();
    let csv = cache.path().join("scores.csv");
    let (id, ood) = (path("images/id"), path("images/ood"));
    let mut args = vec![
        "score",
        "--model",
        model,
        "--method",
        method,
        "--id",
        &id,
        "--ood",
        &ood,
        "--quiet",
        "--device",
        "cpu",
        "--scores",
        csv.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, _, err) = oodscope(cache.path(), &args);
    assert_eq!(code, 0, "oodscope score --method {method} on {model}: {err}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (path_col, score_col) = (column("path"), column("score"));
    text.lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let name = Path::new(fields[path_col])
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            (name, fields[score_col].parse().unwrap())
        })
        .collect()
}

/// Scores `name` (a model of references.json) with MSP, ODIN and KNN and compares every image with
/// the eager model's score; returns the largest relative difference per method.
fn matches_eager_pytorch(name: &str) -> Vec<(String, f64)> {
    let refs = references();
    let case = &refs["models"][name];
    assert!(case.is_object(), "no reference for {name}");
    let model = path(case["model"].as_str().unwrap());
    exported_as(name, case["export"].as_str().unwrap());
    let k = format!("k={}", refs["knn"]["k"].as_u64().unwrap());
    let train = path("images/train");
    let mut runs: Vec<(&str, Vec<&str>)> = vec![("msp", vec![]), ("knn", vec!["--train", &train, "--param", &k])];
    // A model exported with --blocks also has RankFeat's reference.
    if case["scores"].get("rankfeat").is_some() {
        runs.push(("rankfeat", vec![]));
    }
    let mut worst = Vec::new();
    for (method, extra) in runs {
        let got = scores(&model, method, &extra);
        let want = case["scores"][method].as_object().unwrap();
        assert_eq!(
            got.len(),
            want.len(),
            "{name} {method}: scored {} images, expected {}",
            got.len(),
            want.len()
        );
        let mut largest = 0.0f64;
        for (image, expected) in want {
            let expected = expected.as_f64().unwrap();
            let score = got[image];
            let relative = (score - expected).abs() / expected.abs().max(1e-6);
            assert!(
                relative <= TOLERANCE,
                "{name} {method} {image}: oodscope {score}, eager PyTorch {expected} (relative {relative:.1e})"
            );
            largest = largest.max(relative);
        }
        eprintln!("{name} {method}: max relative difference to eager PyTorch {largest:.1e}");
        worst.push((method.to_string(), largest));
    }
    worst.push(("odin".to_string(), odin_matches_eager_pytorch(name, &refs, &model)));
    worst
}

/// The fixture `name` is the exporter's frozen file (`export = "frozen"`: its card names the head
/// file beside it) or the plain traced one (the head a submodule, no head file).
fn exported_as(name: &str, export: &str) {
    let card = std::fs::read_to_string(own().join(format!("models/{name}.toml"))).unwrap();
    let head_file = own().join(format!("models/{name}.head.safetensors"));
    match export {
        "frozen" => {
            assert!(card.contains(&format!("head = \"{name}.head.safetensors\"")), "{card}");
            assert!(head_file.is_file(), "{name}: no head file beside the frozen model");
        }
        "plain" => {
            assert!(card.contains("head = \"model."), "{card}");
            assert!(!head_file.exists(), "{name}: a head file beside the plain model");
        }
        other => panic!("{name}: exported as {other:?}"),
    }
}

/// ODIN, `max softmax(ℓ(x̃)/T)` with `x̃ = x − ε·sign(∇ₓL)`, checked in parts that do not depend on
/// which kernels libtorch picks on this CPU (elements of ∇ₓL near zero, or in a region where a
/// max-pool switches, can take either sign, and move the score by more than 1e-4):
/// 1. the step: oodscope's signs (the engine's `perturbation`, on the batch `score` makes) equal
///    float64's wherever the reference found |∇| above float32's noise, but for a share of
///    `ODIN_SIGNS_OFF`;
/// 2. the score of a stepped input: oodscope given the reference's x̃ (stepped with float64's
///    signs; ODIN at ε = 0 scores x̃ as it is) equals eager PyTorch's score of it, to 1e-4;
/// 3. `oodscope score --method odin` is that score of oodscope's own x̃ (the two compose).
///
/// Returns the largest relative difference of part 2.
fn odin_matches_eager_pytorch(name: &str, refs: &Value, model_path: &str) -> f64 {
    use oodscope_data::decode_file;
    use oodscope_engine::model::{DeviceChoice, Model};
    let case = &refs["models"][name];
    let t = refs["odin"]["temperature"].as_f64().unwrap();
    let eps = refs["odin"]["epsilon"].as_f64().unwrap();
    let model = Model::load(Path::new(model_path), DeviceChoice::Cpu).unwrap();
    let stepping = support::settings(&model, "odin", &[("temperature", t), ("epsilon", eps)]);
    let at_input = support::settings(&model, "odin", &[("temperature", t), ("epsilon", 0.0)]);
    // The images in the reference's order: the ID folder's, then the OOD folder's, as `score` batches them.
    let order: Vec<&str> = case["odin_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let pre = model.card.preprocess();
    let mut pixels = Vec::new();
    for image in &order {
        let folder = if image.starts_with("id_") {
            "images/id"
        } else {
            "images/ood"
        };
        pixels.extend(decode_file(&own().join(folder).join(image), &pre).unwrap());
    }
    let [c, h, w] = model.card.input_shape();
    let batch = |values: &[f32]| tch::Tensor::from_slice(values).view([order.len() as i64, c, h, w]);
    let x = batch(&pixels);

    // 1. The step's signs against float64's.
    let signs: ndarray::Array4<i8> =
        ndarray_npy::read_npy(own().join("models").join(case["odin_signs"].as_str().unwrap())).unwrap();
    let reference: Vec<i8> = signs.iter().copied().collect();
    assert_eq!(
        reference.len(),
        pixels.len(),
        "{name}: the reference's signs have another shape"
    );
    let step = oodscope_engine::detect::plan::perturbation(&model, &x, &stepping, None).unwrap();
    assert!(
        step.iter()
            .all(|s| *s == 0.0 || (f64::from(s.abs()) - eps).abs() <= 1e-9),
        "{name} odin: a step element is not ±ε in pixel units"
    );
    let ours = |s: f32| -> i8 {
        if s < 0.0 {
            1
        } else if s > 0.0 {
            -1
        } else {
            0
        }
    }; // step = −ε·sign(∇)
    let determined = reference.iter().filter(|r| r.abs() == 2).count();
    let differing = reference
        .iter()
        .zip(&step)
        .filter(|(r, s)| r.abs() == 2 && r.signum() != ours(**s))
        .count();
    eprintln!(
        "{name} odin: {differing} of {determined} determined gradient signs differ from float64's ({:.3}% of all below float32's noise)",
        100.0 * case["odin_undetermined"].as_f64().unwrap()
    );
    assert!(
        determined > reference.len() / 20,
        "{name}: too few determined signs to check the step"
    );
    assert!(
        differing as f64 <= ODIN_SIGNS_OFF * determined as f64,
        "{name} odin: {differing} of {determined} determined gradient signs differ from float64's: a wrong step"
    );

    // 2. The score of the reference's stepped input.
    let stepped: Vec<f32> = pixels
        .iter()
        .zip(&reference)
        .map(|(x, r)| x - eps as f32 * f32::from(r.signum()))
        .collect();
    let plan = oodscope_engine::detect::plan::Plan::single(&model, &at_input, None).unwrap();
    let given = plan.score_batch(&batch(&stepped)).unwrap().scores.remove(0);
    let mut largest = 0.0f64;
    for (image, score) in order.iter().zip(&given) {
        let expected = case["scores"]["odin"][*image].as_f64().unwrap();
        let relative = (f64::from(*score) - expected).abs() / expected.abs().max(1e-6);
        assert!(
            relative <= TOLERANCE,
            "{name} odin {image}: oodscope {score} on the reference's stepped input, eager PyTorch {expected} (relative {relative:.1e})"
        );
        largest = largest.max(relative);
    }
    eprintln!("{name} odin: max relative difference to eager PyTorch on the same stepped input {largest:.1e}");

    // 3. The command's scores are those of oodscope's own stepped input.
    let own_step: Vec<f32> = pixels.iter().zip(&step).map(|(x, s)| x + s).collect();
    let composed = plan.score_batch(&batch(&own_step)).unwrap().scores.remove(0);
    let command = scores(
        model_path,
        "odin",
        &["--temperature", &t.to_string(), "--epsilon", &eps.to_string()],
    );
    let mut end_to_end = 0.0f64;
    for (image, score) in order.iter().zip(&composed) {
        let expected = case["scores"]["odin"][*image].as_f64().unwrap();
        end_to_end = end_to_end.max((command[*image] - expected).abs() / expected.abs().max(1e-6));
        let relative = (command[*image] - f64::from(*score)).abs() / f64::from(*score).abs().max(1e-6);
        assert!(
            relative <= 1e-5,
            "{name} odin {image}: `score` gives {}, the engine's step and score {score}",
            command[*image]
        );
    }
    // Not asserted: where the signs near zero went another way, the whole-command score moves.
    eprintln!(
        "{name} odin: `score` against the reference stepped with float64's signs: {end_to_end:.1e} (not compared)"
    );
    largest
}

/// Exported with `--blocks layer3,layer4`: RankFeat on layer4 is checked too.
#[test]
fn torchvision_resnet18_from_a_nested_prefixed_state_dict() {
    let checked = matches_eager_pytorch("resnet18");
    assert!(checked.iter().any(|(method, _)| method == "rankfeat"), "{checked:?}");
}

#[test]
fn torchvision_mobilenet_v3_small() {
    matches_eager_pytorch("mobilenet_v3_small");
}

#[test]
fn torchvision_efficientnet_b0() {
    matches_eager_pytorch("efficientnet_b0");
}

#[test]
fn torchvision_convnext_tiny() {
    matches_eager_pytorch("convnext_tiny");
}

#[test]
fn torchvision_vit_b_16() {
    matches_eager_pytorch("vit_b_16");
}

#[test]
fn timm_resnet18() {
    matches_eager_pytorch("timm_resnet18");
}

#[test]
fn a_custom_module_with_its_head_named() {
    matches_eager_pytorch("custom");
}

/// LeNet's `.view(n, -1)` of a convolution's map: the frozen file (channels-last weights) cannot run
/// it, so the exporter fell back to the plain traced file, saying why; that file scores as eager
/// PyTorch.
#[test]
fn a_custom_module_whose_frozen_file_fails_is_exported_plain() {
    let refs = references();
    let case = &refs["models"]["custom_flat"];
    assert_eq!(case["export"], "plain");
    let note = case["fallback"].as_str().unwrap_or_default();
    assert!(
        note.contains("the frozen file fails at batch size 1") && note.contains("view size is not compatible"),
        "{case}"
    );
    matches_eager_pytorch("custom_flat");
}

/// The exporter's default is the frozen file: each fixture is frozen, but resnet18_imagenet
/// (`--no-freeze`) and those whose frozen file failed the exporter's check (its note kept by the
/// fixture script says what differed); the ResNet-18 with inner blocks is frozen and still
/// returns them (RankFeat's test).
#[test]
fn every_fixture_is_frozen_unless_asked_otherwise_or_its_frozen_file_failed() {
    let refs = references();
    let models = refs["models"].as_object().unwrap();
    for (name, case) in models {
        let export = case["export"].as_str().unwrap();
        exported_as(name, export);
        let note = case.get("fallback").and_then(Value::as_str);
        match (name.as_str(), export, note) {
            ("resnet18_imagenet", "plain", None) | (_, "frozen", None) => {}
            (_, "plain", Some(note)) if name != "resnet18_imagenet" && name != "resnet18" => {
                eprintln!("{name}: {note}");
            }
            _ => panic!("{name}: exported {export} with the note {note:?}"),
        }
    }
    let frozen = models.values().filter(|case| case["export"] == "frozen").count();
    eprintln!("{frozen} of {} fixtures frozen", models.len());
    assert_eq!(models["resnet18"]["export"], "frozen");
}

#[test]
fn an_onnx_graph_through_onnx2torch() {
    matches_eager_pytorch("onnx");
}

/// Exported with `--no-freeze`: the plain traced file, its head the submodule `model.fc`.
#[test]
fn torchvision_resnet18_with_the_imagenet_pil_pipeline() {
    matches_eager_pytorch("resnet18_imagenet");
}

#[test]
fn timm_resnet18_with_the_timm_pil_pipeline() {
    matches_eager_pytorch("timm_resnet18_timm");
}

#[test]
fn every_other_format_is_named_with_the_command_that_converts_it() {
    let refs = references();
    let formats = refs["formats"].as_array().unwrap();
    let names: Vec<&str> = formats.iter().map(|f| f["file"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"formats/compiled.pt2"),
        "no AOTInductor package among the fixtures (make_own_models.py needs a C++ compiler): {names:?}"
    );
    let cache = tempfile::tempdir().unwrap();
    for case in formats {
        let file = path(case["file"].as_str().unwrap());
        let expect = case["expect"].as_str().unwrap();
        let (code, _, err) = oodscope(cache.path(), &["methods", "--model", &file]);
        assert_eq!(code, 1, "{file}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{file}: not one line: {err}");
        assert!(err.contains(&file), "{file}: the message does not name the file: {err}");
        assert!(err.contains(expect), "{file}: expected `{expect}` in: {err}");
        let model_format = !["image", "text file", "empty"].iter().any(|w| expect.contains(w));
        if model_format {
            assert!(
                err.contains("python scripts/export_model.py --model"),
                "{file}: no exporter command in: {err}"
            );
        }
        assert!(
            !err.contains("PytorchStreamReader"),
            "{file}: libtorch's message leaked: {err}"
        );
    }
    // Each converting command names the file back, with the right --model or --weights.
    let (_, _, err) = oodscope(cache.path(), &["methods", "--model", &path("formats/graph.pt")]);
    assert!(
        err.contains(&format!("--model onnx:{}", path("formats/graph.pt"))),
        "{err}"
    );
    let (_, _, err) = oodscope(cache.path(), &["methods", "--model", &path("formats/whole.pt")]);
    assert!(
        err.contains(&format!("--model pickle:{}", path("formats/whole.pt"))),
        "{err}"
    );
    let (_, _, err) = oodscope(cache.path(), &["methods", "--model", &path("formats/state.pt")]);
    assert!(
        err.contains(&format!("--weights {}", path("formats/state.pt"))),
        "{err}"
    );
}

/// `score` on the small bad-model fixtures: (exit code, stderr).
fn score_bad(model: &str, extra: &[&str]) -> (i32, String) {
    let cache = tempfile::tempdir().unwrap();
    let (id, ood) = (path("images/id"), path("images/ood"));
    let model = path(model);
    let mut args = vec![
        "score", "--model", &model, "--id", &id, "--ood", &ood, "--quiet", "--device", "cpu",
    ];
    args.extend_from_slice(extra);
    let (code, _, err) = oodscope(cache.path(), &args);
    (code, err)
}

/// Exit code 1 (not a panic's 101) and one short `error:` line (a run may print its heading first).
fn assert_one_line_failure(code: i32, err: &str, expect: &[&str]) {
    assert_eq!(code, 1, "exit code {code}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "not one error line: {err}");
    assert!(
        errors[0].len() < 500 && !err.contains("frame #"),
        "not a short line: {err}"
    );
    for e in expect {
        assert!(errors[0].contains(e), "expected `{e}` in: {err}");
    }
}

#[test]
fn a_model_without_derivatives_fails_gradient_methods_in_one_line_and_runs_the_others() {
    let model = "bad/attention-nograd.pt";
    let expect = [
        "attention-nograd.pt",
        "method `odin` needs input gradients",
        "_native_multi_head_attention",
    ];
    let (code, err) = score_bad(model, &["--method", "odin"]);
    assert_one_line_failure(code, &err, &expect);
    let (code, err) = score_bad(model, &["--method", "energy", "--epsilon", "0.002"]);
    assert_one_line_failure(
        code,
        &err,
        &["attention-nograd.pt", "method `energy` needs input gradients"],
    );
    let (code, err) = score_bad(model, &["--method", "msp"]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = score_bad(model, &["--method", "energy"]);
    assert_eq!(code, 0, "energy at ε = 0 needs no gradient: {err}");
    // tune searches ε > 0 too: the same line, not a panic.
    let cache = tempfile::tempdir().unwrap();
    let (id, ood, model) = (path("images/id"), path("images/ood"), path(model));
    let (code, _, err) = oodscope(
        cache.path(),
        &[
            "tune",
            "--model",
            &model,
            "--id",
            &id,
            "--ood",
            &ood,
            "--quiet",
            "--device",
            "cpu",
            "--temperatures",
            "1,10",
            "--epsilons",
            "0,0.002",
            "--validation",
            "0.5",
        ],
    );
    assert_one_line_failure(code, &err, &["attention-nograd.pt", "needs input gradients"]);
}

#[test]
fn models_exported_in_training_mode_are_refused_with_how_to_fix_it() {
    for (model, what) in [
        ("bad/dropout-train.pt", "gives different outputs for the same input"),
        ("bad/batchnorm-train.pt", "change with the other images in its batch"),
    ] {
        let (code, err) = score_bad(model, &[]);
        assert_one_line_failure(code, &err, &[model, what, "training mode", "model.eval()"]);
    }
}

#[test]
fn half_precision_and_batch_one_models_are_named_for_what_they_are() {
    let (code, err) = score_bad("bad/half.pt", &[]);
    assert_one_line_failure(
        code,
        &err,
        &["half.pt", "the model is float16 (half precision)", "model.float()"],
    );
    assert!(!err.contains("card"), "a float16 model is not a card problem: {err}");
    let (code, err) = score_bad("bad/batch-one.pt", &[]);
    assert_one_line_failure(code, &err, &["batch-one.pt", "the model only accepts batch size 1"]);
    assert!(!err.contains("does not match its card"), "{err}");
}

#[test]
fn the_exporter_checks_its_file_with_oodscope_itself() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("net.pt");
    let fixtures = support::repo_root().join("tests/fixtures");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--model",
            "own_custom_net:build",
            "--model-path",
            fixtures.to_str().unwrap(),
        ];
        args.extend(["--head", "out", "--input-size", "32", "--out", target.to_str().unwrap()]);
        args.extend_from_slice(extra);
        support::export_model(&args)
    };
    let (code, text) = run(&[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("frozen vs eager at batch sizes 1 and 2"), "{text}");
    assert!(text.contains("oodscope loads and probes it"), "{text}");
    assert!(!text.contains("Warning"), "the exporter's output is not clean: {text}");
    let card = std::fs::read_to_string(out.path().join("net.toml")).unwrap();
    assert!(card.contains("head = \"net.head.safetensors\""), "{card}");
    assert!(card.contains("outputs = \"logits+features\""), "{card}");
    // Without --head the custom layer name cannot be guessed: one line saying how to name it.
    let (code, text) = support::export_model(&[
        "--model",
        "own_custom_net:build",
        "--model-path",
        fixtures.to_str().unwrap(),
        "--out",
        target.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("--head") && text.contains("embed"), "{text}");
}
