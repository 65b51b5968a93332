//! The app in an egui_kittest harness, as the window opens it, stepped until its background jobs
//! are done (feature `testing`): what the window's tests, here and in the binary's crate, share.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable;
use egui_kittest::{Harness, HarnessBuilder};
use oodscope_engine::detect::Params;
use oodscope_engine::score::Method;

use crate::app::{OodscopeApp, SavedSet, Settings};

/// The checkout (the bundled model and demo sets).
pub fn root() -> PathBuf {
    oodscope_engine::assets_root()
}

/// A small demo: the bundled model, Fashion-MNIST ID, MNIST and uniform noise as OOD, ODIN with
/// ε = 0 (so that T re-scores from cached logits).
pub fn demo_settings(export_dir: &Path) -> Settings {
    let set = |spec: String, ood: bool| SavedSet {
        spec,
        ood,
        enabled: true,
    };
    Settings {
        model: Some(root().join("models/fmnist-resnet.pt").display().to_string()),
        sets: vec![
            set(root().join("assets/demo/fmnist-test").display().to_string(), false),
            set(root().join("assets/demo/mnist").display().to_string(), true),
            set("uniform:300".into(), true),
        ],
        method: Method::named("odin"),
        params: [(
            "odin".to_string(),
            Params::new().with("temperature", 1000.0).with("epsilon", 0.0),
        )]
        .into(),
        export_dir: export_dir.display().to_string(),
        ..Settings::default()
    }
}

/// Fits made by the window's tests go to a cache folder of their own, not the user's.
fn private_fit_cache() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = root().join("target/gui-test-fit-cache");
        // SAFETY: set once, before any app (and its worker threads) of this test binary starts.
        unsafe { std::env::set_var("OODSCOPE_CACHE_DIR", dir) };
    });
}

/// The app as the window opens it (fonts and focus options included).
pub fn harness_with(settings: Settings) -> Harness<'static, OodscopeApp> {
    harness_from(HarnessBuilder::default().with_size([1440.0, 900.0]), settings)
}

/// [`harness_with`] from the caller's builder (a renderer for snapshots, another size).
pub fn harness_from(builder: HarnessBuilder<OodscopeApp>, settings: Settings) -> Harness<'static, OodscopeApp> {
    private_fit_cache();
    builder.build_eframe(move |cc| {
        crate::prepare_context(&cc.egui_ctx);
        OodscopeApp::new(&cc.egui_ctx, settings)
    })
}

/// The app on the small demo ([`demo_settings`]).
pub fn harness(export_dir: &Path) -> Harness<'static, OodscopeApp> {
    harness_with(demo_settings(export_dir))
}

/// The app with no model, opening nothing yet (or `results` at start, as `oodscope --results`).
pub fn results_harness(results: Option<&Path>, export_dir: &Path) -> Harness<'static, OodscopeApp> {
    harness_with(Settings {
        results: results.map(|p| p.display().to_string()),
        export_dir: export_dir.display().to_string(),
        ..Settings::default()
    })
}

/// Steps the app until `done` holds. Background jobs finish on the worker's thread, so this waits
/// for completion, not for a clock a loaded machine can miss: it fails as soon as nothing is left
/// in flight (every job sent has finished and its events are applied, for several frames) while
/// `done` still does not hold. Only a hang meets the last-resort bound, `HANG_AFTER` times
/// `OODSCOPE_TEST_TIME_SCALE` (default 1).
pub fn step_until(h: &mut Harness<'static, OodscopeApp>, what: &str, done: impl Fn(&OodscopeApp) -> bool) {
    const HANG_AFTER: Duration = Duration::from_secs(900);
    const QUIET_FRAMES: usize = 5;
    let scale: f64 = std::env::var("OODSCOPE_TEST_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let start = Instant::now();
    let mut quiet_frames = 0;
    while !done(h.state()) {
        assert!(
            start.elapsed().as_secs_f64() < HANG_AFTER.as_secs_f64() * scale,
            "hung waiting for {what}; messages: {:?}",
            h.state().messages
        );
        let quiet_before = h.state().is_quiet();
        h.step();
        quiet_frames = if quiet_before && h.state().is_quiet() {
            quiet_frames + 1
        } else {
            0
        };
        assert!(
            quiet_frames < QUIET_FRAMES || done(h.state()),
            "nothing is left in flight, and still no {what}; messages: {:?}",
            h.state().messages
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    h.step();
}

pub fn scored(app: &OodscopeApp) -> bool {
    app.derived.is_some() && !app.is_scoring() && !app.result_is_stale()
}

pub fn auroc_of_first_ood(app: &OodscopeApp) -> f64 {
    app.derived.as_ref().unwrap().ood[0].metrics.unwrap().auroc
}

pub fn shows_text(h: &Harness<'static, OodscopeApp>, text: &str) -> bool {
    h.query_all_by_label(text).next().is_some()
}

/// Whether a results file is open and shown, with nothing left to re-score.
pub fn opened(app: &OodscopeApp) -> bool {
    app.opened.is_some() && app.opening().is_none() && app.derived.is_some() && !app.is_rescoring()
}

/// A file dropped on the window (egui's `DroppedFile` for a path).
#[derive(Debug)]
pub struct DroppedPath(pub PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}
