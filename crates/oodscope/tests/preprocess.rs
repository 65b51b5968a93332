//! `oodscope preprocess` gives the tensors torchvision's own pipelines give (made by
//! `tests/fixtures/make_preprocess_refs.py`): PIL pipelines (Resize of the shorter side or to
//! (H, W) with Pillow's bilinear, bicubic and nearest, CenterCrop, ToTensor, Normalize; timm-style
//! bicubic; grey `convert("L")`) to 1e-6, tensor pipelines (antialiased float resize) to 1e-5, on
//! JPEG, PNG, grey, RGBA, palette and 16-bit files. Only the card is written: the command needs no
//! model file. Measured (this machine, Pillow 13.0, torchvision 0.28): every PIL pipeline 0 on every
//! file, JPEGs included (libjpeg-turbo's decoder, as Pillow's); tensor pipelines ≤ 2.2e-6.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::Array4;

fn oodscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_oodscope"))
}

fn refs() -> PathBuf {
    let dir = support::fixtures().join("preprocess");
    assert!(
        dir.join("manifest.json").is_file(),
        "preprocess references missing in {}: run scripts/test.sh (make_preprocess_refs.py makes them)",
        dir.display()
    );
    dir
}

/// The card text for the manifest's fields (a TOML value each, as JSON writes them).
fn card_text(fields: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut text = String::from("classes = [\"a\", \"b\"]\noutputs = \"logits\"\n");
    for (key, value) in fields {
        text.push_str(&format!("{key} = {value}\n"));
    }
    text
}

fn run_preprocess(card: &Path, image: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    oodscope()
        .arg("preprocess")
        .arg("--model")
        .arg(card)
        .arg(image)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// Runs one pipeline's cases through one `oodscope preprocess` (the images batched); the largest
/// |difference| of each image's tensor to its reference.
fn max_diffs(cases: &[&serde_json::Value], dir: &Path, tmp: &Path) -> Vec<f32> {
    let pipeline = cases[0]["pipeline"].as_str().unwrap();
    let card = tmp.join(format!("{pipeline}.toml"));
    std::fs::write(&card, card_text(cases[0]["card"].as_object().unwrap())).unwrap();
    let out = tmp.join(format!("{pipeline}.npy"));
    let images: Vec<PathBuf> = cases.iter().map(|c| dir.join(c["image"].as_str().unwrap())).collect();
    let run = oodscope()
        .arg("preprocess")
        .arg("--model")
        .arg(&card)
        .args(&images)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{pipeline}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let got: Array4<f32> = ndarray_npy::read_npy(&out).unwrap();
    assert_eq!(got.shape()[0], cases.len());
    cases
        .iter()
        .enumerate()
        .map(|(k, case)| {
            let want: Array4<f32> = ndarray_npy::read_npy(dir.join(case["npy"].as_str().unwrap())).unwrap();
            let got = got.slice(ndarray::s![k..k + 1, .., .., ..]);
            assert_eq!(got.shape(), want.shape(), "{pipeline} on {}", images[k].display());
            got.iter()
                .zip(want.iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, |m, d| if d.is_nan() { f32::NAN } else { m.max(d) })
        })
        .collect()
}

#[test]
fn preprocessed_tensors_match_torchvision() {
    let dir = refs();
    let manifest: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert!(
        manifest.len() >= 90,
        "expected ~100 reference tensors, got {}",
        manifest.len()
    );
    let tmp = tempfile::tempdir().unwrap();
    // One process per pipeline, all its images batched (the command's start dominates).
    let mut by_pipeline: BTreeMap<&str, Vec<&serde_json::Value>> = BTreeMap::new();
    for case in &manifest {
        by_pipeline
            .entry(case["pipeline"].as_str().unwrap())
            .or_default()
            .push(case);
    }
    let mut diffs: Vec<(&serde_json::Value, f32)> = Vec::new();
    for cases in by_pipeline.values() {
        diffs.extend(cases.iter().copied().zip(max_diffs(cases, &dir, tmp.path())));
    }
    // Worst |difference| per pipeline, on JPEG files and on the others.
    let mut worst: BTreeMap<String, (f32, f32, bool)> = BTreeMap::new();
    let mut failures = Vec::new();
    for (case, diff) in diffs {
        let pipeline = case["pipeline"].as_str().unwrap();
        let image = case["image"].as_str().unwrap();
        let pil = case["pil"].as_bool().unwrap();
        let tolerance = if pil { 1e-6 } else { 1e-5 };
        let entry = worst.entry(pipeline.to_string()).or_insert((0.0, 0.0, pil));
        if image.ends_with(".jpg") {
            entry.1 = entry.1.max(diff);
        } else {
            entry.0 = entry.0.max(diff);
        }
        if diff.is_nan() || diff > tolerance {
            failures.push(format!("{pipeline} on {image}: max |diff| {diff:e} > {tolerance:e}"));
        }
    }
    println!("max |oodscope − torchvision| per pipeline (non-JPEG files, JPEG files):");
    for (pipeline, (other, jpeg, pil)) in &worst {
        println!(
            "  {pipeline:<20} {other:.3e}  {jpeg:.3e}  ({})",
            if *pil { "PIL" } else { "tensor" }
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_normalize_writes_pixels_in_unit_range() {
    let dir = refs();
    let tmp = tempfile::tempdir().unwrap();
    let card = tmp.path().join("m.toml");
    std::fs::write(
        &card,
        "input = [3, 224, 224]\nmean = [0.5, 0.5, 0.5]\nstd = [0.1, 0.1, 0.1]\nclasses = [\"a\", \"b\"]\n\
         outputs = \"logits\"\nresize = 256\nbackend = \"pil\"\n",
    )
    .unwrap();
    let image = dir.join("images/rgb_500x333.png");
    let (plain, normalized) = (tmp.path().join("p.npy"), tmp.path().join("n.npy"));
    assert!(
        run_preprocess(&card, &image, &plain, &["--no-normalize"])
            .status
            .success()
    );
    assert!(run_preprocess(&card, &image, &normalized, &[]).status.success());
    let plain: Array4<f32> = ndarray_npy::read_npy(&plain).unwrap();
    let normalized: Array4<f32> = ndarray_npy::read_npy(&normalized).unwrap();
    assert_eq!(plain.shape(), &[1, 3, 224, 224]);
    assert!(plain.iter().all(|v| (0.0..=1.0).contains(v)));
    // Every value is k / 255 for a byte k, and the normalised one (x − 0.5) / 0.1.
    assert!(plain.iter().all(|v| ((v * 255.0).round() / 255.0 - v).abs() < 1e-7));
    assert!(
        plain
            .iter()
            .zip(normalized.iter())
            .all(|(p, n)| ((p - 0.5) / 0.1 - n).abs() < 1e-6)
    );
}

#[test]
fn bad_cards_and_images_fail_with_a_clear_message() {
    let dir = refs();
    let tmp = tempfile::tempdir().unwrap();
    let base = "input = [3, 224, 224]\nmean = [0.5, 0.5, 0.5]\nstd = [0.1, 0.1, 0.1]\nclasses = [\"a\", \"b\"]\noutputs = \"logits\"\n";
    let image = dir.join("images/rgb_500x333.png");
    let out = tmp.path().join("x.npy");
    for (fields, expected) in [
        ("resize = 256\ninterpolation = \"lanczos\"", "`interpolation` must be"),
        ("resize = 200", "larger than `resize` = 200"),
        ("resize = [256, 256]", "but `input` is 224×224"),
        (
            "resize = [256, 256]\ncrop = [300, 224]",
            "larger than `resize` = [256, 256]",
        ),
        (
            "resize = 256\nbackend = \"cv2\"",
            "`backend` must be \"pil\", \"tensor\" or \"hf\"",
        ),
    ] {
        let card = tmp.path().join("bad.toml");
        std::fs::write(&card, format!("{base}{fields}\n")).unwrap();
        let run = run_preprocess(&card, &image, &out, &[]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{fields}: accepted");
        assert!(
            stderr.contains(expected) && stderr.contains("bad.toml"),
            "{fields}: {stderr}"
        );
    }
    let card = tmp.path().join("ok.toml");
    std::fs::write(&card, format!("{base}resize = 256\nbackend = \"pil\"\n")).unwrap();
    let text = tmp.path().join("notes.png");
    std::fs::write(&text, "not an image").unwrap();
    let run = run_preprocess(&card, &text, &out, &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && stderr.contains("notes.png") && stderr.contains("not an image"),
        "{stderr}"
    );
}
