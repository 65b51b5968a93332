//! `oodscope preprocess`: images through the card's preprocessing, written as the float32 tensor
//! `[N, C, H, W]` the model receives (a `.npy`; N = 1 for one image), to compare with a Python
//! pipeline.
//!
//! Only the card is read (the TorchScript file need not exist). The values are those after
//! torchvision's `ToTensor()` and `Normalize(mean, std)`, `(x − mean) / std` in float32 exactly as
//! the model's forward pass normalises; `--no-normalize` writes the [0, 1] pixels before it.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use ndarray::Array4;

use oodscope_data::decode_file;
use oodscope_engine::model::{ModelCard, card_path_for};

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
    let card = ModelCard::load(&card_path_for(&args.model))?;
    let pre = card.preprocess();
    let mut pixels = Vec::with_capacity(args.images.len() * pre.len());
    for image in &args.images {
        let mut one = decode_file(image, &pre).map_err(|e| anyhow::anyhow!("{}: {e}", image.display()))?;
        if !args.no_normalize {
            normalize(&mut one, &card.mean, &card.std);
        }
        pixels.extend(one);
    }
    let shape = (args.images.len(), pre.channels, pre.height, pre.width);
    let tensor =
        Array4::from_shape_vec(shape, pixels).context("preprocessed images have the wrong number of values")?;
    if args.out.as_os_str().is_empty() {
        bail!("--out is empty");
    }
    ndarray_npy::write_npy(&args.out, &tensor).with_context(|| format!("cannot write {}", args.out.display()))?;
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
