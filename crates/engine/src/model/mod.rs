//! Models: loading TorchScript files and AOTInductor packages on a device, checking them against
//! the card (and the head against the logits), and the forward pass. A model file's zip archive
//! is checked against its CRCs first (`archive`).

pub mod aoti;
pub mod archive;
pub mod blocks;
pub mod card;
pub mod format;
pub mod head;
pub mod outputs;
mod probe;
pub mod threads;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tch::{CModule, Device, IValue, Kind, Tensor};

use aoti::AotiModel;
use format::Format;

pub use card::{CardKind, HeadSource, ModelCard, OutputKind, ResizeMode, card_path_for};
pub use head::Head;
pub use outputs::Outputs;
use outputs::{OutputShape, split_outputs};
pub use threads::{adapt_model_threads, default_model_threads, set_model_threads};

/// Anything wrong with a model file or its card; always names the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model card {path}: {message}")]
    Card { path: PathBuf, message: String },
    #[error("model {path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error("{0}")]
    Device(String),
}

impl ModelError {
    pub(crate) fn card(path: &Path, message: String) -> Self {
        ModelError::Card {
            path: path.to_path_buf(),
            message,
        }
    }
    pub(crate) fn model(path: &Path, message: impl Into<String>) -> Self {
        ModelError::Model {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// Where the user asked the model to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA when available, else CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda),
            other => Err(format!("unknown device `{other}` (expected auto, cpu or cuda)")),
        }
    }
}

impl DeviceChoice {
    /// The concrete device, or an error when CUDA is asked for and absent.
    pub fn resolve(self) -> Result<Device, ModelError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Auto => Ok(Device::cuda_if_available()),
            Self::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            Self::Cuda => Err(ModelError::Device(
                "--device cuda: no CUDA device is available here".into(),
            )),
        }
    }
}

/// A short name for a device, as shown to users and written in reports.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// A network in one of the forms oodscope runs.
pub enum Net {
    /// TorchScript: differentiable, its parameters readable by name.
    Script(CModule),
    /// An AOTInductor package: compiled for one device, inference only.
    Aoti(AotiModel),
}

impl Net {
    /// The raw output of the network on normalised input `x`; errors are one line.
    fn forward(&self, x: &Tensor) -> Result<IValue, String> {
        match self {
            Net::Script(module) => module
                .forward_is(&[IValue::Tensor(x.shallow_clone())])
                .map_err(|e| first_line(&e.to_string())),
            Net::Aoti(package) => package.forward(x),
        }
    }

    /// The TorchScript module, when the network is one.
    pub fn script(&self) -> Option<&CModule> {
        match self {
            Net::Script(module) => Some(module),
            Net::Aoti(_) => None,
        }
    }

    /// Whether the network gives no input gradients (compiled code).
    pub fn inference_only(&self) -> bool {
        matches!(self, Net::Aoti(_))
    }
}

/// One member of a leave-out ensemble: its network and the classes it outputs.
pub struct Member {
    pub module: Net,
    /// Indices into the card's classes, in the member's output order.
    pub classes: Vec<usize>,
    pub path: PathBuf,
}

/// The networks behind a card.
pub enum Network {
    Single {
        module: Net,
        outputs: OutputKind,
        path: PathBuf,
    },
    Ensemble {
        members: Vec<Member>,
    },
}

/// What the loaded model provides beyond logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub ensemble: bool,
    pub confidence: bool,
    /// The feature width D, when the model returns its penultimate features.
    pub features: Option<usize>,
    /// Whether the head `ℓ = W·z + b` is known (and checked).
    pub head: bool,
    /// Whether the model gives no input gradients (an AOTInductor package).
    pub inference_only: bool,
    /// How many inner blocks' maps the model returns (the card's `blocks`).
    pub blocks: usize,
    /// Whether the last block is the map the features are pooled from (its spatial mean is z),
    /// so that the head can be applied to its reductions (RankFeat).
    pub pooled_block: bool,
}

/// A loaded, checked model: the card, its network(s) on a device, the head when the card gives
/// one, and the input normalisation.
pub struct Model {
    pub card: ModelCard,
    pub device: Device,
    pub network: Network,
    pub head: Option<Head>,
    /// D, as the probe found it (models with features).
    pub feature_width: Option<usize>,
    /// Each inner block's channels `C_b`, as the probe found them (the card's `blocks`).
    pub block_widths: Vec<usize>,
    /// Whether the probe found the last block's spatial mean equal to the features.
    pub pooled_block: bool,
    mean: Tensor,
    std: Tensor,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("card", &self.card)
            .field("device", &self.device)
            .finish()
    }
}

impl Model {
    /// Loads a `.pt` (with its `<stem>.toml` card beside it) or a `.toml` card, on the chosen device,
    /// reads the head the card names, and probes the model with a batch to check it against the card.
    pub fn load(path: &Path, device: DeviceChoice) -> Result<Model, ModelError> {
        let card_path = card_path_for(path);
        if !path.exists() {
            return Err(ModelError::model(path, "no such file"));
        }
        if path.is_dir() {
            return Err(ModelError::model(path, format::folder_hint(path)));
        }
        // A file of another format says so (and how to convert it) before its missing card does;
        // an AOTInductor package with its card is run as it is.
        let package_with_card = path != card_path && is_package(path) && card_path.exists();
        if path != card_path
            && !package_with_card
            && let Some(hint) = format::hint(path)
        {
            return Err(ModelError::model(path, hint));
        }
        if !card_path.exists() {
            return Err(ModelError::card(
                &card_path,
                "missing: every model needs a card `<stem>.toml` beside it (see README)".into(),
            ));
        }
        let card = ModelCard::load(&card_path)?;
        // The model file of a single model: the path given, or the card's `.pt` (else `.pt2`).
        let single_path = if path == card_path {
            let script = card_path.with_extension("pt");
            let package = card_path.with_extension("pt2");
            if !script.exists() && package.exists() {
                package
            } else {
                script
            }
        } else {
            path.to_path_buf()
        };
        let device = match &card.kind {
            CardKind::Single { .. } if is_package(&single_path) => package_device(&single_path, device)?,
            _ => device.resolve()?,
        };
        let mut head = None;
        let network = match &card.kind {
            CardKind::Single {
                outputs, head: source, ..
            } => {
                let model_path = single_path;
                let module = load_net(&model_path, device)?;
                if let Some(source) = source {
                    head =
                        Some(Head::load(source, module.script(), device).map_err(|m| ModelError::card(&card_path, m))?);
                }
                Network::Single {
                    module,
                    outputs: *outputs,
                    path: model_path,
                }
            }
            CardKind::Ensemble { members } => {
                let members = members
                    .iter()
                    .map(|m| {
                        Ok(Member {
                            module: load_net(&m.model, device)?,
                            classes: m.classes.clone(),
                            path: m.model.clone(),
                        })
                    })
                    .collect::<Result<Vec<_>, ModelError>>()?;
                Network::Ensemble { members }
            }
        };
        let stats = |v: &[f32]| Tensor::from_slice(v).view([1, -1, 1, 1]).to_device(device);
        let mut model = Model {
            mean: stats(&card.mean),
            std: stats(&card.std),
            card,
            device,
            network,
            head,
            feature_width: None,
            block_widths: Vec::new(),
            pooled_block: false,
        };
        model.probe()?;
        Ok(model)
    }

    /// What this model provides beyond logits.
    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            ensemble: self.card.is_ensemble(),
            confidence: self.card.has_confidence_branch(),
            features: self.feature_width,
            head: self.head.is_some(),
            inference_only: match &self.network {
                Network::Single { module, .. } => module.inference_only(),
                Network::Ensemble { members } => members.iter().any(|m| m.module.inference_only()),
            },
            blocks: self.block_widths.len(),
            pooled_block: self.pooled_block,
        }
    }

    /// The path of the model's file (the card's, for an ensemble).
    pub fn file(&self) -> &Path {
        match &self.network {
            Network::Single { path, .. } => path,
            Network::Ensemble { .. } => &self.card.path,
        }
    }

    /// Normalises pixel-unit input `x` `[N, C, H, W]`: `(x − mean) / std`.
    pub fn normalize(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        x.f_sub(&self.mean)
            .and_then(|t| t.f_div(&self.std))
            .map_err(|e| ModelError::model(&self.card.path, first_line(&e.to_string())))
    }

    /// Forward pass of a single model on pixel-unit input (normalised here), with every reduction
    /// of its inner blocks (a fit's).
    pub fn forward(&self, x: &Tensor) -> Result<Outputs, ModelError> {
        self.forward_reducing(x, true)
    }

    /// Forward pass of a single model on pixel-unit input, with the blocks' Gram rows when
    /// `gram_rows` (ten passes over every map: only when a method reads them).
    pub fn forward_reducing(&self, x: &Tensor, gram_rows: bool) -> Result<Outputs, ModelError> {
        match &self.network {
            Network::Single { module, outputs, path } => {
                let out = module
                    .forward(&self.normalize(x)?)
                    .map_err(|m| ModelError::model(path, m))?;
                let shape = OutputShape {
                    kind: *outputs,
                    classes: self.card.num_classes(),
                    features: self.feature_width.or(self.card_features()),
                    blocks: self.card.blocks(),
                    gram_rows,
                };
                split_outputs(out, shape, x.size()[0]).map_err(|m| ModelError::model(path, m))
            }
            Network::Ensemble { .. } => Err(ModelError::model(
                &self.card.path,
                "an ensemble has no single forward pass",
            )),
        }
    }

    /// How many networks take an input: one per ensemble member, else one.
    pub fn networks(&self) -> usize {
        match &self.network {
            Network::Ensemble { members } => members.len(),
            Network::Single { .. } => 1,
        }
    }

    /// The outputs of every network, network `k` on `inputs[k]` (one input per network, see
    /// [`Model::networks`]). For an ensemble, `members` holds each member's logits and `logits`
    /// their concatenation. The blocks' Gram rows are computed when `gram_rows`.
    pub fn outputs(&self, inputs: &[Tensor], gram_rows: bool) -> Result<Outputs, ModelError> {
        match &self.network {
            Network::Single { .. } => self.forward_reducing(&inputs[0], gram_rows),
            Network::Ensemble { members } => {
                let logits = members
                    .iter()
                    .zip(inputs)
                    .map(|(m, x)| self.member_logits(m, x))
                    .collect::<Result<Vec<_>, _>>()?;
                let joined =
                    Tensor::f_cat(&logits, 1).map_err(|e| ModelError::model(&self.card.path, e.to_string()))?;
                Ok(Outputs {
                    logits: joined,
                    confidence: None,
                    features: None,
                    members: logits,
                    block_means: Vec::new(),
                    rank1_removed: None,
                    gram: None,
                })
            }
        }
    }

    /// Logits `[N, |S_k|]` of ensemble member `k` on pixel-unit input.
    pub fn member_logits(&self, member: &Member, x: &Tensor) -> Result<Tensor, ModelError> {
        let out = member
            .module
            .forward(&self.normalize(x)?)
            .map_err(|m| ModelError::model(&member.path, m))?;
        let shape = OutputShape {
            kind: OutputKind::Logits,
            classes: member.classes.len(),
            features: None,
            blocks: &[],
            gram_rows: false,
        };
        let logits = split_outputs(out, shape, x.size()[0]).map_err(|m| ModelError::model(&member.path, m))?;
        Ok(logits.logits)
    }

    /// Class probabilities `[N, C]` at T = 1 from clean outputs: the softmax of the logits, or an
    /// ensemble's member probabilities scattered into the card's classes and averaged.
    pub fn class_probabilities(&self, outputs: &Outputs) -> Result<Tensor, ModelError> {
        let fail = |e: tch::TchError| ModelError::model(self.file(), e.to_string());
        match &self.network {
            Network::Single { .. } => outputs.logits.f_softmax(1, Kind::Float).map_err(fail),
            Network::Ensemble { members } => {
                let n = outputs.len();
                let mut averaged =
                    Tensor::f_zeros([n, self.card.num_classes() as i64], (Kind::Float, self.device)).map_err(fail)?;
                for (member, logits) in members.iter().zip(&outputs.members) {
                    let columns: Vec<i64> = member.classes.iter().map(|&c| c as i64).collect();
                    let index = Tensor::from_slice(&columns).f_to_device(self.device).map_err(fail)?;
                    let p = logits.f_softmax(1, Kind::Float).map_err(fail)?;
                    averaged = averaged.f_index_add(1, &index, &p).map_err(fail)?;
                }
                averaged.f_div_scalar(members.len() as f64).map_err(fail)
            }
        }
    }

    fn card_features(&self) -> Option<usize> {
        match &self.card.kind {
            CardKind::Single { features, .. } => *features,
            CardKind::Ensemble { .. } => None,
        }
    }
}

/// Whether `path` holds an AOTInductor package (by content).
fn is_package(path: &Path) -> bool {
    matches!(format::detect(path), Ok(Format::AotInductor))
}

/// Loads a TorchScript file or an AOTInductor package (on the device it was compiled for).
fn load_net(path: &Path, device: Device) -> Result<Net, ModelError> {
    if !path.is_file() {
        return Err(ModelError::model(path, "no such file"));
    }
    // libtorch does not check the archive's CRCs: overwritten weights would load.
    archive::check_crcs(path).map_err(|m| ModelError::model(path, m))?;
    if !is_package(path) {
        return load_module(path, device).map(Net::Script);
    }
    let compiled_for = aoti::package_device(path).map_err(|m| ModelError::model(path, first_line(&m)))?;
    let fits = match device {
        Device::Cpu => compiled_for == "cpu",
        Device::Cuda(_) => compiled_for == "cuda",
        _ => false,
    };
    if !fits {
        return Err(ModelError::model(path, wrong_device(&compiled_for, device)));
    }
    AotiModel::load(path, device)
        .map(Net::Aoti)
        .map_err(|m| ModelError::model(path, m))
}

/// The device a single AOTInductor package runs on: the one it was compiled for, which the
/// user's choice must allow.
fn package_device(path: &Path, choice: DeviceChoice) -> Result<Device, ModelError> {
    let compiled_for = aoti::package_device(path).map_err(|m| ModelError::model(path, first_line(&m)))?;
    let cuda = tch::Cuda::is_available();
    match (compiled_for.as_str(), choice) {
        ("cpu", DeviceChoice::Auto | DeviceChoice::Cpu) => Ok(Device::Cpu),
        ("cuda", DeviceChoice::Auto | DeviceChoice::Cuda) if cuda => Ok(Device::Cuda(0)),
        ("cuda", DeviceChoice::Auto | DeviceChoice::Cuda) => Err(ModelError::model(
            path,
            "an AOTInductor package compiled for CUDA, and no CUDA device is available here; compile one for the CPU: python scripts/export_model.py --format aoti --device cpu …",
        )),
        (other, DeviceChoice::Cpu) => Err(ModelError::model(path, wrong_device(other, Device::Cpu))),
        (other, _) => Err(ModelError::model(path, wrong_device(other, Device::Cuda(0)))),
    }
}

/// The line for a package compiled for another device than the one asked for.
fn wrong_device(compiled_for: &str, device: Device) -> String {
    let asked = device_name(device);
    let flag = if compiled_for == "cpu" { "cpu" } else { "cuda" };
    format!(
        "an AOTInductor package runs only on the device it was compiled for, {compiled_for}, not {asked}: run it with --device {flag}, or compile it for {asked} with python scripts/export_model.py --format aoti --device {}",
        if matches!(device, Device::Cpu) { "cpu" } else { "cuda" }
    )
}

fn load_module(path: &Path, device: Device) -> Result<CModule, ModelError> {
    if !path.is_file() {
        return Err(ModelError::model(path, "no such file"));
    }
    let mut module = CModule::load_on_device(path, device).map_err(|e| {
        let message = format::hint(path).unwrap_or_else(|| {
            format!(
                "not a TorchScript file that libtorch can open ({})",
                first_line(&e.to_string())
            )
        });
        ModelError::model(path, message)
    })?;
    module.set_eval();
    Ok(module)
}

/// The informative part of a libtorch message (they carry TorchScript tracebacks and C++ context):
/// the last `…Error: …` line if there is one, else the first sentence of the first line.
pub(crate) fn first_line(message: &str) -> String {
    let message = message.trim().trim_start_matches("Internal torch error:").trim();
    let is_error_line = |l: &&str| {
        l.split_once(": ")
            .is_some_and(|(head, _)| head.ends_with("Error") && !head.contains(' '))
    };
    if let Some(line) = message.lines().map(str::trim).rfind(is_error_line) {
        return line.to_string();
    }
    let line = message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown error");
    line.split_once(". ").map_or(line, |(first, _)| first).to_string()
}

#[cfg(test)]
mod tests {
    use super::first_line;

    #[test]
    fn libtorch_messages_are_cut_to_their_cause() {
        let traceback = "Internal torch error: The following operation failed in the TorchScript interpreter.\nTraceback...\n  File x\nRuntimeError: mat1 and mat2 shapes cannot be multiplied (2x800 and 288x4)\n";
        assert_eq!(
            first_line(traceback),
            "RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x800 and 288x4)"
        );
        let zip = "Internal torch error: PytorchStreamReader failed reading zip archive: failed finding central directory. This is an internal miniz error.";
        assert_eq!(
            first_line(zip),
            "PytorchStreamReader failed reading zip archive: failed finding central directory"
        );
    }
}
