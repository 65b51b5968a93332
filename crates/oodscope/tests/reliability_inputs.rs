//! Sizes, inputs and paths (issue 22, rows 1–3, 9, 10 and the smaller items): every bad input made
//! here in a temporary folder, and what a user gets: one line naming the file or the flag, before
//! anything large is allocated; a FIFO or device named as an image listed as skipped, never read;
//! a file name that is not UTF-8 kept exactly in the scores CSV, the results file and the report.

use crate::support;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs oodscope; returns (exit code, stdout, stderr). A run that blocks (a FIFO opened) is killed
/// after a minute (scaled by OODSCOPE_TEST_TIME_SCALE) and fails the test.
fn oodscope(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oodscope"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let scale: f64 = std::env::var("OODSCOPE_TEST_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs_f64() > 60.0 * scale {
            child.kill().unwrap();
            panic!("oodscope {args:?} still running after a minute: it blocked");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn fx(rel: &str) -> String {
    support::fixtures().join(rel).to_str().unwrap().to_string()
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Asserts a failed run said exactly `expected` as its one line.
fn assert_one_line(result: (i32, String, String), expected: &str) {
    let (code, _, stderr) = result;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr, format!("{expected}\n"));
}

/// The fixture model `plain` with its card changed by `edit`, as `dir/NAME.pt` and `dir/NAME.toml`.
fn plain_with_card(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let card = std::fs::read_to_string(fx("models/plain.toml")).unwrap();
    std::fs::write(dir.join(format!("{name}.toml")), edit(card)).unwrap();
    std::fs::copy(fx("models/plain.pt"), dir.join(format!("{name}.pt"))).unwrap();
    dir.join(format!("{name}.pt"))
}

/// A folder of the fixture's OOD images (its top level) for the odd entries to sit among.
fn ood_folder(dir: &Path) -> PathBuf {
    let set = dir.join("odd");
    std::fs::create_dir(&set).unwrap();
    for entry in std::fs::read_dir(fx("images/ood")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, set.join(path.file_name().unwrap())).unwrap();
        }
    }
    set
}

#[test]
fn an_input_over_the_memory_budget_is_one_line_for_score_methods_and_preprocess() {
    let dir = tempfile::tempdir().unwrap();
    let model = plain_with_card(dir.path(), "big", |card| {
        card.replace("input = [3, 12, 12]", "input = [1, 100000, 100000]")
            .replace("mean = [0.5, 0.4, 0.3]", "mean = [0.5]")
            .replace("std = [0.25, 0.2, 0.3]", "std = [0.25]")
    });
    let expected = format!(
        "error: model card {}: `input` = [1, 100000, 100000] takes 38146 MiB per image as float32, over the 256 MiB limit for one input image (4096×4096 RGB takes 192 MiB; classifiers take 224 to 1024 px)",
        text(&model.with_extension("toml"))
    );
    let out = dir.path().join("x.npy");
    let (id, image) = (fx("images/id"), fx("images/ood/01_rgb_big.png"));
    let model = text(&model);
    assert_one_line(
        oodscope(&["score", "--model", model, "--id", &id, "--ood", "uniform:4", "--quiet"]),
        &expected,
    );
    assert_one_line(oodscope(&["methods", "--model", model]), &expected);
    assert_one_line(
        oodscope(&["preprocess", "--model", model, &image, "--out", text(&out)]),
        &expected,
    );
    assert!(!out.exists());
}

#[test]
fn a_noise_set_over_the_budget_is_one_line() {
    assert_one_line(
        oodscope(&[
            "score",
            "--model",
            &fx("models/plain.pt"),
            "--id",
            &fx("images/id"),
            "--ood",
            "uniform:100000000000000",
            "--quiet",
        ]),
        "error: OOD set: uniform:100000000000000: at most 10000000 noise images (a run keeps about 100 bytes per image, so 10⁷ take about 1 GB); use a smaller N",
    );
}

#[test]
fn a_parameter_given_twice_is_one_line_naming_it() {
    let (model, id) = (fx("models/plain.pt"), fx("images/id"));
    let run = |command: &str, extra: &[&str]| {
        let mut args = vec![command, "--model", &model, "--id", &id, "--ood", "uniform:4", "--quiet"];
        args.extend_from_slice(extra);
        oodscope(&args)
    };
    assert_one_line(
        run(
            "score",
            &[
                "--method",
                "odin",
                "--param",
                "temperature=5",
                "--param",
                "temperature=6",
            ],
        ),
        "error: --param temperature is given twice: give each parameter once",
    );
    assert_one_line(
        run(
            "score",
            &["--method", "odin", "--param", "temperature=5", "--temperature", "6"],
        ),
        "error: temperature is given twice (--param temperature=… and --temperature): give it once",
    );
    assert_one_line(
        run(
            "compare",
            &["--param", "odin.temperature=5", "--param", "odin.temperature=6"],
        ),
        "error: --param odin.temperature is given twice: give each parameter once",
    );
}

#[test]
fn a_class_named_twice_in_a_card_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let model = plain_with_card(dir.path(), "twice", |card| {
        card.replace(
            r#"classes = ["c0", "c1", "c2", "c3"]"#,
            r#"classes = ["c0", "c1", "c0", "c3"]"#,
        )
    });
    assert_one_line(
        oodscope(&["methods", "--model", text(&model)]),
        &format!(
            r#"error: model card {}: `classes` names "c0" twice (classes 0 and 2): class names must be unique"#,
            text(&model.with_extension("toml"))
        ),
    );
}

/// A PNG whose header says `width × height` (the pixels of a 1 × 1 image follow: a decoder that
/// believed the header would allocate for all of them).
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::GrayImage::new(1, 1)
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .unwrap();
    // Signature (8), IHDR's length (4), "IHDR" (4), width (4), height (4), …, its CRC at 29.
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// CRC-32 (ISO-HDLC, PNG's), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn decoding_bounds_the_pixel_count_not_the_sides() {
    let dir = tempfile::tempdir().unwrap();
    let card = fx("models/plain.toml");
    // 20 000 × 1: longer than any side limit, but 20 000 pixels.
    let strip = dir.path().join("strip.png");
    image::GrayImage::from_fn(20_000, 1, |x, _| image::Luma([(x % 251) as u8]))
        .save(&strip)
        .unwrap();
    let out = dir.path().join("strip.npy");
    let (code, _, stderr) = oodscope(&["preprocess", "--model", &card, text(&strip), "--out", text(&out)]);
    assert_eq!(code, 0, "{stderr}");
    let tensor: ndarray::Array4<f32> = ndarray_npy::read_npy(&out).unwrap();
    assert_eq!(tensor.shape(), [1, 3, 12, 12]);
    // 16 000 × 16 000: 256 megapixels, refused from its header.
    let bomb = dir.path().join("bomb.png");
    std::fs::write(&bomb, png_claiming(16_000, 16_000)).unwrap();
    assert_one_line(
        oodscope(&["preprocess", "--model", &card, text(&bomb), "--out", text(&out)]),
        &format!(
            "error: {}: image is 16000×16000 (256.0 megapixels), over the 89.5-megapixel limit (possible decompression bomb)",
            text(&bomb)
        ),
    );
}

#[test]
fn preprocess_refuses_more_images_than_one_tensor_may_hold() {
    let dir = tempfile::tempdir().unwrap();
    let model = plain_with_card(dir.path(), "large", |card| {
        card.replace("input = [3, 12, 12]", "input = [3, 4096, 4096]")
    });
    let image = fx("images/ood/01_rgb_big.png");
    let out = dir.path().join("x.npy");
    let mut args = vec!["preprocess", "--model", text(&model), "--out", text(&out)];
    args.extend(std::iter::repeat_n(image.as_str(), 22));
    assert_one_line(
        oodscope(&args),
        "error: 22 images of 3×4096×4096 are over the 4096 MiB limit for one tensor: preprocess 21 or fewer at once",
    );
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

#[test]
fn fifos_and_devices_named_as_images_are_listed_as_skipped_and_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let set = ood_folder(dir.path());
    let images = std::fs::read_dir(&set).unwrap().count();
    mkfifo(&set.join("x.png"));
    std::os::unix::fs::symlink("/dev/zero", set.join("zero.png")).unwrap();
    let report = dir.path().join("r.json");
    let (code, _, stderr) = oodscope(&[
        "score",
        "--model",
        &fx("models/plain.pt"),
        "--id",
        &fx("images/id"),
        "--ood",
        text(&set),
        "--report",
        text(&report),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (fifo, zero) = (set.join("x.png"), set.join("zero.png"));
    let fifo_reason = "not a regular file: a FIFO (named pipe)";
    let zero_reason = "not a regular file: a symbolic link to a character device";
    assert!(
        stderr.contains(&format!(
            "skipped 2 files:\n  [odd] {}: {fifo_reason}\n  [odd] {}: {zero_reason}\n",
            text(&fifo),
            text(&zero)
        )),
        "{stderr}"
    );
    let json = support::read_json(&report);
    let skipped: Vec<(&str, &str)> = json["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["path"].as_str().unwrap(), s["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(skipped, [(text(&fifo), fifo_reason), (text(&zero), zero_reason)]);
    assert_eq!(json["sets"][1]["files"].as_u64(), Some(images as u64));
    // Named on its own, the FIFO is refused in one line, without opening it.
    assert_one_line(
        oodscope(&[
            "preprocess",
            "--model",
            &fx("models/plain.toml"),
            text(&fifo),
            "--out",
            text(&dir.path().join("x.npy")),
        ]),
        &format!("error: {}: {fifo_reason}", text(&fifo)),
    );
}

#[test]
fn a_file_name_that_is_not_utf8_is_kept_exactly_in_csv_results_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let set = ood_folder(dir.path());
    let good = set.join(OsStr::from_bytes(b"good\xff\xfe.png"));
    let literal = set.join("lit\\x41.png");
    let broken = set.join(OsStr::from_bytes(b"broken\xe9.png"));
    std::fs::copy(fx("images/ood/01_rgb_big.png"), &good).unwrap();
    std::fs::copy(fx("images/ood/01_rgb_big.png"), &literal).unwrap();
    std::fs::write(&broken, "not an image").unwrap();
    let (scores, results, report) = (
        dir.path().join("s.csv"),
        dir.path().join("r.parquet"),
        dir.path().join("r.json"),
    );
    let (code, _, stderr) = oodscope(&[
        "score",
        "--model",
        &fx("models/plain.pt"),
        "--id",
        &fx("images/id"),
        "--ood",
        text(&set),
        "--scores",
        text(&scores),
        "--results",
        text(&results),
        "--report",
        text(&report),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let folder = text(&set);
    // The documented escaping: invalid bytes as \xHH, a literal \x as \x5c, the rest unchanged.
    let csv_paths: Vec<String> = csv::Reader::from_path(&scores)
        .unwrap()
        .records()
        .map(|r| r.unwrap()[2].to_string())
        .filter(|p| p.starts_with(folder))
        .collect();
    for expected in [
        format!("{folder}/01_rgb_big.png"),
        format!(r"{folder}/good\xff\xfe.png"),
        format!(r"{folder}/lit\x5cx41.png"),
    ] {
        assert!(csv_paths.contains(&expected), "{expected} not in {csv_paths:?}");
    }
    let json = support::read_json(&report);
    assert_eq!(json["skipped"][0]["path"], format!(r"{folder}/broken\xe9.png"));
    // The results file gives the very paths back, the skipped one in its place.
    let read = oodscope_engine::results::open(&results).unwrap();
    let oodscope_data::SetSource::Folder { files, .. } = &read.sets[1].source else {
        panic!("not a folder set")
    };
    let paths: Vec<&Path> = files.iter().map(|f| f.path.as_path()).collect();
    for path in [&good, &literal, &broken] {
        assert!(paths.contains(&path.as_path()), "{path:?} not in {paths:?}");
    }
}
