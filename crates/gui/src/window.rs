//! The window: starting it (settings from the command line, the last session or the demo; a
//! one-line fallback to the headless demo report where there is no display), and its frame, which
//! joins the app's state (`app`) and the panels that draw it (`ui`).

use std::path::PathBuf;

use crate::Error;
use crate::app::{OodscopeApp, SavedSet, Settings};

/// What the window is asked to open with (the command line's flags, or a caller's own).
#[derive(Debug, Clone, Default)]
pub struct StartupOptions {
    /// A model to open (.pt with its card, or a .toml card).
    pub model: Option<PathBuf>,
    /// ID set specs (folders).
    pub id: Vec<String>,
    /// OOD set specs (folders, `uniform:N`, `gaussian:N`).
    pub ood: Vec<String>,
    /// Start with the bundled demo, ignoring the saved settings.
    pub demo: bool,
    /// Take screenshots of each view into this folder, then quit.
    pub screenshots: Option<PathBuf>,
    /// A results file to open.
    pub results: Option<PathBuf>,
    /// A running `oodscope serve` to watch (`http://HOST:PORT`).
    pub watch: Option<String>,
}

/// Whether a window can be opened here (an X11 or Wayland display).
pub fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// The settings the command line asks for, if it asks for any.
pub fn startup_settings(args: &StartupOptions) -> Option<Settings> {
    let root = oodscope_engine::assets_root();
    if args.demo || args.screenshots.is_some() {
        return Some(Settings::demo(&root));
    }
    if args.model.is_none() && args.results.is_none() {
        return None;
    }
    let mut settings = Settings {
        model: args.model.as_ref().map(|m| m.display().to_string()),
        results: args.results.as_ref().map(|r| r.display().to_string()),
        ..Settings::default()
    };
    let set = |spec: &String, ood: bool| SavedSet {
        spec: spec.clone(),
        ood,
        enabled: true,
    };
    settings.sets = args
        .id
        .iter()
        .map(|s| set(s, false))
        .chain(args.ood.iter().map(|s| set(s, true)))
        .collect();
    Some(settings)
}

/// Opens the window and runs until it closes.
pub fn run_gui(args: &StartupOptions) -> Result<(), Error> {
    if let Err(missing) = oodscope_engine::assets::find() {
        if args.demo || args.screenshots.is_some() {
            return Err(missing.into());
        }
        eprintln!("oodscope: {missing}");
    }
    let startup = startup_settings(args);
    let tour_dir = args.screenshots.clone();
    let watch = args.watch.clone();
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1440.0, 900.0])
            .with_title("oodscope")
            .with_drag_and_drop(true),
        persist_window: tour_dir.is_none(),
        // OpenGL runs anywhere (Xvfb, old drivers); eframe would pick wgpu, built in for the tests.
        renderer: eframe::Renderer::Glow,
        ..Default::default()
    };
    eframe::run_native(
        "oodscope",
        options,
        Box::new(move |cc| {
            prepare_context(&cc.egui_ctx);
            let mut app = OodscopeApp::from_creation_context(cc, startup);
            if let Some(url) = watch {
                app.push(crate::app::Command::Watch(url));
            }
            if let Some(dir) = tour_dir {
                let _ = std::fs::create_dir_all(&dir);
                let internet = oodscope_engine::assets_root().join("assets/internet");
                let mut files: Vec<_> = std::fs::read_dir(&internet)
                    .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                    .unwrap_or_default();
                files.sort();
                app.tour = Some(crate::app::tour::Tour::new(dir, files));
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| Error::Window(e.to_string()))
}

/// What the window sets up in egui once: fallback fonts for any file name, text sizes and colours
/// that stay readable, and focus that a press anywhere takes from a text field.
pub fn prepare_context(ctx: &egui::Context) {
    crate::ui::fonts::install(ctx);
    crate::ui::style::install(ctx);
    crate::ui::focus_options(ctx);
}

/// Asks for the keyboard once, on the first frame: a window started from a terminal otherwise
/// waits for a click before its keys (1–7, C, …) work. (`ViewportBuilder::with_active` does nothing
/// on X11 and Wayland.)
fn take_focus_once(ctx: &egui::Context) {
    let asked = egui::Id::unique("oodscope-asked-for-focus");
    if !ctx.data(|d| d.get_temp::<bool>(asked).unwrap_or(false)) {
        ctx.data_mut(|d| d.insert_temp(asked, true));
        ctx.send_viewport_cmd(egui::ViewportCommand::Focus);
    }
}

/// A frame: the worker's events, then the panels drawn from the state, then their commands
/// applied once.
impl eframe::App for OodscopeApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        take_focus_once(ctx);
        self.drain_events(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let mut commands = Vec::new();
        crate::ui::app_ui(self, &mut commands, ui);
        let ctx = ui.ctx().clone();
        if self.apply_drawn(commands, &ctx) {
            // Redraw this frame with the new state: moving δ shows its effect in the same frame.
            ctx.request_discard("oodscope applied commands");
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings_to_save());
    }
}
