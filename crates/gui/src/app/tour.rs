//! The screenshot tour (`oodscope --screenshots DIR`): once the demo is scored, shows each view in
//! turn (ODIN's histogram, KNN on the demo's fit, the gallery, one image, dropped photos), saves the
//! window as PNG through egui's own screenshot, and closes. Used by
//! scripts/screenshots.sh under Xvfb for the README.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{Command, OodscopeApp, Tab};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Main,
    Features,
    Gallery,
    Detail,
    Drop,
    Compare,
    Done,
}

pub struct Tour {
    dir: PathBuf,
    step: Step,
    frames_waited: u32,
    shot_requested: bool,
    written: Arc<Mutex<Option<Result<PathBuf, String>>>>,
    drop_files: Vec<PathBuf>,
    drop_sent: bool,
    compare_sent: bool,
    /// The method the tour started with, restored after the features step.
    first_method: Option<oodscope_engine::score::Method>,
}

/// Frames to let the layout and thumbnails settle before a screenshot.
const SETTLE_FRAMES: u32 = 30;

impl Tour {
    pub fn new(dir: PathBuf, drop_files: Vec<PathBuf>) -> Tour {
        Tour {
            dir,
            step: Step::Main,
            frames_waited: 0,
            shot_requested: false,
            written: Arc::new(Mutex::new(None)),
            drop_files,
            drop_sent: false,
            compare_sent: false,
            first_method: None,
        }
    }

    fn name(step: Step) -> &'static str {
        match step {
            Step::Main => "main",
            Step::Features => "features",
            Step::Gallery => "gallery",
            Step::Detail => "detail",
            Step::Drop => "drop",
            Step::Compare => "compare",
            Step::Done => "",
        }
    }
}

/// Advances the tour by one frame (call from `logic`).
pub fn advance(app: &mut OodscopeApp, ctx: &egui::Context) {
    let Some(mut tour) = app.tour.take() else { return };
    step(app, &mut tour, ctx);
    app.tour = Some(tour);
}

fn step(app: &mut OodscopeApp, tour: &mut Tour, ctx: &egui::Context) {
    ctx.request_repaint();
    if app.is_scoring() || app.is_rescoring() || app.result.is_none() || app.result_is_stale() {
        return;
    }
    if tour.step == Step::Drop && (app.drops.is_empty() || app.drops_pending()) {
        if !tour.drop_sent {
            tour.drop_sent = true;
            app.push(Command::ScoreFiles(tour.drop_files.clone()));
        }
        return;
    }
    if let Some(outcome) = tour.written.lock().ok().and_then(|mut w| w.take()) {
        match outcome {
            Ok(path) => eprintln!("wrote {}", path.display()),
            Err(e) => eprintln!("screenshot failed: {e}"),
        }
        tour.step = match tour.step {
            Step::Main => Step::Features,
            Step::Features => Step::Gallery,
            Step::Gallery => Step::Detail,
            Step::Detail => Step::Drop,
            Step::Drop => Step::Compare,
            Step::Compare | Step::Done => Step::Done,
        };
        tour.frames_waited = 0;
        tour.shot_requested = false;
    }
    match tour.step {
        Step::Main => app.settings.tab = Tab::Histogram,
        Step::Features => {
            // KNN on the demo's fit (the window fits the demo's training sample at start).
            let knn = oodscope_engine::score::Method::named("knn");
            if !app.has_fit() {
                return;
            }
            if app.settings.method != knn {
                tour.first_method = Some(app.settings.method);
                app.push(Command::SetMethod(knn));
                return;
            }
        }
        Step::Gallery => {
            if let Some(method) = tour.first_method.take() {
                app.push(Command::SetMethod(method));
                return;
            }
            app.settings.tab = Tab::Gallery;
        }
        Step::Detail => {
            app.settings.tab = Tab::Gallery;
            if app.selected.is_none() {
                let best = app.result.as_ref().map(|r| {
                    (0..r.scores.len())
                        .max_by(|&a, &b| r.scores[a].total_cmp(&r.scores[b]))
                        .unwrap_or(0)
                });
                app.push(Command::Select(best));
            }
            if app.perturbation.is_none() {
                return; // wait for the worker's x̃ − x before the screenshot
            }
        }
        Step::Drop => {
            app.selected = None;
            app.settings.tab = Tab::Dropped;
        }
        Step::Compare => {
            app.settings.tab = Tab::Compare;
            if !tour.compare_sent {
                tour.compare_sent = true;
                app.push(Command::Compare);
                return;
            }
            if app.is_comparing() || app.comparison.is_none() {
                return; // wait for every method's scores
            }
        }
        Step::Done => {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
    }
    tour.frames_waited += 1;
    if tour.frames_waited >= SETTLE_FRAMES && !tour.shot_requested {
        tour.shot_requested = true;
        let path = tour.dir.join(format!("{}.png", Tour::name(tour.step)));
        let written = tour.written.clone();
        ctx.request_screenshot(move |image| {
            let outcome = save_png(&image, &path).map(|_| path);
            if let Ok(mut w) = written.lock() {
                *w = Some(outcome);
            }
        });
    }
}

fn save_png(image: &egui::ColorImage, path: &std::path::Path) -> Result<(), String> {
    let [w, h] = image.size;
    let bytes: Vec<u8> = image.pixels.iter().flat_map(|p| [p.r(), p.g(), p.b()]).collect();
    let png = oodscope_engine::report::png::encode_rgb(w as u32, h as u32, bytes)?;
    oodscope_engine::output::write_atomically(path, &png).map_err(|e| e.to_string())
}
