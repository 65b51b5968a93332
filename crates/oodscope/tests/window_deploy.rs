//! The window deploys the decision: δ survives a settings save and restore; "Save detector…" writes
//! a detector file with the window's method, parameters and δ (or the conformal δ of the held-out
//! ID share); "Open detector…" shows its manifest and δ and re-scores the open sets with it; the
//! watch view follows a real `oodscope serve` (totals, flagged thumbnails) and says in one line
//! when a server is down or answers something else.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use oodscope_data::Role as SetRole;
use oodscope_engine::deploy::{Calibration, SavedDetector, default_name, open};
use oodscope_engine::model::{DeviceChoice, Model};
use oodscope_gui::app::{OodscopeApp, Settings, Tab};
use oodscope_gui::testing::{
    auroc_of_first_ood, harness, harness_with, results_harness, root, scored, shows_text, step_until,
};

/// The displayed ID scores in set order and each set's file order (the test's own reading).
fn id_scores_by_file(app: &OodscopeApp) -> Vec<f32> {
    let result = app.result.as_ref().unwrap();
    let mut id: Vec<((usize, usize), f32)> = result
        .run
        .images
        .iter()
        .zip(&result.scores)
        .filter(|(e, _)| result.sets[e.set].role == SetRole::Id)
        .map(|(e, s)| ((e.set, e.index), *s))
        .collect();
    id.sort_by_key(|(key, _)| *key);
    id.into_iter().map(|(_, s)| s).collect()
}

/// Sets the text of the field labelled `label` (as assistive technology does).
fn type_into(h: &mut Harness<'static, OodscopeApp>, label: &str, text: &str) {
    h.get_by_role_and_label(Role::TextInput, label)
        .set_text_value_accesskit(text);
    h.step();
}

/// Moves δ with its slider to `at` of the way through the scores' range; the δ set.
fn move_delta(h: &mut Harness<'static, OodscopeApp>, at: f32) -> f32 {
    let (lo, hi) = h.state().derived.as_ref().unwrap().range;
    h.get_by_role_and_label(Role::Slider, "Threshold δ")
        .set_value_accesskit(f64::from(lo + at * (hi - lo)));
    h.step();
    h.state().threshold.unwrap()
}

#[test]
fn delta_is_kept_in_the_saved_settings_restored_at_start_and_written_in_the_exports() {
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(out.path());
    step_until(&mut h, "the demo to be scored", scored);
    let t95 = h.state().derived.as_ref().unwrap().threshold_95.unwrap();
    let delta = move_delta(&mut h, 0.3);
    assert_ne!(delta, t95, "δ must differ from the default it would fall back to");

    // The exports carry δ and its rule: the report's `decision`, the CSV's verdict per image.
    for label in ["Report JSON", "Scores CSV"] {
        h.get_by_label(label).click_accesskit();
        h.step();
        h.step();
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["decision"]["threshold"].as_f64().unwrap() as f32, delta);
    assert!(
        report["decision"]["rule"]
            .as_str()
            .unwrap()
            .starts_with("score >= threshold")
    );
    let mut csv = csv::Reader::from_path(out.path().join("scores.csv")).unwrap();
    let header = csv.headers().unwrap().clone();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (role, threshold, verdict) = (column("role"), column("threshold"), column("verdict"));
    let mut id_called_ood = 0;
    for row in csv.records() {
        let row = row.unwrap();
        assert_eq!(row[threshold].parse::<f32>().unwrap(), delta);
        id_called_ood += usize::from(&row[role] == "id" && &row[verdict] == "ood");
    }
    let below = id_scores_by_file(h.state()).iter().filter(|&&s| s < delta).count();
    assert!(below > 0);
    assert_eq!(id_called_ood, below, "ID images below δ are called OOD");
    let saved = h.state().settings_to_save();
    assert_eq!(saved.threshold, Some(delta));
    let restored: Settings = serde_json::from_str(&serde_json::to_string(&saved).unwrap()).unwrap();
    drop(h);
    let mut h = harness_with(restored);
    step_until(&mut h, "the restored session to be scored", scored);
    assert_eq!(h.state().threshold, Some(delta), "δ restored at start");
}

#[test]
fn save_detector_writes_the_windows_decision_and_open_detector_rescores_with_it() {
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(out.path());
    step_until(&mut h, "the demo to be scored", scored);
    let auroc_t1000 = auroc_of_first_ood(h.state());
    let shown = h.state().result.as_ref().unwrap().shown.clone();
    let model = Model::load(&root().join("models/fmnist-resnet.pt"), DeviceChoice::Cpu).unwrap();
    let name = default_name(&model, &shown);
    let path = out.path().join(format!("{name}.oodsd"));

    // The current δ.
    let delta = move_delta(&mut h, 0.4);
    h.get_by_label("Save detector…").click_accesskit();
    h.step();
    h.step();
    h.get_by_label("Save").click_accesskit();
    h.step();
    step_until(&mut h, "the detector to be saved", |app| {
        app.messages.last().is_some_and(|m| m.starts_with("saved "))
    });
    let (_, m) = open(&path).unwrap();
    assert_eq!(m.name, name);
    assert_eq!(m.method, shown, "the window's method and parameters");
    assert_eq!(m.decision.threshold, delta);
    assert_eq!(m.decision.false_alarm, None);
    assert_eq!(m.decision.calibration_images, 2000);
    assert_eq!(m.provenance.made_by, "window");
    assert!(shows_text(&h, &h.state().messages.last().unwrap().clone()));

    // δ for α = 0.05 on the held-out last 20% of the ID images (the form's defaults).
    let messages = h.state().messages.len();
    h.get_by_label("δ for a false-alarm rate α on a held-out share of the ID images")
        .click_accesskit();
    h.step();
    h.get_by_label("Save").click_accesskit();
    h.step();
    step_until(&mut h, "the conformal detector to be saved", |app| {
        app.messages.len() > messages && app.messages.last().is_some_and(|m| m.starts_with("saved "))
    });
    let id = id_scores_by_file(h.state());
    assert_eq!(id.len(), 2000);
    let expected = Calibration::conformal(id[1600..].to_vec(), 0.05).unwrap();
    let (_, m) = open(&path).unwrap();
    assert_eq!(m.decision.threshold, expected.threshold);
    assert_eq!(m.decision.false_alarm, Some(0.05));
    assert_eq!(m.decision.calibration_images, 400);
    let loaded = SavedDetector::load(&path, DeviceChoice::Cpu).unwrap();
    assert_eq!(loaded.calibration.scores, expected.scores);
    drop(loaded);

    // Move the window elsewhere (T = 1), then open the detector: its method, T and δ come back,
    // and the sets are scored by the detector (which keeps no logits).
    h.get_by_role_and_label(Role::Slider, "Temperature T")
        .set_value_accesskit(1.0);
    h.step();
    step_until(&mut h, "the T = 1 result", |app| {
        !app.is_rescoring() && !app.result_is_stale()
    });
    assert!((auroc_of_first_ood(h.state()) - auroc_t1000).abs() > 1e-3);
    type_into(&mut h, "or file", &path.display().to_string());
    h.get_by_label("Open detector").click_accesskit();
    h.step();
    step_until(&mut h, "the detector to be opened and the sets scored with it", |app| {
        app.detector.as_ref().is_some_and(|d| d.calibration.is_some()) && scored(app)
    });
    let app = h.state();
    assert_eq!(app.settings.tab, Tab::Detector);
    assert_eq!(app.result.as_ref().unwrap().shown, m.method);
    assert_eq!(app.settings.current_params().get("temperature"), Ok(1000.0));
    assert_eq!(app.threshold, Some(m.decision.threshold));
    assert_eq!(
        app.result.as_ref().unwrap().cache.logit_width,
        0,
        "the scores on display are the detector's"
    );
    let auroc = auroc_of_first_ood(app);
    assert!((auroc - auroc_t1000).abs() < 1e-9, "{auroc} vs {auroc_t1000}");
    assert!(shows_text(&h, &name), "the detector's name");
    assert!(shows_text(&h, &format!("δ = {}", m.decision.threshold)), "its δ");

    // The report says where δ came from.
    h.get_by_label("Report JSON").click_accesskit();
    h.step();
    h.step();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap()).unwrap();
    let decision = &report["decision"];
    assert_eq!(decision["threshold"].as_f64().unwrap() as f32, m.decision.threshold);
    assert_eq!(decision["detector"]["name"], name.as_str());
    assert_eq!(decision["detector"]["false_alarm"], 0.05);
    assert_eq!(decision["detector"]["calibration_images"], 400);
}

/// Steps the app until `done` holds: fails once the watched server has answered 30 polls without it.
fn step_until_watched(h: &mut Harness<'static, OodscopeApp>, what: &str, done: impl Fn(&OodscopeApp) -> bool) {
    while !done(h.state()) {
        h.step();
        std::thread::sleep(Duration::from_millis(20));
        let watch = h.state().watch.as_ref().expect("a watch");
        assert!(
            watch.polls < 30,
            "{} polls and still no {what}; status {:?}",
            watch.polls,
            watch.status
        );
    }
    h.step();
}

fn watch(h: &mut Harness<'static, OodscopeApp>, url: &str) {
    type_into(h, "Server", url);
    h.get_by_label("Watch server…").click_accesskit();
    h.step();
    assert_eq!(h.state().settings.tab, Tab::Watch);
}

/// `oodscope serve` on a detector, on a free port: the child and its address.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(detector: &Path) -> Server {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_oodscope"))
        .args(["serve", "--detector"])
        .arg(detector)
        .args(["--port", "0", "--keep-flagged", "4", "--device", "cpu"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let url = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("oodscope serve ended before it listened: {seen:?}")
        };
        if let Some(rest) = line.strip_prefix("oodscope serve: ")
            && let Some(at) = rest.find(" on http://")
        {
            let address = &rest[at + " on ".len()..];
            break address.split_whitespace().next().unwrap().to_string();
        }
        seen.push(line);
    };
    // Keep reading its log so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, url }
}

/// POSTs `images` (encoded files) to the server's infer endpoint of `name`; the answer's status line.
fn infer(url: &str, name: &str, images: &[PathBuf]) -> String {
    let data: Vec<String> = images
        .iter()
        .map(|p| base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).unwrap()))
        .collect();
    let body = serde_json::json!({
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [images.len()], "data": data}]
    })
    .to_string();
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST /v2/models/{name}/infer HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.lines().next().unwrap_or_default().to_string()
}

#[test]
fn the_watch_view_follows_a_real_server_totals_and_flagged_thumbnails() {
    let dir = tempfile::tempdir().unwrap();
    // A small calibration folder, and δ = 2 > every MSP score: every served image is flagged.
    let calibration = dir.path().join("calibration/bag");
    std::fs::create_dir_all(&calibration).unwrap();
    let mut bags: Vec<PathBuf> = std::fs::read_dir(root().join("assets/demo/fmnist-test/bag"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    bags.sort();
    for bag in &bags[..20] {
        std::fs::copy(bag, calibration.join(bag.file_name().unwrap())).unwrap();
    }
    let detector = dir.path().join("all.oodsd");
    let model = root().join("models/fmnist-resnet.pt");
    let (code, _, stderr) = crate::support::oodscope_with_cache(
        &dir.path().join("cache"),
        &[
            "detector",
            "save",
            "--model",
            &model.display().to_string(),
            "--method",
            "msp",
            "--calibration",
            &dir.path().join("calibration").display().to_string(),
            "--threshold",
            "2",
            "--name",
            "all",
            "--out",
            &detector.display().to_string(),
            "--device",
            "cpu",
            "--quiet",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let server = serve(&detector);

    let mut h = results_harness(None, dir.path());
    watch(&mut h, &server.url);
    step_until_watched(&mut h, "first answer", |app| {
        app.watch.as_ref().is_some_and(|w| w.latest.is_some())
    });
    assert!(shows_text(&h, "totals: 0 ID · 0 OOD"));
    let images = [bags[30].clone(), root().join("assets/demo/mnist/02107_digit4.png")];
    let status = infer(&server.url, "all", &images);
    assert!(status.contains(" 200"), "{status}");
    step_until_watched(&mut h, "the two flagged inputs", |app| {
        app.watch
            .as_ref()
            .is_some_and(|w| w.flagged.len() == 2 && w.latest.as_ref().is_some_and(|l| l.totals.ood == 2))
    });
    assert!(shows_text(&h, "totals: 0 ID · 2 OOD"));
    let app = h.state();
    let w = app.watch.as_ref().unwrap();
    assert_eq!(w.latest.as_ref().unwrap().recent_scores.len(), 2);
    assert_eq!(w.latest.as_ref().unwrap().calibration_scores.len(), 20);
    for f in &w.flagged {
        let texture = f.texture.as_ref().expect("a thumbnail");
        assert!(texture.size()[0] > 0 && texture.size()[1] > 0);
        assert!(f.answer.score < 2.0 && f.answer.p_value > 0.0);
    }
    assert_eq!(w.flagged.iter().map(|f| f.answer.seq).collect::<Vec<_>>(), [2, 1]);
    assert!(h.query_by_label_contains("#2 score").is_some());
    let ks = w
        .latest
        .as_ref()
        .unwrap()
        .ks_statistic
        .expect("a KS statistic once there is traffic");
    assert!(shows_text(&h, &format!("KS statistic vs calibration: {ks:.3}")));
}

#[test]
fn a_server_that_is_down_or_answers_garbage_is_one_line_and_retried() {
    // Garbage: a listener that answers every request with text that is not JSON.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let garbage = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nnot json");
        }
    });
    let out = tempfile::tempdir().unwrap();
    let mut h = results_harness(None, out.path());
    watch(&mut h, &garbage);
    step_until_watched(&mut h, "a status line about the garbage", |app| {
        app.watch.as_ref().is_some_and(|w| w.status.is_some())
    });
    let expected = format!("{garbage}/oodscope/v1/watch answered something other than oodscope serve's JSON");
    assert!(
        h.query_by_label_contains(&expected).is_some(),
        "{:?}",
        h.state().watch.as_ref().unwrap().status
    );
    let polls = h.state().watch.as_ref().unwrap().polls;
    step_until_watched(&mut h, "a second poll", |app| {
        app.watch.as_ref().is_some_and(|w| w.polls > polls)
    });
    assert!(
        h.query_by_label_contains(&expected).is_some(),
        "retried, and still said"
    );

    // Down: a port nothing listens on any more.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down = format!("http://{free}");
    watch(&mut h, &down);
    step_until_watched(&mut h, "a status line about the refused connection", |app| {
        app.watch.as_ref().is_some_and(|w| w.url == down && w.status.is_some())
    });
    let expected = format!("cannot reach {down}/oodscope/v1/watch: connection refused");
    assert!(
        h.query_by_label_contains(&expected).is_some(),
        "{:?}",
        h.state().watch.as_ref().unwrap().status
    );
}
