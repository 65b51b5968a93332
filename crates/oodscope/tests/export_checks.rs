//! `scripts/export_model.py`'s checks on what a user's model returns and does: dict outputs are
//! unwrapped (or named with the fix), a forward that branches on the input's values is caught on
//! images across the input range, `--check-images` runs the check on the user's own images, a
//! failed export leaves nothing behind, the card's preprocessing comes from flags, and the frozen
//! file (the default) scores as the plain one (`--no-freeze`), or gives way to it when its own check
//! fails.

use crate::support;

use std::path::Path;
use std::process::Command;

/// Runs the exporter on a builder of tests/fixtures/own_custom_net.py into `dir/net.pt`; returns
/// (exit code, everything it printed).
fn export(builder: &str, dir: &Path, extra: &[&str]) -> (i32, String) {
    let fixtures = support::repo_root().join("tests/fixtures");
    let out = dir.join("net.pt");
    let model = format!("own_custom_net:{builder}");
    let mut args = vec!["--model", &model, "--model-path", fixtures.to_str().unwrap()];
    args.extend(["--head", "out", "--input-size", "32", "--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    support::export_model(&args)
}

#[test]
fn a_dict_output_is_unwrapped_and_one_without_logits_is_named_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = export("build_dict", dir.path(), &[]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        support::names_in(dir.path()),
        ["net.head.safetensors", "net.pt", "net.toml"]
    );

    let dir = tempfile::tempdir().unwrap();
    let (code, text) = export("build_dict_without_logits", dir.path(), &[]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("returns a dict with keys [embedding, scores] and no `logits` tensor")
            && text.contains("wrap it"),
        "{text}"
    );
    assert!(!text.contains("Traceback"), "{text}");
    assert!(
        support::names_in(dir.path()).is_empty(),
        "{:?}",
        support::names_in(dir.path())
    );
}

#[test]
fn a_forward_that_branches_on_the_inputs_values_is_caught_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    // The tracer's own warning on the user's code is an error pointing to capture (no tracing)…
    let (code, text) = export("build_branchy", dir.path(), &[]);
    assert_eq!(code, 1, "{text}");
    let last = text.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("export: error: tracing warned at own_custom_net.py:48 (`if x.mean() > 0.5:`)")
            && last.contains("oodscope.capture(model, loader)"),
        "{text}"
    );
    assert!(support::names_in(dir.path()).is_empty());
    // …and, told that the condition is about shapes, the parity checks still catch it.
    let (code, text) = export("build_branchy", dir.path(), &["--allow-tracer-warnings"]);
    assert_eq!(code, 1, "{text}");
    let last = text.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("export: error: on images across the input range")
            && last.contains("branches on the input's values"),
        "{text}"
    );
    // Found on the frozen file, but the traced one branches too: the model's fault, not freezing's.
    assert!(!text.contains("not frozen"), "{text}");
    assert!(
        support::names_in(dir.path()).is_empty(),
        "a failed export leaves nothing: {:?}",
        support::names_in(dir.path())
    );
    // An existing model of the same name is left as it was.
    std::fs::write(dir.path().join("net.pt"), b"the user's earlier file").unwrap();
    let (code, _) = export("build_branchy", dir.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(
        std::fs::read(dir.path().join("net.pt")).unwrap(),
        b"the user's earlier file"
    );
    assert_eq!(support::names_in(dir.path()), ["net.pt"]);
}

#[test]
fn check_images_and_preprocessing_flags_reach_the_check_and_the_card() {
    let dir = tempfile::tempdir().unwrap();
    let images = oodscope_engine::assets_root().join("assets/demo/photo-crops");
    let (code, text) = export(
        "build",
        dir.path(),
        &[
            "--check-images",
            images.to_str().unwrap(),
            "--preprocess",
            "torchvision-imagenet",
            "--resize",
            "40",
            "--interpolation",
            "bicubic",
            "--backend",
            "tensor",
        ],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("and on images across the input range") && text.contains("your images in"),
        "{text}"
    );
    let card = std::fs::read_to_string(dir.path().join("net.toml")).unwrap();
    for line in [
        "resize = 40",
        "crop = [32, 32]",
        "interpolation = \"bicubic\"",
        "backend = \"tensor\"",
    ] {
        assert!(card.contains(line), "{line} not in {card}");
    }
    let (code, text) = export("build", dir.path(), &["--check-images", "/no/such/folder"]);
    assert_eq!(code, 1);
    assert!(
        text.contains("--check-images /no/such/folder: no such folder"),
        "{text}"
    );
    let (code, text) = export("build", dir.path(), &["--preprocess", "timm", "--crop", "24"]);
    assert_eq!(code, 1);
    assert!(text.contains("--crop 24 must equal the input size 32"), "{text}");
}

#[test]
fn constructor_flags_outside_the_weights_are_read_from_them_or_asked_for_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("googlenet.pth");
    // A GoogLeNet saved without its auxiliary classifiers, as after fine-tuning with aux_logits=False.
    let made = Command::new(support::python())
        .args([
            "-c",
            "import sys, torch, torchvision\nm = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False, num_classes=3)\ntorch.save(m.state_dict(), sys.argv[1])",
            weights.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let out = dir.path().join("g.pt");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--model",
            "torchvision:googlenet",
            "--num-classes",
            "3",
            "--input-size",
            "64",
        ];
        args.extend([
            "--weights",
            weights.to_str().unwrap(),
            "--skip-oodscope-check",
            "--out",
            out.to_str().unwrap(),
        ]);
        args.extend_from_slice(extra);
        support::export_model(&args)
    };
    let (code, text) = run(&[]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("aux_logits=False: the weights have no auxiliary classifier keys"),
        "{text}"
    );
    assert!(
        text.contains("googlenet has a flag its weights do not record: transform_input")
            && text.contains("--model-arg transform_input=True or --model-arg transform_input=False"),
        "{text}"
    );
    let (code, text) = run(&["--model-arg", "transform_input=False"]);
    assert_eq!(code, 0, "{text}");
    assert!(dir.path().join("g.toml").exists());
}

/// `oodscope score --scores` of a model on the demo's photo crops (ID) and MNIST digits (OOD):
/// the scores in file order.
fn demo_scores(model: &Path, method: &[&str], dir: &Path) -> Vec<f64> {
    let csv = dir.join("scores.csv");
    let demo = |rel: &str| {
        oodscope_engine::assets_root()
            .join("assets/demo")
            .join(rel)
            .display()
            .to_string()
    };
    let (id, ood) = (demo("photo-crops"), demo("mnist"));
    let mut args = vec!["score", "--model", model.to_str().unwrap(), "--id", &id, "--ood", &ood];
    args.extend_from_slice(method);
    args.extend(["--scores", csv.to_str().unwrap(), "--quiet"]);
    let (code, _, err) = support::oodscope_with_cache(dir, &args);
    assert_eq!(code, 0, "{err}");
    let mut reader = csv::Reader::from_path(&csv).unwrap();
    reader.records().map(|r| r.unwrap()[3].parse().unwrap()).collect()
}

/// The largest relative difference between two runs' scores.
fn largest_difference(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(1e-6))
        .fold(0.0, f64::max)
}

const ODIN: [&str; 6] = ["--method", "odin", "--temperature", "10", "--epsilon", "0.002"];

#[test]
fn the_default_frozen_export_scores_as_the_no_freeze_one_and_keeps_input_gradients() {
    let plain = tempfile::tempdir().unwrap();
    let frozen = tempfile::tempdir().unwrap();
    let (code, text) = export("build", plain.path(), &["--no-freeze"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(support::names_in(plain.path()), ["net.pt", "net.toml"]);
    let card = std::fs::read_to_string(plain.path().join("net.toml")).unwrap();
    assert!(card.contains("head = \"model.out\""), "{card}");
    // The default freezes; --freeze (the frozen file or an error) gives the same files.
    for (dir, extra) in [(frozen.path(), &[][..]), (plain.path(), &["--freeze"][..])] {
        let target = if extra.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join("required")
        };
        std::fs::create_dir_all(&target).unwrap();
        let (code, text) = export("build", &target, extra);
        assert_eq!(code, 0, "{extra:?}: {text}");
        assert!(text.contains("frozen vs eager at batch sizes 1 and 2"), "{text}");
        assert!(!text.contains("not frozen"), "{text}");
        assert_eq!(
            support::names_in(&target),
            ["net.head.safetensors", "net.pt", "net.toml"]
        );
        let card = std::fs::read_to_string(target.join("net.toml")).unwrap();
        assert!(card.contains("head = \"net.head.safetensors\""), "{card}");
    }
    for method in [&["--method", "msp"][..], &ODIN] {
        let a = demo_scores(&plain.path().join("net.pt"), method, plain.path());
        let b = demo_scores(&frozen.path().join("net.pt"), method, frozen.path());
        let worst = largest_difference(&a, &b);
        assert!(worst <= 1e-4, "{method:?}: frozen differs by {worst:e}");
    }
}

/// LeNet's `.view(n, -1)` of a convolution's map: with channels-last weights the map is
/// channels-last and `.view` cannot flatten it, so the frozen file fails its check. The default
/// export says so in one line and writes the plain traced file, which scores as `--no-freeze`'s;
/// `--freeze` is an error that leaves nothing behind.
#[test]
fn a_model_whose_frozen_file_fails_its_check_falls_back_to_the_plain_file() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = export("build_flat", dir.path(), &[]);
    assert_eq!(code, 0, "{text}");
    let notes: Vec<&str> = text.lines().filter(|l| l.contains("not frozen")).collect();
    assert_eq!(notes.len(), 1, "{text}");
    assert!(
        notes[0].starts_with("export: note: not frozen: the frozen file fails at batch size 1 (")
            && notes[0].contains("view size is not compatible")
            && notes[0].contains("the plain traced file is exported instead"),
        "{text}"
    );
    assert!(text.contains("exported vs eager at batch sizes 1 and 2"), "{text}");
    assert!(text.contains("oodscope loads and probes it"), "{text}");
    assert_eq!(support::names_in(dir.path()), ["net.pt", "net.toml"]);
    let card = std::fs::read_to_string(dir.path().join("net.toml")).unwrap();
    assert!(card.contains("head = \"model.out\""), "{card}");

    let plain = tempfile::tempdir().unwrap();
    let (code, text) = export("build_flat", plain.path(), &["--no-freeze"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        !text.contains("not frozen") && !text.contains("frozen vs eager"),
        "{text}"
    );
    for method in [&["--method", "msp"][..], &ODIN] {
        let a = demo_scores(&plain.path().join("net.pt"), method, plain.path());
        let b = demo_scores(&dir.path().join("net.pt"), method, dir.path());
        assert_eq!(largest_difference(&a, &b), 0.0, "{method:?}");
    }

    let required = tempfile::tempdir().unwrap();
    let (code, text) = export("build_flat", required.path(), &["--freeze"]);
    assert_eq!(code, 1, "{text}");
    let last = text.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("export: error: --freeze: the frozen file fails at batch size 1 (")
            && last.contains("view size is not compatible"),
        "{text}"
    );
    assert!(support::names_in(required.path()).is_empty());
}
