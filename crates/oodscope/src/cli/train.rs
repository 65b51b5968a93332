//! `oodscope train`: the bundled Fashion-MNIST models.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use oodscope_engine::model::{DeviceChoice, set_model_threads};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Fashion-MNIST in ImageFolder layout with train/ and test/ (made by scripts/import_data.py).
    #[arg(long, default_value = "data/fashion-mnist")]
    pub data: PathBuf,
    /// Where the models and their cards are written.
    #[arg(long, default_value = "models")]
    pub out: PathBuf,
    /// Which models to train (repeatable) [default: all three].
    #[arg(long = "model", value_enum)]
    pub which: Vec<crate::train::Which>,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Epochs for each leave-out member.
    #[arg(long, default_value_t = 8)]
    pub ensemble_epochs: usize,
    /// Width of the first ResNet stage (the others are 2× and 4×).
    #[arg(long, default_value_t = 16)]
    pub width: i64,
    #[arg(long, default_value_t = 128)]
    pub batch_size: i64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Use only the first N training images per class (quick runs).
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Threads libtorch uses inside each operation [default: all cores on the CPU, 1 with CUDA].
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Runs `oodscope train`.
pub fn train_command(args: &TrainArgs) -> Result<()> {
    use crate::train::{TrainOptions, Which, train};
    let device = args.device.resolve()?;
    set_model_threads(args.threads, device);
    let which = if args.which.is_empty() {
        vec![Which::Plain, Which::Confidence, Which::Ensemble]
    } else {
        args.which.clone()
    };
    train(&TrainOptions {
        data: args.data.clone(),
        out: args.out.clone(),
        which,
        epochs: args.epochs,
        ensemble_epochs: args.ensemble_epochs,
        width: args.width,
        batch_size: args.batch_size,
        seed: args.seed,
        limit: args.limit,
        device,
    })
}
