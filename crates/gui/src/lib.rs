//! oodscope's window: the worker thread that owns the model and every tensor (`worker`), the app's
//! state and the logic that applies commands and events (`app`), the panels that draw it (`ui`),
//! and the frame that joins them (`window`). Nothing here touches a tensor outside `worker`.

pub mod app;
mod error;
#[cfg(feature = "testing")]
pub mod testing;
pub mod ui;
pub mod watch;
pub mod window;
pub mod worker;

pub use error::Error;
pub use window::{StartupOptions, has_display, prepare_context, run_gui};
