//! `oodscope preprocess`: images through the card's preprocessing, written as the float32 tensor
//! `[N, C, H, W]` the model receives (a `.npy`; N = 1 for one image), to compare with a Python
//! pipeline.
//!
//! Only the card is read (the TorchScript file need not exist). The values are those after
//! torchvision's `ToTensor()` and `Normalize(mean, std)`, `(x − mean) / std` in float32 exactly as
//! the model's forward pass normalises; `--no-normalize` writes the [0, 1] pixels before it.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use clap::Args;
use ndarray::Array4;
use ndarray_npy::{WriteNpyError, WriteNpyExt};

use super::paths::Paths;
use oodscope_data::decode_file;
use oodscope_engine::model::{ModelCard, card_path_for};
use oodscope_engine::output::AtomicFile;

#[derive(Debug, Args)]
pub struct PreprocessArgs {
    /// Model (.pt, with its card <stem>.toml beside it) or its card (.toml); only the card is read.
    #[arg(long)]
    pub model: PathBuf,
    /// The image(s) to preprocess, batched in this order.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Where to write the tensor (.npy, float32, shape [N, C, H, W]).
    #[arg(long)]
    pub out: PathBuf,
    /// Write the [0, 1] pixels (after ToTensor), without the card's mean/std normalisation.
    #[arg(long)]
    pub no_normalize: bool,
}

pub fn preprocess_command(args: &PreprocessArgs) -> Result<()> {
    if args.out.as_os_str().is_empty() {
        bail!("--out is empty");
    }
    let mut paths = Paths::new();
    paths.model("--model", &args.model);
    for image in &args.images {
        paths.input("IMAGE", image.as_path());
    }
    paths
        .output("--out", args.out.as_path())
        .check()
        .map_err(anyhow::Error::msg)?;
    let card = ModelCard::load(&card_path_for(&args.model))?;
    let pre = card.preprocess();
    // The whole tensor is held before it is written: within one batch's budget.
    let most = oodscope_data::limits::max_batch_images(pre.len());
    if args.images.len() > most {
        bail!(
            "{} images of {}×{}×{} are over the {} MiB limit for one tensor: preprocess {most} or fewer at once",
            args.images.len(),
            pre.channels,
            pre.height,
            pre.width,
            oodscope_data::limits::MAX_BATCH_BYTES >> 20
        );
    }
    let mut pixels = Vec::with_capacity(args.images.len() * pre.len());
    let cancel = super::interrupt_flag();
    for image in &args.images {
        if cancel.load(Ordering::Relaxed) {
            return Err(oodscope_engine::Error::Cancelled.into());
        }
        let mut one = decode_file(image, &pre).map_err(|e| anyhow::anyhow!("{}: {e}", image.display()))?;
        if !args.no_normalize {
            normalize(&mut one, &card.mean, &card.std);
        }
        pixels.extend(one);
    }
    let shape = (args.images.len(), pre.channels, pre.height, pre.width);
    let tensor =
        Array4::from_shape_vec(shape, pixels).context("preprocessed images have the wrong number of values")?;
    // Into a temporary renamed into place: a full disk or a stop leaves no truncated .npy.
    let written = AtomicFile::create(&args.out).and_then(|mut file| {
        tensor.write_npy(&mut file).map_err(|e| match e {
            WriteNpyError::Io(e) => e,
            other => std::io::Error::other(other),
        })?;
        file.commit()
    });
    written.with_context(|| format!("cannot write {}", args.out.display()))?;
    super::write_output_note(&args.out);
    Ok(())
}

/// `(x − mean[c]) / std[c]` per plane, in float32 (torchvision's `Normalize`, the model's own).
pub fn normalize(pixels: &mut [f32], mean: &[f32], std: &[f32]) {
    let plane = pixels.len() / mean.len().max(1);
    for (c, values) in pixels.chunks_mut(plane.max(1)).enumerate() {
        values.iter_mut().for_each(|v| *v = (*v - mean[c]) / std[c]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_each_plane() {
        let mut x = vec![0.5, 1.0, 0.0, 0.25];
        normalize(&mut x, &[0.5, 0.0], &[0.5, 0.25]);
        assert_eq!(x, vec![0.0, 1.0, 0.0, 1.0]);
    }
}
