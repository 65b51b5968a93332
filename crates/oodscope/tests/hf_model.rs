//! Hugging Face image classifiers, end to end: a ViT (bilinear, straight resize) and a ConvNeXt
//! (bicubic, `crop_pct`), made from configs and saved with `save_pretrained` by
//! tests/fixtures/make_hf_models.py, exported with `scripts/export_model.py --model hf:DIR` (weights,
//! classes, head and preprocessing from the folder), score the repository's photos as the Hugging
//! Face pipeline does: the same uint8 pixels after the resize and crop (`backend = "hf"`), and MSP
//! within 1e-4. The Pillow pipeline (`backend = "pil"`) on the same model is further off than that,
//! so the check can fail; folders the exporter cannot take get one line that says why.

use crate::support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The bar: scores within 1e-4 of the Hugging Face pipeline.
const TOLERANCE: f64 = 1e-4;

/// The HF fixtures (scripts/test.sh makes them).
fn hf() -> PathBuf {
    support::fixture_folder("hf", "make_hf_models.py")
}

/// `oodscope score --method msp` of the fixture photos; the scores by file name.
fn msp_scores(model: &Path) -> HashMap<String, f64> {
    let cache = tempfile::tempdir().unwrap();
    let csv = cache.path().join("scores.csv");
    let (id, ood) = (hf().join("images/id"), hf().join("images/ood"));
    let args = [
        "score",
        "--model",
        model.to_str().unwrap(),
        "--method",
        "msp",
        "--id",
        id.to_str().unwrap(),
        "--ood",
        ood.to_str().unwrap(),
        "--quiet",
        "--device",
        "cpu",
        "--scores",
        csv.to_str().unwrap(),
    ];
    let (code, _, err) = support::oodscope_with_cache(cache.path(), &args);
    assert_eq!(code, 0, "oodscope score on {}: {err}", model.display());
    let text = std::fs::read_to_string(&csv).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (path_col, score_col) = (column("path"), column("score"));
    text.lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let name = Path::new(fields[path_col]).file_name().unwrap();
            (name.to_string_lossy().into_owned(), fields[score_col].parse().unwrap())
        })
        .collect()
}

/// The largest |oodscope − pipeline| over the photos (every photo scored).
fn largest_difference(got: &HashMap<String, f64>, want: &serde_json::Map<String, Value>) -> f64 {
    assert_eq!(
        got.len(),
        want.len(),
        "scored {:?}, expected {:?}",
        got.keys(),
        want.keys()
    );
    want.iter()
        .map(|(image, expected)| (got[image] - expected.as_f64().unwrap()).abs())
        .fold(0.0, f64::max)
}

/// The photo `name`'s path in the fixtures.
fn photo(name: &str) -> PathBuf {
    let id = hf().join("images/id").join(name);
    if id.is_file() {
        id
    } else {
        hf().join("images/ood").join(name)
    }
}

/// The largest difference in levels between oodscope's preprocessed pixels (the card's
/// preprocessing on the decoded file) and the processor's uint8 pixels, over every photo.
fn largest_pixel_difference(model: &Path, case: &Value) -> u8 {
    use oodscope_engine::model::{DeviceChoice, Model};
    let model = Model::load(model, DeviceChoice::Cpu).unwrap();
    let pre = model.card.preprocess();
    let mut worst = 0u8;
    for image in case["msp"].as_object().unwrap().keys() {
        let ours = oodscope_data::decode_file(&photo(image), &pre).unwrap();
        let theirs = std::fs::read(
            hf().join("pixels")
                .join(case["folder"].as_str().unwrap())
                .join(format!("{image}.u8")),
        )
        .unwrap();
        assert_eq!(ours.len(), theirs.len(), "{image}: another shape than the processor's");
        let levels = ours.iter().map(|&v| (v * 255.0).round() as u8);
        worst = worst.max(levels.zip(&theirs).map(|(a, &b)| a.abs_diff(b)).max().unwrap_or(0));
    }
    worst
}

#[test]
fn hf_classifiers_score_like_the_hf_pipeline() {
    let refs = support::references(&hf());
    // torchvision resizes bilinear uint8 images through float32 on a CPU without AVX2: the
    // processor's pixels then differ from PyTorch's integer kernel (which `hf` ports) by ±1 level.
    let integer_kernel = matches!(refs["cpu_capability"].as_str(), Some("AVX2" | "AVX512"));
    let out = tempfile::tempdir().unwrap();
    for name in ["vit", "convnext"] {
        let case = &refs["models"][name];
        let folder = hf().join(case["folder"].as_str().unwrap());
        let model = out.path().join(format!("{name}.pt"));
        let (code, text) = support::export_model(&[
            "--model",
            &format!("hf:{}", folder.display()),
            "--out",
            model.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "export of hf:{name} failed: {text}");
        assert!(
            !text.contains("random weights"),
            "{name}: the weights come from the folder: {text}"
        );
        // Frozen (the exporter's default): the head is written beside the file.
        assert!(text.contains("frozen vs eager"), "{name}: {text}");
        let card = std::fs::read_to_string(model.with_extension("toml")).unwrap();
        let head = format!("head = \"{name}.head.safetensors\"");
        for field in [
            "backend = \"hf\"",
            head.as_str(),
            "\"airplane\", \"cat\", \"cup\", \"horse\"",
        ] {
            assert!(card.contains(field), "{name}: the card lacks {field}:\n{card}");
        }

        // A phone photo stored sideways with its EXIF orientation: the pipeline turns it upright.
        assert!(
            case["msp"]
                .as_object()
                .unwrap()
                .contains_key("astronaut-exif-orientation-6.jpg")
        );
        let pixels = largest_pixel_difference(&model, case);
        eprintln!("{name}: largest pixel difference to the processor's: {pixels} levels");
        assert!(
            pixels == 0 || (!integer_kernel && pixels <= 1),
            "{name}: oodscope's pixels are {pixels} levels from the processor's"
        );

        let want = case["msp"].as_object().unwrap();
        let largest = largest_difference(&msp_scores(&model), want);
        eprintln!("{name}: largest MSP difference to the Hugging Face pipeline: {largest:.1e}");
        assert!(
            largest <= TOLERANCE,
            "{name}: MSP {largest:.1e} from the Hugging Face pipeline"
        );

        // The same model with Pillow's resize and torchvision's crop: off by more than the bar.
        let pil = out.path().join(format!("{name}_pil.pt"));
        std::fs::copy(&model, &pil).unwrap();
        std::fs::write(
            pil.with_extension("toml"),
            card.replace("backend = \"hf\"", "backend = \"pil\""),
        )
        .unwrap();
        let off = largest_difference(&msp_scores(&pil), want);
        eprintln!("{name}: with backend = \"pil\" instead, the largest MSP difference is {off:.1e}");
        assert!(
            off > TOLERANCE,
            "{name}: the Pillow pipeline is as close as the hf one ({off:.1e}): this test cannot tell them apart"
        );
    }
}

#[test]
fn hf_folders_the_exporter_cannot_take_say_why_in_one_line() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("m.pt");
    let vit = format!("hf:{}", hf().join("vit").display());
    let cases: [(String, &[&str], &str); 4] = [
        (
            format!("hf:{}", hf().join("images").display()),
            &[],
            "no config.json in the folder",
        ),
        (
            format!("hf:{}", hf().join("not_a_classifier").display()),
            &[],
            "a bert model, not an image classifier",
        ),
        (
            format!("hf:{}", hf().join("no_processor").display()),
            &[],
            "no preprocessor_config.json",
        ),
        (vit, &["--weights", "w.pth"], "the folder holds the weights"),
    ];
    for (model, extra, expected) in cases {
        let mut args = vec!["--model", &model, "--out", target.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, text) = support::export_model(&args);
        assert_eq!(code, 1, "{model} {extra:?}: {text}");
        let error = text
            .lines()
            .find(|l| l.starts_with("export: error: "))
            .unwrap_or_else(|| panic!("{model}: no error line in {text}"));
        assert!(error.contains(expected), "{model}: expected {expected:?} in {error}");
        assert!(!text.contains("Traceback"), "{model}: a traceback: {text}");
        assert!(
            support::names_in(out.path()).is_empty(),
            "{model}: a failed export left files"
        );
    }
}

/// The saved folder itself given to oodscope as a model: one line naming the export that makes a
/// model of it (and a folder of anything else is named as not a model).
#[test]
fn an_hf_folder_given_as_the_model_names_the_export() {
    let cache = tempfile::tempdir().unwrap();
    let folder = hf().join("vit");
    let images = hf().join("images");
    for (model, expected) in [
        (folder.clone(), format!("--model hf:{} --out", folder.display())),
        (images.clone(), "a folder, not a model file".to_string()),
    ] {
        let (code, _, err) = support::oodscope_with_cache(
            cache.path(),
            &[
                "score",
                "--model",
                model.to_str().unwrap(),
                "--method",
                "msp",
                "--id",
                images.to_str().unwrap(),
                "--ood",
                images.to_str().unwrap(),
                "--quiet",
            ],
        );
        assert_ne!(code, 0);
        assert!(err.contains(&expected) && err.trim().lines().count() == 1, "{err}");
    }
}
