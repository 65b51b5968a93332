//! The binary loads libtorch_cuda at run time (crates/engine/src/torch_libs.rs) instead of linking it: checked
//! with the dynamic loader's own trace, and against this test process, which links it directly
//! (build/libtorch_link.rs), as the checked way to see CUDA.

use std::path::Path;
use std::process::Command;

use crate::support;

fn oodscope(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oodscope"))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// glibc's loader trace (LD_DEBUG=files) says how each library came in: `needed by` a linked
/// object, or `dynamically loaded by` a dlopen.
#[test]
fn the_binary_dlopens_libtorch_cuda_where_libtorch_has_it() {
    let _ = tch::Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu));
    let dir = oodscope_engine::torch_libs::libtorch_dir().expect("this test links libtorch_cpu");
    // Asked for: this machine may have no NVIDIA driver, where the binary skips it (below).
    let (code, _, trace) = oodscope(&["methods"], &[("LD_DEBUG", "files"), ("OODSCOPE_LOAD_CUDA", "1")]);
    assert_eq!(code, 0, "{trace}");
    let cuda_lines: Vec<&str> = trace.lines().filter(|l| l.contains("libtorch_cuda.so")).collect();
    if dir.join("libtorch_cuda.so").is_file() {
        let expected = format!(
            "file={} [0];  dynamically loaded by",
            dir.join("libtorch_cuda.so").display()
        );
        assert!(
            cuda_lines.iter().any(|l| l.contains(&expected)),
            "libtorch_cuda.so not dlopened from {}: {cuda_lines:#?}",
            dir.display()
        );
        assert!(
            !cuda_lines
                .iter()
                .any(|l| l.contains("file=libtorch_cuda.so [0];  needed by")),
            "libtorch_cuda.so is still linked: {cuda_lines:#?}"
        );
    } else {
        assert!(cuda_lines.is_empty(), "{cuda_lines:#?}");
    }
    // And never a warning: this libtorch's CUDA part (where there is one) loads.
    let (_, _, stderr) = oodscope(&["methods"], &[]);
    assert!(!stderr.contains("CUDA disabled"), "{stderr}");
    let driver = [
        "/proc/driver/nvidia/version",
        "/dev/nvidiactl",
        "/dev/nvidia0",
        "/dev/dxg",
    ]
    .iter()
    .any(|p| Path::new(p).exists());
    if !driver {
        let (_, _, trace) = oodscope(&["methods"], &[("LD_DEBUG", "files")]);
        assert!(
            !trace.contains("libtorch_cuda.so"),
            "with no NVIDIA driver libtorch_cuda.so is not loaded"
        );
    }
}

/// `--device auto` picks CUDA in the binary exactly when this process, linked to libtorch_cuda,
/// sees CUDA: the run-time loading loses nothing on a GPU machine and finds nothing on a CPU one.
#[test]
fn the_binary_sees_cuda_exactly_when_linked_libtorch_does() {
    let root = support::repo_root();
    let model = root.join("models/fmnist-resnet.pt");
    let id = root.join("assets/demo/fmnist-test/bag");
    let (code, _, stderr) = oodscope(
        &[
            "score",
            "--model",
            &model.display().to_string(),
            "--id",
            &id.display().to_string(),
            "--ood",
            "uniform:8",
            "--quiet",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let expected = if tch::Cuda::is_available() {
        "fmnist-resnet on cuda"
    } else {
        "fmnist-resnet on cpu"
    };
    assert!(stderr.contains(expected), "expected {expected:?}: {stderr}");
}
