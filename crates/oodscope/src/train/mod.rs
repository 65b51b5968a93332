//! `oodscope train`: trains the bundled Fashion-MNIST models in Rust with tch, seeded, and exports
//! them as TorchScript with their cards: a plain ResNet, the same network with a confidence branch
//! (DeVries & Taylor), and a leave-out ensemble (Vyas et al.).

pub mod dataset;
pub mod export;
pub mod loops;
pub mod resnet;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use tch::Device;

use dataset::Dataset;

/// Fashion-MNIST's classes, as folder-safe names (the importer's folder names and the cards' classes).
pub const FMNIST_CLASSES: [&str; 10] = [
    "t-shirt-top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
];
/// Per-channel mean and std of the Fashion-MNIST training images, in [0, 1] pixel units.
pub const FMNIST_MEAN: f32 = 0.2860;
pub const FMNIST_STD: f32 = 0.3530;

/// Which model to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    Plain,
    Confidence,
    Ensemble,
}

/// Everything a training run needs.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub data: PathBuf,
    pub out: PathBuf,
    pub which: Vec<Which>,
    pub epochs: usize,
    pub ensemble_epochs: usize,
    pub width: i64,
    pub batch_size: i64,
    pub seed: u64,
    pub limit: Option<usize>,
    pub device: Device,
}

/// Hyper-parameters of the leave-out loss `CE + β·max(0, m + H̄_id − H̄_ood)`.
pub const LEAVE_OUT_BETA: f64 = 0.1;
pub const LEAVE_OUT_MARGIN: f64 = 0.4;
/// DeVries & Taylor: hints on half of each batch, λ adapted to keep −log c near this budget.
pub const CONFIDENCE_BUDGET: f64 = 0.3;

/// The five disjoint class pairs left out by the ensemble's members.
pub const LEFT_OUT_PAIRS: [[usize; 2]; 5] = [[0, 6], [1, 3], [2, 4], [5, 7], [8, 9]];

/// Trains the requested models and writes them with their cards into `out`.
pub fn train(options: &TrainOptions) -> Result<()> {
    let classes: Vec<String> = FMNIST_CLASSES.iter().map(ToString::to_string).collect();
    let start = Instant::now();
    let train_set = Dataset::load(&options.data.join("train"), &classes, 28, options.limit, options.device)?;
    let test_set = Dataset::load(&options.data.join("test"), &classes, 28, None, options.device)?;
    eprintln!(
        "loaded {} training and {} test images in {:.1} s",
        train_set.len(),
        test_set.len(),
        start.elapsed().as_secs_f64()
    );
    if train_set.is_empty() {
        bail!("no training images");
    }
    std::fs::create_dir_all(&options.out)?;
    for which in &options.which {
        tch::manual_seed(options.seed as i64);
        let mut rng = seeded_rng(options.seed);
        let started = Instant::now();
        match which {
            Which::Plain => loops::train_plain(options, &train_set, &test_set, &classes, &mut rng)?,
            Which::Confidence => loops::train_confidence(options, &train_set, &test_set, &classes, &mut rng)?,
            Which::Ensemble => loops::train_ensemble(options, &train_set, &test_set, &classes, &mut rng)?,
        }
        eprintln!(
            "{which:?}: trained in {:.1} min",
            started.elapsed().as_secs_f64() / 60.0
        );
    }
    Ok(())
}

/// The seeded generator for shuffling and augmentation.
pub type Rng = oodscope_data::rng::SplitMix64;

/// Training's generator for a seed.
pub fn seeded_rng(seed: u64) -> Rng {
    oodscope_data::rng::SplitMix64(seed ^ 0x5eed_0f0d_5c09_e5a1)
}
