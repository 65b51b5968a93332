//! Links libtorch so the binary runs without LD_LIBRARY_PATH and sees CUDA where there is one.
#[path = "build/aoti.rs"]
mod aoti;
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    aoti::build_shim(&lib_dir);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    if std::path::Path::new(&lib_dir).join("libtorch_cuda.so").exists() {
        // The linker drops libtorch_cuda as unneeded otherwise, and CUDA then looks absent.
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
