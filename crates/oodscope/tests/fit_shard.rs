//! `fit --shard i/n` and `fit-merge` end to end: three parts merged equal the single-machine fit
//! (every tensor, read back with the `safetensors` crate, and its provenance), score the same with
//! every fitted method, land in the fit cache where `score --train` finds them; bad parts (a shard
//! missing or given twice, another model, another batch size, a truncated part, a fit file, a shard
//! out of range) are one line each, with nothing written.

use crate::support;

use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use safetensors::tensor::Dtype;
use support::oodscope_with_cache as oodscope;

fn fx(rel: &str) -> String {
    support::fixtures().join(rel).to_str().unwrap().to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `oodscope fit` of the feature fixture (whole, or `--shard`) with batches of 16 (8 batches of
/// 120 images: shards of 2, 3 and 3 batches), on the CPU, keeping per-class covariances (gmm).
fn fit(cache: &Path, model: &str, out: &Path, shard: Option<&str>, batch: &str) -> (i32, String, String) {
    let train = fx("features/fit");
    let mut args = vec![
        "fit",
        "--class-covariances",
        "--model",
        model,
        "--train",
        &train,
        "--out",
        s(out),
        "--batch-size",
        batch,
        "--device",
        "cpu",
        "--quiet",
    ];
    if let Some(shard) = shard {
        args.extend(["--shard", shard]);
    }
    oodscope(cache, &args)
}

/// Three parts of `model`'s fit in `dir`.
fn parts(cache: &Path, dir: &Path, model: &str) -> Vec<PathBuf> {
    (0..3)
        .map(|i| {
            let part = dir.join(format!("part-{i}.safetensors"));
            let (code, stdout, err) = fit(cache, model, &part, Some(&format!("{i}/3")), "16");
            assert_eq!(code, 0, "{err}");
            assert!(stdout.contains(&format!("Fit part {i}/3 of feat")), "{stdout}");
            part
        })
        .collect()
}

fn merge(cache: &Path, parts: &[&Path], out: Option<&Path>) -> (i32, String, String) {
    let mut args = vec!["fit-merge", "--quiet"];
    args.extend(parts.iter().map(|p| s(p)));
    if let Some(out) = out {
        args.extend(["--out", s(out)]);
    }
    oodscope(cache, &args)
}

/// A tensor's values as f64, whatever its stored type.
fn values(t: &safetensors::tensor::TensorView) -> Vec<f64> {
    let bytes = t.data();
    match t.dtype() {
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        Dtype::I64 => bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        other => panic!("unexpected dtype {other:?}"),
    }
}

/// Every tensor of two fit files agrees to 1e-12 (relative where values exceed 1), and their
/// provenance is the same.
fn assert_same_fit(a: &Path, b: &Path) {
    let (bytes_a, bytes_b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    let (fa, fb) = (
        SafeTensors::deserialize(&bytes_a).unwrap(),
        SafeTensors::deserialize(&bytes_b).unwrap(),
    );
    let mut names: Vec<String> = fa.names().into_iter().cloned().collect();
    let mut names_b: Vec<String> = fb.names().into_iter().cloned().collect();
    names.sort();
    names_b.sort();
    assert_eq!(names, names_b);
    for expected in [
        "knn_bank",
        "shared_pinv",
        "global_pinv",
        "vim_eigenvectors",
        "vim_alpha",
        "react_percentiles",
        "class_covariances",
        "block_class_means",
        "block_shared_pinvs",
        "gram_mins",
        "gram_maxs",
        "gram_expected",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing: {names:?}");
    }
    for name in &names {
        let (ta, tb) = (fa.tensor(name).unwrap(), fb.tensor(name).unwrap());
        assert_eq!((ta.dtype(), ta.shape()), (tb.dtype(), tb.shape()), "{name}");
        let (va, vb) = (values(&ta), values(&tb));
        for (i, (x, y)) in va.iter().zip(&vb).enumerate() {
            let scale = x.abs().max(1.0);
            assert!(
                (x - y).abs() <= 1e-12 * scale || (x.is_nan() && y.is_nan()),
                "{name}[{i}]: single fit {x}, merged {y}"
            );
        }
    }
    let meta = |path: &Path| {
        let bytes = std::fs::read(path).unwrap();
        let (_, m) = SafeTensors::read_metadata(&bytes).unwrap();
        m.metadata().clone().unwrap()
    };
    let (ma, mb) = (meta(a), meta(b));
    assert_eq!(ma["format"], "oodscope-fit");
    let (pa, pb): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&ma["oodscope"]).unwrap(),
        serde_json::from_str(&mb["oodscope"]).unwrap(),
    );
    assert_eq!(pa, pb, "the merged fit records the single fit's provenance");
    assert_eq!(pa["images"], 120);
}

#[test]
fn three_parts_merge_into_the_single_fit_and_score_the_same() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    // The feature model with its inner blocks: the per-block statistics merge too.
    let model = fx("features/models/feat_blocks.pt");
    let single = work.path().join("single.safetensors");
    let (code, _, err) = fit(cache.path(), &model, &single, None, "16");
    assert_eq!(code, 0, "{err}");
    let parts = parts(cache.path(), work.path(), &model);
    let merged = work.path().join("merged.safetensors");
    // Any order of the parts.
    let (code, stdout, err) = merge(cache.path(), &[&parts[2], &parts[0], &parts[1]], Some(&merged));
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("Fit of feat_blocks: 120 images"), "{stdout}");
    assert!(err.contains("merged 3 parts"), "{err}");
    assert_same_fit(&single, &merged);

    // Every method that uses the fit scores the same images identically with either file.
    let (id, ood) = (fx("features/images/id"), fx("features/images/ood"));
    for method in [
        "mahalanobis",
        "rmds",
        "gmm",
        "knn",
        "vim",
        "react",
        "dice",
        "klm",
        "multi-mahalanobis",
        "gram",
    ] {
        let scores: Vec<(String, String)> = [&single, &merged]
            .iter()
            .map(|fit| {
                let csv = work
                    .path()
                    .join(format!("{method}-{}.csv", fit.file_stem().unwrap().to_str().unwrap()));
                let (code, table, err) = oodscope(
                    cache.path(),
                    &[
                        "score",
                        "--model",
                        &model,
                        "--method",
                        method,
                        "--fit",
                        s(fit),
                        "--id",
                        &id,
                        "--ood",
                        &ood,
                        "--scores",
                        s(&csv),
                        "--quiet",
                        "--device",
                        "cpu",
                    ],
                );
                assert_eq!(code, 0, "{method}: {err}");
                (table, std::fs::read_to_string(&csv).unwrap())
            })
            .collect();
        assert!(scores[0].1.lines().count() > 40, "{method}: {}", scores[0].1);
        assert_eq!(
            scores[0], scores[1],
            "{method}: the merged fit scores as the single one"
        );
    }

    // Without --out the merged fit goes into the cache, where `score --train` takes it as its own:
    // gmm's, and any other method's (a fit with per-class covariances holds everything).
    let (code, _, err) = merge(cache.path(), &[&parts[0], &parts[1], &parts[2]], None);
    assert_eq!(code, 0, "{err}");
    let train = fx("features/fit");
    for method in ["gmm", "knn"] {
        let (code, _, err) = oodscope(
            cache.path(),
            &[
                "score", "--model", &model, "--method", method, "--train", &train, "--id", &id, "--ood", &ood,
                "--quiet", "--device", "cpu",
            ],
        );
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains("fit: using the cached statistics of 120 images"),
            "{method}: {err}"
        );
    }
}

#[test]
fn bad_parts_are_one_line_each_and_nothing_is_written() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let parts = parts(cache.path(), work.path(), &fx("features/models/feat.pt"));
    let [p0, p1, p2] = [&parts[0], &parts[1], &parts[2]];
    let out = work.path().join("out.safetensors");
    let refused = |given: &[&Path], says: &[&str]| {
        let (code, _, err) = merge(cache.path(), given, Some(&out));
        assert_eq!(code, 1, "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        for s in says {
            assert!(err.contains(s), "expected {s:?} in: {err}");
        }
        assert!(!out.exists(), "nothing is written: {err}");
    };
    let name = |p: &Path| p.file_name().unwrap().to_str().unwrap().to_string();

    refused(&[p0, p2], &["shard 1/3 missing"]);
    let copy = work.path().join("copy-of-1.safetensors");
    std::fs::copy(p1, &copy).unwrap();
    refused(
        &[p0, p1, &copy, p2],
        &["shard 1/3 is given twice", &name(&copy), &name(p1)],
    );

    // A part of another model (the same network with its head in a file: another model hash).
    let other = work.path().join("other-model.safetensors");
    let (code, _, err) = fit(
        cache.path(),
        &fx("features/models/feat_flat.pt"),
        &other,
        Some("1/3"),
        "16",
    );
    assert_eq!(code, 0, "{err}");
    refused(&[p0, &other, p2], &[&name(&other), "another model"]);

    // A part made without per-class covariances, among parts with them.
    let plain = work.path().join("plain.safetensors");
    let (code, _, err) = oodscope(
        cache.path(),
        &[
            "fit",
            "--model",
            &fx("features/models/feat.pt"),
            "--train",
            &fx("features/fit"),
            "--out",
            s(&plain),
            "--batch-size",
            "16",
            "--device",
            "cpu",
            "--quiet",
            "--shard",
            "1/3",
        ],
    );
    assert_eq!(code, 0, "{err}");
    refused(&[p0, &plain, p2], &[&name(&plain), "made without --class-covariances"]);

    // A part cut into other batches: its shard is another block of images.
    let batches = work.path().join("other-batches.safetensors");
    let (code, _, err) = fit(cache.path(), &fx("features/models/feat.pt"), &batches, Some("1/3"), "8");
    assert_eq!(code, 0, "{err}");
    refused(&[p0, &batches, p2], &[&name(&batches), "--batch-size"]);

    // A truncated part (a copy cut short, as an interrupted transfer leaves it).
    let bytes = std::fs::read(p2).unwrap();
    let truncated = work.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    refused(&[p0, p1, &truncated], &[&name(&truncated), "truncated"]);

    // A fit file is not a part.
    let whole = work.path().join("whole.safetensors");
    let (code, _, err) = fit(cache.path(), &fx("features/models/feat.pt"), &whole, None, "16");
    assert_eq!(code, 0, "{err}");
    refused(&[p0, p1, &whole], &[&name(&whole), "not a part"]);

    // A shard out of range, or without a place for its part.
    let part = work.path().join("p.safetensors");
    let (code, _, err) = fit(cache.path(), &fx("features/models/feat.pt"), &part, Some("3/3"), "16");
    assert_eq!(code, 2, "{err}");
    assert!(err.lines().count() == 1 && err.contains("out of range"), "{err}");
    assert!(!part.exists());
    let (code, _, err) = oodscope(
        cache.path(),
        &[
            "fit",
            "--model",
            &fx("features/models/feat.pt"),
            "--train",
            &fx("features/fit"),
            "--shard",
            "0/3",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.lines().count() == 1 && err.contains("needs --out"), "{err}");
}
