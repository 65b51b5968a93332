//! Links libtorch's rpath for this crate's unit tests (no test target: no libtorch_cuda link) (build/libtorch_link.rs).
#[path = "../../build/libtorch_link.rs"]
mod libtorch_link;

fn main() {
    libtorch_link::link_libtorch(false);
}
