//! Compiles crates/engine/cpp/aoti_shim.cpp (the bridge to libtorch's AOTInductor package loader) against the
//! headers of the libtorch that torch-sys links, with the flags torch-sys uses for its own wrapper.

use std::path::{Path, PathBuf};

/// Builds and links the shim; `lib_dir` is torch-sys's libtorch `lib/` folder (DEP_TCH_LIBTORCH_LIB).
pub fn build_shim(lib_dir: &str) {
    println!("cargo:rerun-if-changed=cpp/aoti_shim.cpp");
    println!("cargo:rerun-if-changed=build/aoti.rs");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    // A wheel's and a libtorch download's layout alike: lib/ and include/ side by side.
    let root = Path::new(lib_dir).parent().map(Path::to_path_buf).unwrap_or_default();
    let include: PathBuf = root.join("include");
    // PyTorch's wheels and libtorch downloads are built with the C++11 ABI since 2.7.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("cpp/aoti_shim.cpp")
        .compile("oodscope_aoti");
    // A package's compiled library needs libtorch.so by name; it is not linked (it pulls
    // libtorch_cuda, which an install with the CPU libraries lacks) but loaded before the first
    // package (crates/engine/src/torch_libs.rs::load_libtorch).
}
