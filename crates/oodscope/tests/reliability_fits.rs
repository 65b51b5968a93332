//! Fits and models that are damaged, edited or made at the same time (issue 22, rows 4–8, 11, 17),
//! end to end: a KNN bank with flipped bytes (in a file, on disk beyond the memory budget, in the
//! cache), results parts scored with fits that differ only in their tensors, a damaged fit part,
//! fit headers edited against their tensors, a model whose features are NaN on some images, a
//! model file whose weights were overwritten, and two fits of one model and folder at once. Each
//! is one line naming the file (or the safe behaviour), never a panic or libtorch's C++ frames.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn fx(rel: &str) -> String {
    support::fixtures().join(rel).to_str().unwrap().to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs oodscope with its fit cache in `cache` and the extra environment `env`.
fn oodscope(cache: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oodscope"))
        .args(args)
        .env("OODSCOPE_CACHE_DIR", cache)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The run failed with exactly one error line, holding every one of `expected`, and nothing of a
/// panic or of libtorch's C++ frames.
fn assert_one_error(code: i32, err: &str, expected: &[&str]) {
    assert_eq!(code, 1, "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert!(
        errors.len() == 1 && expected.iter().all(|e| errors[0].contains(e)),
        "expected one error line with {expected:?}, got:\n{err}"
    );
    for bad in ["panicked", "Exception raised", "frame #", "C++"] {
        assert!(!err.contains(bad), "{bad}: {err}");
    }
}

const FEAT: &str = "features/models/feat.pt";

/// `oodscope fit` of the feature fixture model on its training folder, into `out`.
fn make_fit(cache: &Path, out: &Path) {
    let (code, _, err) = oodscope(
        cache,
        &[
            "fit",
            "--model",
            &fx(FEAT),
            "--train",
            &fx("features/fit"),
            "--out",
            s(out),
            "--quiet",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
}

/// `score --method METHOD` of the feature model on its ID and OOD sets, with `extra` arguments.
fn score(cache: &Path, method: &str, extra: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let (id, ood) = (fx("features/images/id"), fx("features/images/ood"));
    let model = fx(FEAT);
    let mut args = vec![
        "score", "--model", &model, "--method", method, "--quiet", "--device", "cpu", "--id", &id, "--ood", &ood,
    ];
    args.extend_from_slice(extra);
    oodscope(cache, &args, env)
}

/// A safetensors file's header (parsed) and where its data starts.
fn header(path: &Path) -> (serde_json::Value, usize) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (serde_json::from_slice(&bytes[8..8 + n]).unwrap(), 8 + n)
}

/// Flips `count` bytes of tensor `name` in the file at `path`, from its middle.
fn flip_tensor_bytes(path: &Path, name: &str, count: usize) {
    let (h, data) = header(path);
    let offsets = &h[name]["data_offsets"];
    let (start, end) = (
        offsets[0].as_u64().unwrap() as usize,
        offsets[1].as_u64().unwrap() as usize,
    );
    assert!(end - start >= 2 * count, "{name} is too small");
    let mut bytes = std::fs::read(path).unwrap();
    let at = data + (start + end) / 2;
    for b in &mut bytes[at..at + count] {
        *b ^= 0x5a;
    }
    std::fs::write(path, bytes).unwrap();
}

/// Rewrites the `oodscope` provenance in the header of the fit file at `path` (the data, and so
/// its digest, unchanged).
fn edit_provenance(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let bytes = std::fs::read(path).unwrap();
    let (mut h, data) = header(path);
    let mut provenance: serde_json::Value =
        serde_json::from_str(h["__metadata__"]["oodscope"].as_str().unwrap()).unwrap();
    edit(&mut provenance);
    h["__metadata__"]["oodscope"] = provenance.to_string().into();
    let mut text = h.to_string();
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[data..]);
    std::fs::write(path, out).unwrap();
}

/// Recomputes the digest in the header of a fit file whose data was changed (as a copy made by
/// someone who rewrote its tensors would have it): it loads, but its statistics are not the
/// original's.
fn rewrite_digest(path: &Path) {
    let script = "import sys, json, hashlib, struct\n\
        p = sys.argv[1]; b = bytearray(open(p, 'rb').read())\n\
        n = struct.unpack('<Q', b[:8])[0]\n\
        old = json.loads(bytes(b[8:8 + n]))['__metadata__']['tensors_sha256']\n\
        new = hashlib.sha256(b[8 + n:]).hexdigest()\n\
        b[8:8 + n] = bytes(b[8:8 + n]).replace(old.encode(), new.encode())\n\
        open(p, 'wb').write(b)\n";
    let out = Command::new(support::python())
        .args(["-c", script, s(path)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Row 6: 64 flipped bytes in the KNN bank give one line, from a file (bank in memory or on disk)
/// or from the cache (refitted, with a note), never different scores.
#[test]
fn a_fit_whose_bank_was_changed_is_refused_in_one_line_and_a_damaged_cache_is_refitted() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let fit = work.path().join("fit.safetensors");
    make_fit(cache.path(), &fit);
    let (code, table, err) = score(cache.path(), "knn", &["--fit", s(&fit)], &[]);
    assert_eq!(code, 0, "{err}");

    let damaged = work.path().join("damaged.safetensors");
    std::fs::copy(&fit, &damaged).unwrap();
    flip_tensor_bytes(&damaged, "knn_bank", 64);
    let expected = format!(
        "fit file {} is damaged: its tensors do not match their digest; refit",
        damaged.display()
    );
    for budget in ["256", "0"] {
        let (code, _, err) = score(
            cache.path(),
            "knn",
            &["--fit", s(&damaged)],
            &[("OODSCOPE_BANK_MEMORY_MB", budget)],
        );
        assert_one_error(code, &err, &[&expected]);
    }

    // The cache: the first run fits and caches; its file damaged, the next run fits again (and
    // says why) and scores what the intact fit scores.
    let train = fx("features/fit");
    let (code, cached_table, err) = score(cache.path(), "knn", &["--train", &train], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(cached_table, table);
    let cached: Vec<PathBuf> = std::fs::read_dir(cache.path().join("fits"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    flip_tensor_bytes(&cached[0], "knn_bank", 64);
    let (code, again, err) = score(cache.path(), "knn", &["--train", &train], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "note: the cached fit could not be used and was fitted again (fit file {} is damaged: its tensors do not match their digest; refit)",
            cached[0].display()
        )) && err.contains("fit: computed from 120 images"),
        "{err}"
    );
    assert_eq!(again, table, "the refitted cache scores as the intact fit");
    let (code, _, err) = score(cache.path(), "knn", &["--train", &train], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("fit: using the cached statistics"), "{err}");
}

/// Row 7: results parts scored with fits of the same provenance but different tensor data are
/// refused by `merge` in one line naming both files; with the same fit they merge.
#[test]
fn merge_refuses_parts_whose_fits_differ_in_tensor_data() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let fit = work.path().join("fit.safetensors");
    make_fit(cache.path(), &fit);
    let other = work.path().join("other.safetensors");
    std::fs::copy(&fit, &other).unwrap();
    flip_tensor_bytes(&other, "knn_bank", 64);
    rewrite_digest(&other);
    let part = |fit: &Path, shard: &str, name: &str| {
        let path = work.path().join(name);
        let (code, _, err) = score(
            cache.path(),
            "knn",
            &["--fit", s(fit), "--shard", shard, "--results", s(&path)],
            &[],
        );
        assert_eq!(code, 0, "{err}");
        path
    };
    let p0 = part(&fit, "0/2", "p0.parquet");
    let p1 = part(&fit, "1/2", "p1.parquet");
    let p1_other = part(&other, "1/2", "p1-other.parquet");
    let out = work.path().join("merged.parquet");
    let (code, _, err) = oodscope(cache.path(), &["merge", s(&p0), s(&p1), "--out", s(&out)], &[]);
    assert_eq!(code, 0, "the same fit merges: {err}");
    std::fs::remove_file(&out).unwrap();
    let (code, _, err) = oodscope(cache.path(), &["merge", s(&p0), s(&p1_other), "--out", s(&out)], &[]);
    assert_one_error(
        code,
        &err,
        &[&format!(
            "{}: the fit's tensor data (sha256) differs from {}'s",
            p1_other.display(),
            p0.display()
        )],
    );
    assert!(!out.exists());
}

/// Row 7, parts of a fit: a part whose tensors changed is refused by `fit-merge` in one line.
#[test]
fn fit_merge_refuses_a_part_whose_tensors_changed() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut parts = Vec::new();
    for shard in ["0/2", "1/2"] {
        let part = work.path().join(format!("part-{}.safetensors", &shard[..1]));
        let (code, _, err) = oodscope(
            cache.path(),
            &[
                "fit",
                "--model",
                &fx(FEAT),
                "--train",
                &fx("features/fit"),
                "--shard",
                shard,
                "--out",
                s(&part),
                "--quiet",
            ],
            &[],
        );
        assert_eq!(code, 0, "{err}");
        parts.push(part);
    }
    flip_tensor_bytes(&parts[1], "features", 64);
    let out = work.path().join("fit.safetensors");
    let (code, _, err) = oodscope(
        cache.path(),
        &["fit-merge", s(&parts[0]), s(&parts[1]), "--out", s(&out), "--quiet"],
        &[],
    );
    assert_one_error(
        code,
        &err,
        &[&format!(
            "fit part {}: damaged: its tensors do not match their digest; redo it with `oodscope fit --shard 1/2",
            parts[1].display()
        )],
    );
    assert!(!out.exists());
}

/// Rows 4 and 11: a fit header edited against its tensors is one line naming the file (never
/// libtorch's `amin()` error and its C++ frames, never accepted).
#[test]
fn fit_headers_that_disagree_with_their_tensors_are_refused_in_one_line() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let fit = work.path().join("fit.safetensors");
    make_fit(cache.path(), &fit);
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, Edit, &str); 5] = [
        (
            "zero-counts",
            |p| p["counts"] = serde_json::json!([0, 0, 0, 0]),
            "its header's `counts` sum to 0, but it says it holds 120 images; refit",
        ),
        (
            "short-counts",
            |p| p["counts"] = serde_json::json!([40, 40, 40]),
            "its header's `counts` has 3 entries for 4 classes; refit",
        ),
        (
            "moved-counts",
            |p| p["counts"] = serde_json::json!([60, 0, 30, 30]),
            "its header's `counts` [60, 0, 30, 30] differ from its `counts` tensor [30, 30, 30, 30]; refit",
        ),
        (
            "width",
            |p| p["feature_width"] = 128.into(),
            "its header says feature_width = 128, the model gives 16; refit",
        ),
        (
            "images",
            |p| {
                p["images"] = 0.into();
                p["counts"] = serde_json::json!([0, 0, 0, 0]);
                p["predicted_counts"] = serde_json::json!([0, 0, 0, 0]);
            },
            "its header says it holds no images; refit",
        ),
    ];
    for (name, edit, expected) in cases {
        let edited = work.path().join(format!("{name}.safetensors"));
        std::fs::copy(&fit, &edited).unwrap();
        edit_provenance(&edited, edit);
        let (code, _, err) = score(cache.path(), "mahalanobis", &["--fit", s(&edited)], &[]);
        assert_one_error(code, &err, &[&format!("fit file {}: {expected}", edited.display())]);
    }
}

/// A TorchScript model (features z = the channel means, NaN for nearly white images) with its
/// card, written by the venv's PyTorch into `dir`.
fn nan_model(dir: &Path) -> PathBuf {
    let model = dir.join("nan.pt");
    let script = "import sys, torch\n\
        class Net(torch.nn.Module):\n\
        \x20   def __init__(self):\n\
        \x20       super().__init__()\n\
        \x20       self.fc = torch.nn.Linear(3, 4)\n\
        \x20   def forward(self, x):\n\
        \x20       z = x.mean((2, 3))\n\
        \x20       white = (x.mean((1, 2, 3)) > 0.95).unsqueeze(1)\n\
        \x20       z = torch.where(white, torch.full_like(z, float('nan')), z)\n\
        \x20       return self.fc(z), z\n\
        torch.manual_seed(0)\n\
        torch.jit.trace(Net().eval(), torch.rand(2, 3, 12, 12)).save(sys.argv[1])\n";
    let out = Command::new(support::python())
        .args(["-c", script, s(&model)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(
        dir.join("nan.toml"),
        "name = \"nan\"\noutputs = \"logits+features\"\ninput = [3, 12, 12]\nmean = [0.0, 0.0, 0.0]\nstd = [1.0, 1.0, 1.0]\nclasses = [\"c0\", \"c1\", \"c2\", \"c3\"]\nresize = \"resize\"\n",
    )
    .unwrap();
    model
}

/// Row 5: a model whose features are NaN on some images stops `fit` with one line naming them,
/// and nothing is written.
#[test]
fn a_fit_stops_at_nan_features_and_names_the_images() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let model = nan_model(work.path());
    // The fixture's 120 training images and two white ones (NaN features), both in the first
    // batch of 64 (c1 sorts after c0's 30 images).
    let train = work.path().join("train");
    for class in ["c0", "c1", "c2", "c3"] {
        std::fs::create_dir_all(train.join(class)).unwrap();
        for entry in std::fs::read_dir(fx(&format!("features/fit/{class}"))).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), train.join(class).join(entry.file_name())).unwrap();
        }
    }
    let white = image::RgbImage::from_pixel(12, 12, image::Rgb([255, 255, 255]));
    let whites = [train.join("c1/white-0.png"), train.join("c1/white-1.png")];
    for path in &whites {
        white.save(path).unwrap();
    }
    let out_dir = work.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("nan.safetensors");
    let (code, _, err) = oodscope(
        cache.path(),
        &[
            "fit",
            "--model",
            s(&model),
            "--train",
            s(&train),
            "--out",
            s(&out),
            "--quiet",
        ],
        &[],
    );
    assert_one_error(
        code,
        &err,
        &[&format!(
            "fit: the model's outputs are NaN or infinite for 2 of the 64 images passed so far ({}, {}), so every statistic would be NaN: fix the model, or leave these images out",
            whites[0].display(),
            whites[1].display()
        )],
    );
    assert_eq!(
        std::fs::read_dir(&out_dir).unwrap().count(),
        0,
        "nothing is left behind"
    );

    // Without the white images the same model fits.
    for path in &whites {
        std::fs::remove_file(path).unwrap();
    }
    let (code, _, err) = oodscope(
        cache.path(),
        &[
            "fit",
            "--model",
            s(&model),
            "--train",
            s(&train),
            "--out",
            s(&out),
            "--quiet",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
}

/// The offset and length of the data of the stored zip entry whose name ends with `suffix` (from
/// the central directory: PyTorch's local headers leave the sizes to a data descriptor).
fn entry_data(bytes: &[u8], suffix: &str) -> (usize, usize) {
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let mut at = 0;
    while at + 46 <= bytes.len() {
        if bytes[at..at + 4] == *b"PK\x01\x02" {
            let name_len = u16_at(at + 28);
            let name = String::from_utf8_lossy(&bytes[at + 46..at + 46 + name_len]);
            if name.ends_with(suffix) && u16_at(at + 10) == 0 {
                let local = u32_at(at + 42);
                let data = local + 30 + u16_at(local + 26) + u16_at(local + 28);
                return (data, u32_at(at + 20));
            }
        }
        at += 1;
    }
    panic!("no stored entry *{suffix}");
}

/// Row 8: a model file whose weights were overwritten (its zip CRC no longer matches) is refused
/// in one line naming the file and the entry, before libtorch loads it.
#[test]
fn a_model_whose_weights_were_overwritten_is_refused_naming_the_entry() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    for file in ["plain.pt", "plain.toml"] {
        std::fs::copy(fx(&format!("models/{file}")), work.path().join(file)).unwrap();
    }
    let model = work.path().join("plain.pt");
    let mut bytes = std::fs::read(&model).unwrap();
    let (start, len) = entry_data(&bytes, "data/0");
    assert!(len >= 64, "data/0 holds {len} bytes");
    for b in &mut bytes[start..start + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&model, &bytes).unwrap();
    let (id, ood) = (fx("images/id"), fx("images/ood"));
    let (code, _, err) = oodscope(
        cache.path(),
        &[
            "score",
            "--model",
            s(&model),
            "--method",
            "msp",
            "--quiet",
            "--id",
            &id,
            "--ood",
            &ood,
        ],
        &[],
    );
    assert_one_error(
        code,
        &err,
        &[
            &format!("model {}: damaged: the entry `", model.display()),
            "data/0` of its zip archive does not match its CRC-32",
        ],
    );
}

/// Row 17: two `fit` (and two `score --train`) of one model and folder at once both succeed, and
/// the cache then holds one whole file and nothing else.
#[test]
fn two_fits_of_one_model_and_folder_at_once_both_succeed() {
    let cache = tempfile::tempdir().unwrap();
    let (model, train) = (fx(FEAT), fx("features/fit"));
    let (id, ood) = (fx("features/images/id"), fx("features/images/ood"));
    let fit: Vec<&str> = vec![
        "fit",
        "--model",
        &model,
        "--train",
        &train,
        "--quiet",
        "--batch-size",
        "4",
    ];
    let score_train: Vec<&str> = vec![
        "score",
        "--model",
        &model,
        "--method",
        "knn",
        "--train",
        &train,
        "--id",
        &id,
        "--ood",
        &ood,
        "--quiet",
        "--device",
        "cpu",
        "--batch-size",
        "4",
    ];
    let fits = cache.path().join("fits");
    for (round, args) in [&fit, &fit, &score_train, &score_train].into_iter().enumerate() {
        if fits.exists() {
            std::fs::remove_dir_all(&fits).unwrap();
        }
        let spawn = || {
            Command::new(env!("CARGO_BIN_EXE_oodscope"))
                .args(args)
                .env("OODSCOPE_CACHE_DIR", cache.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let runs = [spawn(), spawn()];
        for run in runs {
            let out = run.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let left: Vec<String> = std::fs::read_dir(&fits)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            left.len() == 1 && left[0].ends_with(".safetensors") && !left[0].starts_with('.'),
            "round {round}: {left:?}"
        );
        let (code, _, err) = score(cache.path(), "knn", &["--train", &train], &[]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("fit: using the cached statistics"), "round {round}: {err}");
    }
}
