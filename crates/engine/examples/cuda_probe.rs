//! Checks the run-time loading of libtorch_cuda (crates/engine/src/torch_libs.rs) against libtorch itself:
//! `cargo run --release --example cuda_probe -- load` loads it first, as `main` does: on a GPU
//! machine CUDA is available and a CUDA tensor is made; without a GPU, libtorch answers "Found no
//! NVIDIA driver" (its CUDA part is registered). Controls: `none` (never loaded: no 'CUDA' backend)
//! and `late` (a tch call first: libtorch has already decided there is no CUDA).
fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "late" {
        println!("before loading: CUDA available {}", tch::Cuda::is_available());
    }
    if mode == "load" || mode == "late" {
        println!("{:?}", oodscope_engine::torch_libs::load_cuda());
    }
    println!(
        "CUDA available {}, devices {}, cuDNN {}",
        tch::Cuda::is_available(),
        tch::Cuda::device_count(),
        tch::Cuda::cudnn_is_available()
    );
    match tch::Tensor::f_ones([2], (tch::Kind::Float, tch::Device::Cuda(0))) {
        Ok(t) => println!("CUDA tensor made: sum {:?}", t.sum(tch::Kind::Float)),
        Err(e) => println!("no CUDA tensor: {}", e.to_string().lines().next().unwrap_or_default()),
    }
}
