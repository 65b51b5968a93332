//! Links libtorch's rpath for this crate's binaries and tests (build/libtorch_link.rs).
#[path = "../../build/libtorch_link.rs"]
mod libtorch_link;

fn main() {
    libtorch_link::link_libtorch(true);
}
