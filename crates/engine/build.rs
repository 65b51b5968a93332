//! Links libtorch so the binary runs without LD_LIBRARY_PATH: from `$ORIGIN/../lib/oodscope` when
//! installed (scripts/install.sh), else from the build's libtorch. The binaries load libtorch_cuda
//! (and, for AOTInductor packages, libtorch.so) at run time where it exists (src/torch_libs.rs);
//! the integration tests link libtorch_cuda directly. Also compiles the AOTInductor shim.
#[path = "build/aoti.rs"]
mod aoti;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    aoti::build_shim(&lib_dir);
    // One entry, relative first: scripts/install.sh cuts it after the relative part.
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../lib/oodscope:{lib_dir}");
    if std::path::Path::new(&lib_dir).join("libtorch_cuda.so").exists() {
        // The linker drops libtorch_cuda as unneeded otherwise, and CUDA then looks absent; the
        // tests run in the checkout and check that the binaries' run-time loading agrees.
        println!("cargo:rustc-link-arg-tests=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
