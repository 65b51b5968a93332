//! The window opens what the command line writes: a results file with saved logits opens without
//! a model, switches among its stored methods, moves δ and re-scores T from the logits with the
//! report's metrics; a dropped file without logits disables T, shows placeholders for moved images,
//! and a bad file says so in one line; a file whose images are all gone says so once, calmly.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use oodscope_engine::score::Method;
use oodscope_gui::app::{OodscopeApp, Tab};
use oodscope_gui::testing::{DroppedPath, auroc_of_first_ood, opened, results_harness, root, shows_text, step_until};

use crate::support::read_json;

/// Runs the oodscope binary (its fit cache in `dir`); panics with its stderr when it fails.
pub(crate) fn oodscope_cli(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_oodscope"))
        .args(args)
        .env("OODSCOPE_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oodscope {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into()
}

/// The demo sets as `score` / `compare` arguments (the ID set, then `ood`, then uniform noise).
pub(crate) fn demo_set_args(ood: &Path) -> Vec<String> {
    let s = |p: PathBuf| p.display().to_string();
    vec![
        "--model".into(),
        s(root().join("models/fmnist-resnet.pt")),
        "--id".into(),
        s(root().join("assets/demo/fmnist-test")),
        "--ood".into(),
        ood.display().to_string(),
        "--ood".into(),
        "uniform:300".into(),
        "--device".into(),
        "cpu".into(),
        "--quiet".into(),
    ]
}

/// The window's metrics for each OOD set against a report's (`metrics` of one method, by set).
pub(crate) fn assert_metrics_equal(app: &OodscopeApp, reference: &serde_json::Value, what: &str) {
    let derived = app.derived.as_ref().unwrap();
    assert_eq!(derived.ood.len(), 2, "{what}");
    for ood in &derived.ood {
        let m = ood.metrics.unwrap();
        let r = &reference[&ood.name];
        let close = |a: f64, key: &str| (a - r[key].as_f64().unwrap()).abs() < 1e-6;
        assert!(
            close(m.auroc, "auroc") && close(m.fpr_at_95_tpr, "fpr_at_95_tpr") && close(m.aupr_in, "aupr_in"),
            "{what}, {}: window {m:?} vs report {r}",
            ood.name
        );
    }
}

#[test]
fn a_results_file_opens_without_a_model_switches_methods_moves_delta_and_rescores_t_from_saved_logits() {
    let dir = tempfile::tempdir().unwrap();
    let (parquet, report, report_t10) = (
        dir.path().join("c.parquet"),
        dir.path().join("c.json"),
        dir.path().join("t10.json"),
    );
    let mut args: Vec<String> = vec!["compare".into()];
    args.extend(demo_set_args(&root().join("assets/demo/mnist")));
    args.extend(
        [
            "--methods",
            "msp,energy,odin",
            "--param",
            "odin.temperature=1000",
            "--param",
            "odin.epsilon=0",
            "--results",
            parquet.to_str().unwrap(),
            "--save-logits",
            "--report",
            report.to_str().unwrap(),
        ]
        .map(String::from),
    );
    oodscope_cli(dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut args: Vec<String> = vec!["score".into()];
    args.extend(demo_set_args(&root().join("assets/demo/mnist")));
    args.extend(
        [
            "--method",
            "odin",
            "--param",
            "temperature=10",
            "--param",
            "epsilon=0",
            "--report",
            report_t10.to_str().unwrap(),
        ]
        .map(String::from),
    );
    oodscope_cli(dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let report = read_json(&report);

    // `oodscope --results FILE`: a fresh app, no model.
    let mut h = results_harness(Some(&parquet), dir.path());
    step_until(&mut h, "the results file to open", opened);
    let app = h.state();
    assert!(app.model.is_none());
    assert_eq!(app.result.as_ref().unwrap().run.images.len(), 2000 + 2000 + 300);
    let first = app.settings.method;
    assert_metrics_equal(app, &report["methods"][first.name()]["metrics"], first.name());
    let auroc = auroc_of_first_ood(app);
    assert!(
        shows_text(&h, &format!("{:.1}%", 100.0 * auroc)),
        "AUROC {auroc} not shown"
    );

    // Each stored column is a method, shown from its column (no model, no job).
    let mut seen = vec![auroc];
    for name in ["msp", "energy", "odin"] {
        h.state_mut()
            .push(oodscope_gui::app::Command::SetMethod(Method::named(name)));
        h.step();
        h.step();
        let app = h.state();
        assert!(!app.is_scoring() && !app.is_rescoring(), "{name} from its column");
        assert_eq!(app.result.as_ref().unwrap().shown.method, Method::named(name));
        assert_metrics_equal(app, &report["methods"][name]["metrics"], name);
        seen.push(auroc_of_first_ood(app));
    }
    assert!(
        seen.iter().any(|a| (a - seen[0]).abs() > 1e-3),
        "switching methods changed nothing: {seen:?}"
    );

    // δ moves: the operating point follows in the same frame.
    let before = h.state().threshold.unwrap();
    let (lo, hi) = h.state().derived.as_ref().unwrap().range;
    let moved = lo + 0.25 * (hi - lo);
    h.get_by_role_and_label(Role::Slider, "Threshold δ")
        .set_value_accesskit(moved as f64);
    h.step();
    let app = h.state();
    let now = app.threshold.unwrap();
    assert!(
        (now - moved).abs() < 1e-3 * (hi - lo) && (now - before).abs() > 1e-6,
        "δ {before} → {now}"
    );

    // ODIN with ε = 0 and saved logits: T re-scores without the model and equals `score` at T = 10.
    h.get_by_role_and_label(Role::Slider, "Temperature T")
        .set_value_accesskit(10.0);
    h.step();
    step_until(&mut h, "T re-scored from the saved logits", |app| {
        opened(app) && app.result.as_ref().unwrap().shown.get("temperature") == Ok(10.0)
    });
    let app = h.state();
    assert!(app.model.is_none() && !app.is_scoring());
    assert_metrics_equal(
        app,
        &read_json(&report_t10)["metrics"],
        "ODIN at T = 10 from the saved logits",
    );
    // ε > 0 needs the gradients: its slider is disabled and says so.
    use egui_kittest::kittest::NodeT;
    assert!(
        h.get_by_role_and_label(Role::Slider, "Perturbation ε")
            .accesskit_node()
            .is_disabled()
    );
}

#[test]
fn a_dropped_results_file_without_logits_disables_t_shows_placeholders_and_bad_files_say_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // The OOD images copied away, scored, then removed: the file's paths no longer exist.
    let moved = dir.path().join("mnist-moved");
    std::fs::create_dir_all(&moved).unwrap();
    for entry in std::fs::read_dir(root().join("assets/demo/mnist")).unwrap().take(200) {
        let path = entry.unwrap().path();
        std::fs::copy(&path, moved.join(path.file_name().unwrap())).unwrap();
    }
    let (parquet, report) = (dir.path().join("r.parquet"), dir.path().join("r.json"));
    let mut args: Vec<String> = vec!["score".into()];
    args.extend(demo_set_args(&moved));
    args.extend(
        [
            "--method",
            "odin",
            "--param",
            "temperature=1000",
            "--param",
            "epsilon=0",
            "--results",
            parquet.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ]
        .map(String::from),
    );
    oodscope_cli(dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    std::fs::remove_dir_all(&moved).unwrap();

    let mut h = results_harness(None, dir.path());
    h.step();
    h.input_mut().dropped_files.push(Arc::new(DroppedPath(parquet.clone())));
    h.step();
    let app = h.state();
    assert!(
        app.opening().is_some() || app.opened.is_some(),
        "a .parquet drop opens the results, not scored: {:?}",
        app.messages
    );
    assert!(h.state().drops.is_empty());
    step_until(&mut h, "the dropped results file to open", opened);
    let app = h.state();
    assert!(app.model.is_none());
    assert_metrics_equal(app, &read_json(&report)["metrics"], "the dropped file");
    let missing: Vec<&str> = app
        .messages
        .iter()
        .map(|m| m.text.as_str())
        .filter(|m| m.contains("no longer exist"))
        .collect();
    assert_eq!(missing.len(), 1, "{:?}", app.messages);
    assert!(missing[0].contains("200 of"), "{}", missing[0]);

    // No saved logits: T needs the model, and the slider says so.
    use egui_kittest::kittest::NodeT;
    assert!(
        h.get_by_role_and_label(Role::Slider, "Temperature T")
            .accesskit_node()
            .is_disabled()
    );
    assert!(
        h.query_by_label_contains("needs the model — open it to re-score")
            .is_some()
    );

    // The gallery draws the moved images as placeholders, quietly.
    let messages = h.state().messages.len();
    h.state_mut().settings.tab = Tab::Gallery;
    for _ in 0..10 {
        h.step();
    }
    assert_eq!(h.state().messages.len(), messages, "{:?}", h.state().messages);

    // Bad files: one line each, naming the file; the view stays.
    let serial = h.state().result_serial;
    let truncated = dir.path().join("truncated.parquet");
    let bytes = std::fs::read(&parquet).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let foreign = dir.path().join("foreign.parquet");
    std::fs::write(&foreign, "not parquet at all").unwrap();
    for bad in [&truncated, &foreign] {
        let before = h.state().messages.len();
        h.input_mut().dropped_files.push(Arc::new(DroppedPath(bad.clone())));
        h.step();
        step_until(&mut h, "the bad file's message", |app| app.opening().is_none());
        let app = h.state();
        assert_eq!(app.messages.len(), before + 1, "{:?}", app.messages);
        let line = app.messages.last().unwrap();
        assert!(line.contains(bad.to_str().unwrap()) && !line.contains('\n'), "{line}");
        assert_eq!(app.result_serial, serial, "the view on display stays");
        assert_eq!(app.opened.as_ref().unwrap().path, parquet);
    }
}

#[test]
fn a_results_file_whose_images_are_all_gone_says_so_once_calmly_and_the_gallery_shows_placeholders() {
    use oodscope_gui::app::message::MessageKind;
    let dir = tempfile::tempdir().unwrap();
    // Both folder sets copied away, scored, then removed: the file was made "elsewhere".
    // The first 20 images of each of the first two entries (class folders) or of the folder.
    fn copy_some(from: &Path, to: &Path, depth: usize) {
        std::fs::create_dir_all(to).unwrap();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(from).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries.iter().filter(|p| p.is_file()).take(20) {
            std::fs::copy(path, to.join(path.file_name().unwrap())).unwrap();
        }
        for sub in entries.iter().filter(|p| p.is_dir() && depth > 0).take(2) {
            copy_some(sub, &to.join(sub.file_name().unwrap()), depth - 1);
        }
    }
    let copy = |from: &str, to: &str| {
        let to = dir.path().join(to);
        copy_some(&root().join(from), &to, 1);
        to
    };
    let (id, ood) = (copy("assets/demo/fmnist-test", "id"), copy("assets/demo/mnist", "ood"));
    let parquet = dir.path().join("r.parquet");
    let model = root().join("models/fmnist-resnet.pt");
    let args = [
        "score".to_string(),
        "--model".into(),
        model.display().to_string(),
        "--id".into(),
        id.display().to_string(),
        "--ood".into(),
        ood.display().to_string(),
        "--method".into(),
        "energy".into(),
        "--device".into(),
        "cpu".into(),
        "--quiet".into(),
        "--results".into(),
        parquet.display().to_string(),
    ];
    oodscope_cli(dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    std::fs::remove_dir_all(&id).unwrap();
    std::fs::remove_dir_all(&ood).unwrap();

    let mut h = results_harness(Some(&parquet), dir.path());
    step_until(&mut h, "the results file to open", opened);
    let app = h.state();
    assert!(app.opened.as_ref().unwrap().has_no_images());
    let kinds: Vec<(MessageKind, &str)> = app.messages.iter().map(|m| (m.kind, m.text.as_str())).collect();
    assert_eq!(kinds.len(), 1, "{kinds:?}");
    assert_eq!(kinds[0].0, MessageKind::Note, "not an error: {kinds:?}");
    assert!(
        kinds[0].1.contains("its images are not on this machine") && !kinds[0].1.contains("no longer exist"),
        "{kinds:?}"
    );
    h.state_mut().settings.tab = Tab::Gallery;
    for _ in 0..5 {
        h.step();
    }
    assert!(
        h.query_by_label_contains("are not on this machine: the tiles are placeholders")
            .is_some()
    );
    assert_eq!(h.state().messages.len(), 1, "said once: {:?}", h.state().messages);
}
