//! The window's integration tests, one binary (libtorch is linked once): the real app driven by
//! egui_kittest (no display, no GPU), a module per subject.

mod gui;
mod window_layout;
