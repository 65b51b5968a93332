//! TorchScript models: loading on a device, checking against the card, and the forward pass.

pub mod card;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tch::{CModule, Device, IValue, Kind, Tensor};

pub use card::{CardKind, ModelCard, OutputKind, ResizeMode, card_path_for};

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

/// The default number of threads libtorch uses inside one operation (its intra-op pool).
///
/// - On the CPU, all the cores: a run decodes and scores its batches in turn rather than side by
///   side (see `score::run`), so the model has the cores to itself while it works. On 2 cores ODIN
///   on the bundled ResNet ran at 910 images/s with two threads against 559 with one.
/// - On a GPU, one: the CPU only copies batches there, and an idle pool of busy-waiting threads
///   takes the cores from the decoders. On an H100 with 16 cores MSP at batch 64 ran at 47 000 to
///   52 000 images/s with one thread against 6 600 to 11 000 with sixteen.
pub fn default_model_threads(device: Device) -> usize {
    match device {
        Device::Cpu => std::thread::available_parallelism().map_or(1, |n| n.get()),
        _ => 1,
    }
}

/// Sets libtorch's intra-op thread count (process-wide) for a model on `device`; `None` means
/// [`default_model_threads`].
pub fn set_model_threads(threads: Option<usize>, device: Device) {
    let threads = threads.unwrap_or_else(|| default_model_threads(device));
    tch::set_num_threads(threads.max(1) as i32);
}

/// A short name for a device, as shown to users and written in reports.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// One member of a leave-out ensemble: its network and the classes it outputs.
pub struct Member {
    pub module: CModule,
    /// Indices into the card's classes, in the member's output order.
    pub classes: Vec<usize>,
    pub path: PathBuf,
}

/// The networks behind a card.
pub enum Network {
    Single {
        module: CModule,
        outputs: OutputKind,
        path: PathBuf,
    },
    Ensemble {
        members: Vec<Member>,
    },
}

/// What one forward pass of a single model gives.
pub struct Outputs {
    /// `[N, C]`.
    pub logits: Tensor,
    /// `[N]` confidence logits, for confidence-branch models.
    pub confidence_logit: Option<Tensor>,
}

/// A loaded, checked model: the card, its network(s) on a device, and the input normalisation.
pub struct Model {
    pub card: ModelCard,
    pub device: Device,
    pub network: Network,
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
    /// and probes it with a dummy batch to check it against the card.
    pub fn load(path: &Path, device: DeviceChoice) -> Result<Model, ModelError> {
        let card_path = card_path_for(path);
        if !path.exists() {
            return Err(ModelError::model(path, "no such file"));
        }
        if !card_path.exists() {
            return Err(ModelError::card(
                &card_path,
                "missing: every model needs a card `<stem>.toml` beside it (see README)".into(),
            ));
        }
        let card = ModelCard::load(&card_path)?;
        let device = device.resolve()?;
        let network = match &card.kind {
            CardKind::Single { outputs } => {
                let model_path = if path == card_path {
                    card_path.with_extension("pt")
                } else {
                    path.to_path_buf()
                };
                let module = load_module(&model_path, device)?;
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
                            module: load_module(&m.model, device)?,
                            classes: m.classes.clone(),
                            path: m.model.clone(),
                        })
                    })
                    .collect::<Result<Vec<_>, ModelError>>()?;
                Network::Ensemble { members }
            }
        };
        let stats = |v: &[f32]| Tensor::from_slice(v).view([1, -1, 1, 1]).to_device(device);
        let model = Model {
            mean: stats(&card.mean),
            std: stats(&card.std),
            card,
            device,
            network,
        };
        model.probe()?;
        Ok(model)
    }

    /// Normalises pixel-unit input `x` `[N, C, H, W]`: `(x − mean) / std`.
    pub fn normalize(&self, x: &Tensor) -> Tensor {
        (x - &self.mean) / &self.std
    }

    /// Forward pass of a single model on pixel-unit input (normalised here).
    pub fn forward(&self, x: &Tensor) -> Result<Outputs, ModelError> {
        match &self.network {
            Network::Single { module, outputs, path } => {
                let out = module
                    .forward_is(&[IValue::Tensor(self.normalize(x))])
                    .map_err(|e| ModelError::model(path, first_line(&e.to_string())))?;
                split_outputs(out, *outputs, self.card.num_classes(), x.size()[0])
                    .map_err(|m| ModelError::model(path, m))
            }
            Network::Ensemble { .. } => Err(ModelError::model(
                &self.card.path,
                "an ensemble has no single forward pass",
            )),
        }
    }

    /// Logits `[N, |S_k|]` of ensemble member `k` on pixel-unit input.
    pub fn member_logits(&self, member: &Member, x: &Tensor) -> Result<Tensor, ModelError> {
        let out = member
            .module
            .forward_is(&[IValue::Tensor(self.normalize(x))])
            .map_err(|e| ModelError::model(&member.path, first_line(&e.to_string())))?;
        let logits = split_outputs(out, OutputKind::Logits, member.classes.len(), x.size()[0])
            .map_err(|m| ModelError::model(&member.path, m))?;
        Ok(logits.logits)
    }

    /// Runs one dummy batch through every network and checks the shapes against the card.
    fn probe(&self) -> Result<(), ModelError> {
        let [c, h, w] = self.card.input_shape();
        let x = Tensor::zeros([2, c, h, w], (Kind::Float, self.device));
        tch::no_grad(|| match &self.network {
            Network::Single { .. } => self.forward(&x).map(|_| ()),
            Network::Ensemble { members } => members.iter().try_for_each(|m| self.member_logits(m, &x).map(|_| ())),
        })
        .map_err(|e| match e {
            ModelError::Model { path, message } => ModelError::Model {
                path,
                message: format!("does not match its card ({}): {message}", self.card.path.display()),
            },
            other => other,
        })
    }
}

fn load_module(path: &Path, device: Device) -> Result<CModule, ModelError> {
    if !path.is_file() {
        return Err(ModelError::model(path, "no such file"));
    }
    let mut module = CModule::load_on_device(path, device).map_err(|e| {
        ModelError::model(
            path,
            format!(
                "not a TorchScript file that libtorch can open ({})",
                first_line(&e.to_string())
            ),
        )
    })?;
    module.set_eval();
    Ok(module)
}

/// The informative part of a libtorch message (they carry TorchScript tracebacks and C++ context):
/// the last `…Error: …` line if there is one, else the first sentence of the first line.
fn first_line(message: &str) -> String {
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

/// Splits a model's output into logits and the confidence logit, checking shapes.
fn split_outputs(out: IValue, kind: OutputKind, num_classes: usize, batch: i64) -> Result<Outputs, String> {
    let c = num_classes as i64;
    let check_logits = |t: &Tensor| {
        if t.size() == [batch, c] {
            Ok(())
        } else {
            Err(format!(
                "logits have shape {:?}, expected [{batch}, {c}] ({c} classes in the card)",
                t.size()
            ))
        }
    };
    match (kind, out) {
        (OutputKind::Logits, IValue::Tensor(t)) => {
            check_logits(&t)?;
            Ok(Outputs {
                logits: t.to_kind(Kind::Float),
                confidence_logit: None,
            })
        }
        (OutputKind::Logits, IValue::Tuple(_)) => Err("returns a tuple, but the card says outputs = \"logits\"".into()),
        (OutputKind::LogitsAndConfidence, IValue::Tuple(items)) => {
            let [IValue::Tensor(logits), IValue::Tensor(conf)] = &items[..] else {
                return Err(format!(
                    "returns a tuple of {} items; outputs = \"logits+confidence\" expects (logits, confidence)",
                    items.len()
                ));
            };
            check_logits(logits)?;
            let conf_ok = conf.size() == [batch] || conf.size() == [batch, 1];
            if !conf_ok {
                return Err(format!(
                    "confidence has shape {:?}, expected [{batch}, 1] or [{batch}]",
                    conf.size()
                ));
            }
            Ok(Outputs {
                logits: logits.to_kind(Kind::Float),
                confidence_logit: Some(conf.reshape([batch]).to_kind(Kind::Float)),
            })
        }
        (OutputKind::LogitsAndConfidence, IValue::Tensor(t)) => {
            if t.size() != [batch, c + 1] {
                return Err(format!(
                    "returns one tensor of shape {:?}; outputs = \"logits+confidence\" expects [{batch}, {}] (last column = confidence) or a (logits, confidence) tuple",
                    t.size(),
                    c + 1
                ));
            }
            let t = t.to_kind(Kind::Float);
            Ok(Outputs {
                logits: t.narrow(1, 0, c),
                confidence_logit: Some(t.select(1, c)),
            })
        }
        (_, other) => Err(format!(
            "returns {}, expected a tensor or a tuple of tensors",
            ivalue_kind(&other)
        )),
    }
}

fn ivalue_kind(v: &IValue) -> &'static str {
    match v {
        IValue::None => "None",
        IValue::Tensor(_) => "a tensor",
        IValue::Tuple(_) => "a tuple",
        IValue::GenericList(_) | IValue::TensorList(_) => "a list",
        IValue::GenericDict(_) => "a dict",
        _ => "a non-tensor value",
    }
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
