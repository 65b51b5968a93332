//! The bundled Fashion-MNIST models: each loads through the engine (the single ones with features
//! and a checked head), its accuracy on the committed demo sample is what its card claims (within a
//! point), and each file opens in Python's `torch.jit.load` with the outputs its card says.

use crate::support;

use oodscope_data::{ImageSet, Role};
use oodscope_engine::model::{DeviceChoice, Model};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    support::repo_root()
}

const MODELS: [(&str, &str); 3] = [
    ("models/fmnist-resnet.pt", "msp"),
    ("models/fmnist-resnet-confidence.pt", "confidence"),
    ("models/fmnist-leaveout/fmnist-leaveout.toml", "ensemble"),
];

fn demo_accuracy(model: &Model, method: &str) -> f64 {
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
    let settings = support::t_eps(model, method, 1.0, 0.0);
    let run = oodscope_engine::score::score_sets(model, None, &sets, &settings, 256).unwrap();
    assert_eq!(run.images.len(), 2000);
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
    for path in [MODELS[0].0, MODELS[1].0] {
        let caps = Model::load(&root().join(path), DeviceChoice::Cpu)
            .unwrap()
            .capabilities();
        assert_eq!(
            (caps.features, caps.head),
            (Some(64), true),
            "{path}: features and a checked head"
        );
    }
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

/// Python's torch.jit.load opens every bundled TorchScript file and gives the output shapes its card
/// says: (logits, features), (logits, confidence, features), or an ensemble member's logits.
#[test]
fn bundled_files_open_in_python_torch_jit_load() {
    let files = [
        ("models/fmnist-resnet.pt", "[(3, 10), (3, 64)]"),
        ("models/fmnist-resnet-confidence.pt", "[(3, 10), (3, 1), (3, 64)]"),
        ("models/fmnist-leaveout/m0.pt", "[(3, 8)]"),
        ("models/fmnist-leaveout/m4.pt", "[(3, 8)]"),
    ];
    for (file, shapes) in files {
        let script = format!(
            "import torch; m = torch.jit.load({:?}); o = m(torch.zeros(3, 1, 28, 28)); o = o if isinstance(o, tuple) else (o,); print([tuple(t.shape) for t in o])",
            root().join(file).to_str().unwrap()
        );
        let out = Command::new(python())
            .args(["-c", &script])
            .output()
            .expect("python from the venv");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout.trim(), shapes, "{file}");
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
