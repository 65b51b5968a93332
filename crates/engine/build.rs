//! Compiles the AOTInductor shim and links libtorch's rpath for the engine's tests and examples
//! (build/libtorch_link.rs).
#[path = "build/aoti.rs"]
mod aoti;
#[path = "../../build/libtorch_link.rs"]
mod libtorch_link;

fn main() {
    if let Some(lib_dir) = libtorch_link::link_libtorch(true) {
        aoti::build_shim(&lib_dir);
    }
}
