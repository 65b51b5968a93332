//! The entry points the fuzz targets drive (`fuzz/`, run by scripts/fuzz.sh) and the saved corpus
//! replays as an ordinary test: each takes any bytes, goes through the reader a user's file
//! reaches, and must return (an error is fine) without panicking or aborting. Each returns why the
//! input was refused, so the replay can check that the good seeds are still accepted and that a
//! saved crash is refused by the check that fixed it.

use std::io::Write;
use std::path::Path;

use oodscope_data::decode::{Preprocess, decode_bytes};
use oodscope_data::preprocessing::{Backend, Interpolation, ResizeMode};

use crate::model::{DeviceChoice, Model, ModelCard};
use crate::stats::Fit;

/// A card's text (any bytes, read as UTF-8 with replacement), parsed and checked as `load` does;
/// when it parses, its preprocessing, which must have the input's size.
pub fn card(bytes: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(bytes);
    let card = ModelCard::parse(&text, Path::new("fuzz/model.toml")).map_err(|e| e.to_string())?;
    let pre = card.preprocess();
    assert_eq!(
        pre.len() as i64,
        card.input_shape().iter().product::<i64>(),
        "the preprocessing makes the input"
    );
    assert!(card.num_classes() > 0, "a card has classes");
    Ok(())
}

/// An image file's bytes decoded and preprocessed; the first byte picks the backend, the
/// interpolation, the resize and the channels, so every path of the decoder is reached.
pub fn image(bytes: &[u8]) -> Result<(), String> {
    let Some((&choice, data)) = bytes.split_first() else {
        return Err("no bytes".into());
    };
    let mut pre = Preprocess::new(if choice & 1 == 0 { 3 } else { 1 }, 16, 12);
    pre.backend = if choice & 2 == 0 { Backend::Tensor } else { Backend::Pil };
    pre.interpolation = match (choice >> 2) % 3 {
        0 => Interpolation::Bilinear,
        1 => Interpolation::Bicubic,
        _ => Interpolation::Nearest,
    };
    match (choice >> 4) % 3 {
        0 => {}
        1 => pre.resize = ResizeMode::CenterCrop,
        _ => {
            pre.resize = ResizeMode::ShorterSide(20);
            pre.crop = Some((16, 12));
        }
    }
    // Small budgets: a fuzzer's run must not spend its time on allowed but huge images.
    pre.limits.max_pixels = 1 << 22;
    pre.limits.max_alloc_bytes = 1 << 26;
    let values = decode_bytes(data, &pre).map_err(|e| e.to_string())?;
    assert_eq!(values.len(), pre.len(), "a decoded image has the input's size");
    Ok(())
}

/// A results (Parquet) file's bytes, opened with everything it saved, as `results open`, `merge`
/// and the window do.
pub fn results(bytes: &[u8]) -> Result<(), String> {
    with_file(bytes, "results.parquet", |path| crate::results::open(path).map(|_| ()))
}

/// A fit file's bytes, loaded for `model` (checked against it, digest verified), as `--fit` does.
pub fn fit(bytes: &[u8], model: &Model) -> Result<(), String> {
    with_file(bytes, "model.fit.safetensors", |path| {
        Fit::load(path, model, 1 << 20).map(|_| ())
    })
}

/// A detector file's bytes opened as `detector show` opens one: its header, format and version, the
/// digest over its contents and its manifest (the model it names is not loaded: a fuzzed file
/// cannot pass the digest, so nothing past it would be reached).
pub fn detector(bytes: &[u8]) -> Result<(), String> {
    with_file(bytes, "fuzz.oodsd", |path| {
        crate::deploy::open(path).map(|_| ()).map_err(|e| e.to_string())
    })
}

/// The bundled demo model (with features), the one the fit corpus was made for.
pub fn demo_model() -> Result<Model, String> {
    let path = crate::assets::assets_root().join("models/fmnist-resnet.pt");
    Model::load(&path, DeviceChoice::Cpu).map_err(|e| e.to_string())
}

/// Runs `read` on `bytes` written to a fresh temporary file named `name`.
fn with_file(bytes: &[u8], name: &str, read: impl FnOnce(&Path) -> Result<(), String>) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("no temporary folder: {e}"))?;
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    read(&path)
}
