//! One fit pass and its file: the accumulators and the raw features on disk while images stream
//! through, then the finishing passes (pseudo-inverses, ViM's eigenvectors and α, ReAct's
//! percentiles, the normalised bank) written into the fit file with the provenance in its header.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use tch::{Kind, Tensor};

use super::FitOptions;
use super::accumulate::Accumulator;
use super::finish::{FeatureBlocks, Finish, block_rows};
use crate::model::{Model, Outputs};
use crate::output::AtomicFile;
use crate::stats::info::{FORMAT_VERSION, FitInfo, LabelSource, listing_hash, model_hash};
use oodscope_data::{ImageSet, SetSource};

/// The provenance of a pass, before its counts are known.
pub struct Provenance {
    pub(super) info: FitInfo,
}

impl Provenance {
    /// A provenance written by the caller (a fit from arrays).
    pub fn from_info(info: FitInfo) -> Self {
        Provenance { info }
    }

    pub fn of(
        model: &Model,
        train: &ImageSet,
        used: &ImageSet,
        options: &FitOptions,
        skipped: usize,
    ) -> Result<Self, String> {
        let root = match &train.source {
            SetSource::Folder { root, .. } => root.display().to_string(),
            SetSource::Noise { kind, count, .. } => format!("{kind}:{count}"),
        };
        let card = std::fs::read_to_string(&model.card.path).unwrap_or_default();
        let pre = model.card.preprocess();
        Ok(Provenance {
            info: FitInfo {
                path: PathBuf::new(),
                format_version: FORMAT_VERSION,
                oodscope_version: env!("CARGO_PKG_VERSION").into(),
                model_file: model.file().display().to_string(),
                model_sha256: model_hash(model)?,
                card,
                train_root: root,
                train_listing_sha256: listing_hash(train),
                train_files: train.len(),
                max_images: options.max_images,
                images: 0,
                skipped,
                labels: if used.labelled {
                    LabelSource::Folders
                } else {
                    LabelSource::Predicted
                },
                classes: model.card.classes.clone(),
                counts: Vec::new(),
                predicted_counts: Vec::new(),
                feature_width: model.feature_width,
                class_covariances: options.class_covariances && model.feature_width.is_some(),
                block_widths: model.block_widths.clone(),
                preprocess: format!(
                    "{}x{}x{} {:?}, mean {:?}, std {:?}",
                    pre.channels, pre.height, pre.width, pre.resize, model.card.mean, model.card.std
                ),
                tensors_sha256: String::new(),
                cached: false,
            },
        })
    }
}

/// The raw features of a pass, row after row (float32), in a temporary file beside the fit file
/// (unique per process and per pass, so that two fits of one target never share it: an
/// [`AtomicFile`] that is never committed), removed when dropped.
pub struct FeatureFile {
    out: AtomicFile,
    closed: bool,
}

impl FeatureFile {
    pub fn create(fit_path: &Path) -> std::io::Result<FeatureFile> {
        Ok(FeatureFile {
            out: AtomicFile::create(fit_path)?,
            closed: false,
        })
    }

    fn append(&mut self, values: &[f32]) -> std::io::Result<()> {
        if self.closed {
            return Err(std::io::Error::other("closed"));
        }
        let mut bytes = Vec::with_capacity(values.len() * 4);
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.out.write_all(&bytes)
    }

    fn close(&mut self) -> std::io::Result<()> {
        self.closed = true;
        self.out.flush()
    }

    /// Closes the file for writing (before it is read back).
    pub fn finish_writing(&mut self) -> std::io::Result<()> {
        self.close()
    }
}

impl FeatureBlocks for FeatureFile {
    fn for_each_block(&self, width: usize, f: &mut dyn FnMut(&[f32])) -> std::io::Result<()> {
        let rows = block_rows(width);
        let mut reader = std::io::BufReader::new(File::open(self.out.temp_path())?);
        let mut bytes = vec![0u8; rows * width * 4];
        let mut values = vec![0f32; rows * width];
        loop {
            let n = read_full(&mut reader, &mut bytes)?;
            if n == 0 {
                return Ok(());
            }
            let count = n / 4;
            for (v, chunk) in values.iter_mut().zip(bytes[..count * 4].chunks_exact(4)) {
                *v = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            }
            f(&values[..count]);
        }
    }
}

fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The rows of a batch whose logits or features are not all finite (NaN or ±inf): one `isfinite`
/// per batch. A fit that took them in would be NaN in every statistic.
pub fn non_finite_rows(outputs: &Outputs) -> Result<Vec<usize>, tch::TchError> {
    let mut finite = outputs.logits.f_isfinite()?.f_all_dim(1, false)?;
    if let Some(z) = &outputs.features {
        finite = finite.f_logical_and(&z.f_isfinite()?.f_all_dim(1, false)?)?;
    }
    let bad = finite
        .f_logical_not()?
        .f_nonzero()?
        .f_view([-1])?
        .f_to_device(tch::Device::Cpu)?;
    Ok(Vec::<i64>::try_from(bad)?.into_iter().map(|i| i as usize).collect())
}

/// Each row's class as the accumulators count it: its label, else the class the logits predict
/// (argmax in float64, as [`Accumulator::add`] takes it).
fn row_classes(logits: &Tensor, labels: Option<&[usize]>) -> Result<Vec<u32>, String> {
    if let Some(labels) = labels {
        return Ok(labels.iter().map(|&l| l as u32).collect());
    }
    let torch = |e: tch::TchError| crate::model::first_line(&e.to_string());
    let predicted = logits
        .f_to_kind(Kind::Double)
        .and_then(|l| l.f_argmax(1, false))
        .map_err(torch)?;
    Ok(crate::tensor::to_vec_i64(&predicted)
        .map_err(torch)?
        .into_iter()
        .map(|c| c as u32)
        .collect())
}

/// Why writing stopped.
#[derive(Debug)]
pub enum WriteError {
    Cancelled,
    Failed(String),
}

macro_rules! failed_from {
    ($($t:ty),*) => {
        $(impl From<$t> for WriteError {
            fn from(e: $t) -> Self {
                WriteError::Failed(e.to_string())
            }
        })*
    };
}
failed_from!(std::io::Error, serde_json::Error, String);

impl From<tch::TchError> for WriteError {
    /// The cause only: libtorch's C++ frames are never shown.
    fn from(e: tch::TchError) -> Self {
        WriteError::Failed(crate::model::first_line(&e.to_string()))
    }
}

/// What a pass needs to know of the model: the classes, the feature width, where it computes and
/// the head `(W, b)` (a [`Model`]'s, or arrays given by the Python package).
pub struct Shape {
    pub classes: usize,
    pub feature_width: Option<usize>,
    pub device: tch::Device,
    pub head: Option<(Tensor, Tensor)>,
}

impl Shape {
    /// The shape of `model`, its head in float64.
    pub fn of(model: &Model) -> Result<Shape, tch::TchError> {
        let head = match &model.head {
            Some(h) => Some((h.weight.f_to_kind(Kind::Double)?, h.bias.f_to_kind(Kind::Double)?)),
            None => None,
        };
        Ok(Shape {
            classes: model.card.num_classes(),
            feature_width: model.feature_width,
            device: model.device,
            head,
        })
    }
}

/// One fit pass in progress.
pub struct Pass {
    labelled: bool,
    device: tch::Device,
    feature_width: Option<usize>,
    /// Whether the fit file keeps the head (`head_weight`, `head_bias`): a fit made from arrays has
    /// no model file to read it from.
    pub store_head: bool,
    /// Whether the fit keeps each class's covariance (gmm), from the stored features and
    /// `row_classes`.
    pub class_covariances: bool,
    /// The class (label, or prediction) of each stored feature row, in order.
    pub(super) row_classes: Vec<u32>,
    pub(super) accumulator: Accumulator,
    pub(super) features: FeatureFile,
    /// The head in float64, for ViM.
    pub(super) head: Option<(Tensor, Tensor)>,
    /// Rows `[class, logits]` of the correctly classified images, for OpenMax's tails, and how many.
    pub(super) correct_logits: Option<FeatureFile>,
    pub(super) correct_rows: usize,
}

impl Pass {
    pub fn new(model: &Model, labelled: bool, features: FeatureFile) -> Result<Self, tch::TchError> {
        Pass::of_shape(Shape::of(model)?, labelled, features)
    }

    /// A pass for outputs of this shape (no model needed).
    pub fn of_shape(shape: Shape, labelled: bool, features: FeatureFile) -> Result<Self, tch::TchError> {
        Ok(Pass {
            labelled,
            device: shape.device,
            feature_width: shape.feature_width,
            store_head: false,
            class_covariances: false,
            row_classes: Vec::new(),
            accumulator: Accumulator::new(shape.classes, shape.device)?,
            features,
            head: shape.head,
            correct_logits: None,
            correct_rows: 0,
        })
    }

    /// Keeps the logits of the correctly classified images (label = predicted class; every image
    /// without labels) in `file`, for OpenMax.
    pub fn keep_correct_logits(&mut self, file: FeatureFile) {
        self.correct_logits = Some(file);
    }

    pub fn images(&self) -> u64 {
        self.accumulator.images()
    }

    /// Adds a batch's clean outputs (and its folder labels, when the folder has them).
    pub fn add(&mut self, outputs: &Outputs, labels: Option<&[usize]>) -> Result<(), String> {
        let head = self.head.as_ref().map(|(w, b)| (w, b));
        let labels = if self.labelled { labels } else { None };
        self.accumulator
            .add(
                &outputs.logits,
                outputs.features.as_ref(),
                labels,
                head,
                (&outputs.block_means, outputs.gram.as_ref()),
            )
            .map_err(|e| crate::model::first_line(&e.to_string()))?;
        if let Some(z) = &outputs.features {
            let values = crate::tensor::to_vec_f32(z).map_err(|e| crate::model::first_line(&e.to_string()))?;
            self.features.append(&values).map_err(|e| e.to_string())?;
            self.row_classes.extend(row_classes(&outputs.logits, labels)?);
        }
        if let Some(file) = &mut self.correct_logits {
            let torch = |e: tch::TchError| crate::model::first_line(&e.to_string());
            let predicted =
                crate::tensor::to_vec_i64(&outputs.logits.f_argmax(1, false).map_err(torch)?).map_err(torch)?;
            let logits = crate::tensor::to_vec_f32(&outputs.logits).map_err(torch)?;
            let c = logits.len() / predicted.len().max(1);
            let mut rows = Vec::new();
            for (i, &p) in predicted.iter().enumerate() {
                let label = labels.and_then(|l| l.get(i)).map_or(p, |&l| l as i64);
                if label == p {
                    rows.push(p as f32);
                    rows.extend_from_slice(&logits[i * c..(i + 1) * c]);
                    self.correct_rows += 1;
                }
            }
            file.append(&rows).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Finishes the statistics and writes the fit file at `out`.
    pub fn write(
        mut self,
        out: &Path,
        provenance: Provenance,
        cancel: &AtomicBool,
        on_progress: &mut dyn FnMut(usize, usize),
    ) -> Result<FitInfo, WriteError> {
        self.features.close()?;
        if let Some(file) = &mut self.correct_logits {
            file.close()?;
        }
        let moments = self.accumulator.finish()?;
        let finish = Finish {
            device: self.device,
            feature_width: self.feature_width,
            head: self.head.as_ref(),
            store_head: self.store_head,
            features: &self.features,
            correct_logits: self.correct_logits.as_ref().map(|f| f as &dyn FeatureBlocks),
            row_classes: self.class_covariances.then_some(self.row_classes.as_slice()),
        };
        finish.write(out, provenance.info, &moments, cancel, on_progress)
    }
}
