//! The bundled Fashion-MNIST models: each loads through the engine, its accuracy on the committed
//! demo sample is what its card claims (within a point), and each file opens in Python's
//! `torch.jit.load` with the same outputs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use oodscope::data::{ImageSet, Role};
use oodscope::model::{DeviceChoice, Model};
use oodscope::score::{Method, ScoreSettings, run_scoring};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const MODELS: [(&str, Method); 3] = [
    ("models/fmnist-resnet.pt", Method::Msp),
    ("models/fmnist-resnet-confidence.pt", Method::Confidence),
    ("models/fmnist-leaveout/fmnist-leaveout.toml", Method::Ensemble),
];

fn demo_accuracy(model: &Model, method: Method) -> f64 {
    let sets = vec![
        ImageSet::open(
            root().join("assets/demo/fmnist-test").to_str().unwrap(),
            Role::Id,
            &model.card.classes,
        )
        .unwrap(),
    ];
    assert!(
        sets[0].labelled,
        "the demo folder's class folders must match the card's classes"
    );
    let settings = ScoreSettings::new(method, 1.0, 0.0).unwrap();
    let run = run_scoring(model, &sets, &settings, 256, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_eq!(run.scores.len(), 2000);
    run.accuracy(&[0]).unwrap()
}

#[test]
fn bundled_models_reach_the_accuracy_their_cards_claim() {
    for (path, method) in MODELS {
        let model = Model::load(&root().join(path), DeviceChoice::Cpu).unwrap();
        let claimed = model
            .card
            .accuracy
            .unwrap_or_else(|| panic!("{path}: card claims no accuracy"));
        let measured = demo_accuracy(&model, method);
        eprintln!(
            "{path}: demo accuracy {:.2}% (card: {:.2}%)",
            100.0 * measured,
            100.0 * claimed
        );
        assert!(
            (measured - claimed).abs() <= 0.01,
            "{path}: demo accuracy {measured} vs card {claimed}"
        );
    }
    let plain = Model::load(&root().join(MODELS[0].0), DeviceChoice::Cpu).unwrap();
    assert!(
        plain.card.accuracy.unwrap() >= 0.91,
        "the plain ResNet must reach 91% test accuracy"
    );
    let confidence = Model::load(&root().join(MODELS[1].0), DeviceChoice::Cpu).unwrap();
    assert!(
        plain.card.accuracy.unwrap() - confidence.card.accuracy.unwrap() <= 0.015,
        "confidence model within 1.5 points"
    );
}

/// Python's torch.jit.load opens every bundled TorchScript file and gives the output shapes we expect.
#[test]
fn bundled_files_open_in_python_torch_jit_load() {
    let files = [
        ("models/fmnist-resnet.pt", 10),
        ("models/fmnist-resnet-confidence.pt", 11),
        ("models/fmnist-leaveout/m0.pt", 8),
        ("models/fmnist-leaveout/m4.pt", 8),
    ];
    for (file, width) in files {
        let script = format!(
            "import torch; m = torch.jit.load({:?}); print(tuple(m(torch.zeros(3, 1, 28, 28)).shape))",
            root().join(file).to_str().unwrap()
        );
        let out = Command::new(python())
            .args(["-c", &script])
            .output()
            .expect("python from the venv");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout.trim(), format!("(3, {width})"), "{file}");
    }
}

fn python() -> PathBuf {
    let venv = root().join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        Path::new("python3").to_path_buf()
    }
}
