//! Snapshot tests: every view of the window, on the demo with a comparison, a tuning run, dropped
//! photos and a saved detector, rendered by wgpu on the CPU (Mesa's lavapipe) at 1440×900 and
//! 1920×1080, and compared with the images kept in `tests/snapshots/` within the tolerance of the
//! repository's `kittest.toml`. `UPDATE_SNAPSHOTS=1` writes new ones (look at them before keeping
//! them); a failing view leaves `NAME.new.png` and `NAME.diff.png` beside its image.
//!
//! Paths in the window are relative to this crate (the tests' working directory), so the pictures
//! do not depend on where the checkout lies.

use std::path::{Path, PathBuf};

use egui_kittest::Harness;
use oodscope_engine::detect::Params;
use oodscope_engine::score::Method;
use oodscope_gui::app::deploy::{DeltaSource, SaveDetectorForm};
use oodscope_gui::app::{Command, OodscopeApp, SavedSet, Settings, Tab};
use oodscope_gui::testing::{harness_from, scored, step_until};

const SIZES: [[f32; 2]; 2] = [[1440.0, 900.0], [1920.0, 1080.0]];

const VIEWS: [(Tab, &str); 8] = [
    (Tab::Histogram, "histogram"),
    (Tab::Curves, "curves"),
    (Tab::Gallery, "gallery"),
    (Tab::Dropped, "dropped"),
    (Tab::Tuning, "tuning"),
    (Tab::Compare, "compare"),
    (Tab::Detector, "detector"),
    (Tab::Watch, "watch"),
];

/// Frames for the layout, the thumbnails and the plots' bounds to settle after a change of view.
const SETTLE_FRAMES: usize = 8;

/// The checkout's files as the tests' working directory (this crate) reaches them.
fn from_crate(path: &str) -> PathBuf {
    Path::new("../..").join(path)
}

/// The demo's ID set and uniform noise (small: the tuning run and the comparison stay short), the
/// generalised entropy (its grid needs no gradient), exports to a folder of this test's own.
fn snapshot_settings(export_dir: &Path) -> Settings {
    let set = |spec: PathBuf, ood: bool| SavedSet {
        spec: spec.display().to_string(),
        ood,
        enabled: true,
    };
    Settings {
        model: Some(from_crate("models/fmnist-resnet.pt").display().to_string()),
        sets: vec![
            set(from_crate("assets/demo/fmnist-test"), false),
            set(from_crate("assets/demo/mnist"), true),
            set("uniform:300".into(), true),
        ],
        method: Method::named("gen"),
        params: [("gen".to_string(), Params::new())].into(),
        export_dir: export_dir.display().to_string(),
        ..Settings::default()
    }
}

fn settle(h: &mut Harness<'static, OodscopeApp>) {
    for _ in 0..SETTLE_FRAMES {
        h.step();
    }
}

#[test]
fn every_view_matches_its_kept_snapshot_at_1440x900_and_1920x1080() {
    let export = PathBuf::from("../../target/gui-snapshots");
    let _ = std::fs::remove_dir_all(&export);
    std::fs::create_dir_all(&export).unwrap();
    let builder = Harness::<OodscopeApp>::builder().with_size(SIZES[0]).wgpu();
    let mut h = harness_from(builder, snapshot_settings(&export));
    step_until(&mut h, "the demo to be scored", scored);

    // A tuning run, a comparison, dropped photos and a saved detector: each view with content.
    h.state_mut().push(Command::Tune);
    h.step();
    step_until(&mut h, "the tuning result", |app| {
        app.tune_result.is_some() && !app.is_tuning()
    });
    h.state_mut().push(Command::Compare);
    h.step();
    step_until(&mut h, "the comparison", |app| {
        app.comparison.is_some() && !app.is_comparing()
    });
    let mut photos: Vec<PathBuf> = std::fs::read_dir(from_crate("assets/internet"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    photos.sort();
    let dropped = photos.len();
    h.state_mut().push(Command::ScoreFiles(photos));
    step_until(&mut h, "the dropped photos to be scored", |app| {
        app.drops.len() == dropped && !app.drops_pending()
    });
    let detector = export.join("demo.oodd");
    h.state_mut().push(Command::SaveDetector(SaveDetectorForm {
        path: detector.clone(),
        name: "demo".into(),
        source: DeltaSource::Current,
        embed_model: false,
    }));
    h.step();
    step_until(&mut h, "the detector to be saved", |app| {
        detector.exists() && app.is_quiet()
    });
    h.state_mut().push(Command::OpenDetector(detector));
    h.step();
    step_until(&mut h, "the detector to be opened", |app| {
        app.detector
            .as_ref()
            .is_some_and(|d| d.calibration.is_some() || d.failure.is_some())
    });
    h.state_mut().push(Command::DismissMessage);
    // The one field from the clock: the detector's making time.
    let opened = h
        .state_mut()
        .detector
        .as_mut()
        .and_then(|d| d.manifest.as_mut())
        .unwrap();
    opened.provenance.created = "2026-01-01T00:00:00Z".into();

    for [width, height] in SIZES {
        h.set_size(egui::vec2(width, height));
        for (tab, name) in VIEWS {
            h.state_mut().push(Command::SetTab(tab));
            settle(&mut h);
            h.snapshot(format!("{name}_{width}x{height}"));
        }
    }
}
