//! Shared by the build scripts of every crate that links a binary, a test or an example with
//! libtorch (engine, gui, oodscope, bench): the rpath that lets them run without LD_LIBRARY_PATH,
//! from `$ORIGIN/../lib/oodscope` when installed (scripts/install.sh), else from the build's
//! libtorch. The binaries load libtorch_cuda (and, for AOTInductor packages, libtorch.so) at run
//! time where it exists (engine's `torch_libs`); the tests link libtorch_cuda directly.

/// Emits the link arguments (`has_tests`: the crate has test targets, which link libtorch_cuda);
/// returns torch-sys's libtorch `lib/` folder, if torch-sys gave one (the crate must depend on
/// torch-sys directly to see DEP_TCH_LIBTORCH_LIB).
pub fn link_libtorch(has_tests: bool) -> Option<String> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../../build/libtorch_link.rs");
    let lib_dir = std::env::var("DEP_TCH_LIBTORCH_LIB").ok()?;
    // One entry, relative first: scripts/install.sh cuts it after the relative part.
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../lib/oodscope:{lib_dir}");
    if has_tests && std::path::Path::new(&lib_dir).join("libtorch_cuda.so").exists() {
        // The linker drops libtorch_cuda as unneeded otherwise, and CUDA then looks absent; the
        // tests run in the checkout and check that the binaries' run-time loading agrees.
        println!("cargo:rustc-link-arg-tests=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    Some(lib_dir)
}
