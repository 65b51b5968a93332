//! `oodscope train` exports single models that return their features, with the head written as
//! safetensors beside them: a quick run on the demo sample loads through the engine with a checked
//! head and scores a feature method.

use crate::support;

use std::process::Command;

use oodscope_engine::model::{DeviceChoice, Model};

#[test]
fn a_trained_model_exports_features_and_a_head_the_engine_checks() {
    let root = support::repo_root();
    let data = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root.join("assets/demo/fmnist-train"), data.path().join("train")).unwrap();
    std::os::unix::fs::symlink(root.join("assets/demo/fmnist-test"), data.path().join("test")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_oodscope"))
        .args([
            "train",
            "--data",
            data.path().to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ])
        .args([
            "--model",
            "plain",
            "--model",
            "confidence",
            "--epochs",
            "1",
            "--limit",
            "20",
            "--width",
            "4",
        ])
        .args(["--device", "cpu"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    for (stem, confidence) in [("fmnist-resnet", false), ("fmnist-resnet-confidence", true)] {
        let model = Model::load(&out.path().join(format!("{stem}.pt")), DeviceChoice::Cpu).unwrap();
        let caps = model.capabilities();
        assert_eq!(
            (caps.features, caps.head, caps.confidence),
            (Some(16), true, confidence),
            "{stem}"
        );
        assert!(out.path().join(format!("{stem}.head.safetensors")).is_file());
    }
    let (code, table) = {
        let o = Command::new(env!("CARGO_BIN_EXE_oodscope"))
            .args([
                "score",
                "--model",
                out.path().join("fmnist-resnet.pt").to_str().unwrap(),
            ])
            .args(["--method", "ash-p", "--quiet", "--device", "cpu"])
            .args(["--id", root.join("assets/demo/fmnist-test/bag").to_str().unwrap()])
            .args(["--ood", "uniform:50"])
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stdout).to_string())
    };
    assert_eq!(code, Some(0));
    assert!(table.contains("ASH-P (p = 90)"), "{table}");
}
