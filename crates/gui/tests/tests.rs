//! The window's integration tests, one binary (libtorch is linked once): the real app driven by
//! egui_kittest (no display, no GPU; snapshots render on the CPU), a module per subject.

mod blocks;
mod gui;
mod method_picker;
mod snapshots;
mod window_layout;
