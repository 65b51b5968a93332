//! What a forward pass gives (logits, confidence logit, penultimate features, inner blocks'
//! reductions), read from a model's raw output as its card describes it, with the shapes checked.

use tch::{IValue, Kind, Tensor};

use super::card::OutputKind;

/// The outputs of one forward pass (of every network, for an ensemble).
pub struct Outputs {
    /// `[N, C]`; for an ensemble, its members' logits concatenated.
    pub logits: Tensor,
    /// `[N]` confidence logits, for confidence-branch models.
    pub confidence: Option<Tensor>,
    /// `[N, D]` penultimate features, for models that expose them.
    pub features: Option<Tensor>,
    /// An ensemble's members' logits, each `[N, |S_k|]`, in member order (empty for one model).
    pub members: Vec<Tensor>,
    /// `[N, C_b]`: each inner block's spatial mean, in the card's `blocks` order (empty without).
    pub block_means: Vec<Tensor>,
    /// `[N, C_last]`: the last block's spatial mean after removing its rank-1 part (RankFeat).
    pub rank1_removed: Option<Tensor>,
    /// `[N, P·Σ C_b]`: each block's Gram row sums at poles 1…P (`model::blocks::gram_rows`).
    pub gram: Option<Tensor>,
}

impl Outputs {
    /// The same outputs cut from the autograd graph.
    pub fn detach(&self) -> Outputs {
        self.map(Tensor::detach)
    }

    /// The same tensors, shared (no copy).
    pub fn shallow_clone(&self) -> Outputs {
        self.map(Tensor::shallow_clone)
    }

    /// Rows `start..start + len` of every output.
    pub fn rows(&self, start: i64, len: i64) -> Result<Outputs, tch::TchError> {
        self.try_map(|t| t.f_narrow(0, start, len))
    }

    /// Every output on `device`.
    pub fn to_device(&self, device: tch::Device) -> Result<Outputs, tch::TchError> {
        self.try_map(|t| t.f_to_device(device))
    }

    /// Number of images.
    pub fn len(&self) -> i64 {
        self.logits.size().first().copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn map(&self, f: impl Fn(&Tensor) -> Tensor) -> Outputs {
        Outputs {
            logits: f(&self.logits),
            confidence: self.confidence.as_ref().map(&f),
            features: self.features.as_ref().map(&f),
            members: self.members.iter().map(&f).collect(),
            block_means: self.block_means.iter().map(&f).collect(),
            rank1_removed: self.rank1_removed.as_ref().map(&f),
            gram: self.gram.as_ref().map(&f),
        }
    }

    fn try_map(&self, f: impl Fn(&Tensor) -> Result<Tensor, tch::TchError>) -> Result<Outputs, tch::TchError> {
        Ok(Outputs {
            logits: f(&self.logits)?,
            confidence: self.confidence.as_ref().map(&f).transpose()?,
            features: self.features.as_ref().map(&f).transpose()?,
            members: self.members.iter().map(&f).collect::<Result<_, _>>()?,
            block_means: self.block_means.iter().map(&f).collect::<Result<_, _>>()?,
            rank1_removed: self.rank1_removed.as_ref().map(&f).transpose()?,
            gram: self.gram.as_ref().map(&f).transpose()?,
        })
    }
}

/// What the card says the output holds.
#[derive(Debug, Clone, Copy)]
pub struct OutputShape<'a> {
    pub kind: OutputKind,
    /// C.
    pub classes: usize,
    /// D, when the card gives it.
    pub features: Option<usize>,
    /// The inner blocks whose maps follow the features (the card's `blocks`).
    pub blocks: &'a [String],
    /// Whether the blocks' Gram rows are computed (`model::blocks::reduce`).
    pub gram_rows: bool,
}

/// Reads a model's raw output as `shape` describes it for a batch of `batch` images.
pub fn split_outputs(out: IValue, shape: OutputShape, batch: i64) -> Result<Outputs, String> {
    let kind = shape.kind;
    let c = shape.classes as i64;
    let wants_conf = kind.has_confidence();
    let wants_features = kind.has_features();
    let blocks = shape.blocks.len();
    match out {
        IValue::Tensor(t) if blocks > 0 => Err(format!(
            "returns one tensor of shape {:?}, but the card lists blocks ({}): the model must return a ({}, one map per block) tuple",
            t.size(),
            shape.blocks.join(", "),
            tuple_names(kind)
        )),
        IValue::Tensor(t) if !wants_conf && !wants_features => {
            check_logits(&t, batch, c)?;
            Ok(Outputs {
                logits: float(&t)?,
                confidence: None,
                features: None,
                members: Vec::new(),
                block_means: Vec::new(),
                rank1_removed: None,
                gram: None,
            })
        }
        IValue::Tensor(t) => one_tensor(&t, shape, batch),
        IValue::Tuple(items) if !wants_conf && !wants_features => Err(format!(
            "returns a tuple of {} items, but the card says outputs = \"logits\"",
            items.len()
        )),
        IValue::Tuple(items) => {
            let outputs = 1 + usize::from(wants_conf) + usize::from(wants_features);
            let expected = outputs + blocks;
            let tensors: Vec<&Tensor> = items
                .iter()
                .filter_map(|i| match i {
                    IValue::Tensor(t) => Some(t),
                    _ => None,
                })
                .collect();
            if items.len() != expected || tensors.len() != expected {
                let maps = if blocks > 0 {
                    format!(", then {blocks} block maps ({})", shape.blocks.join(", "))
                } else {
                    String::new()
                };
                return Err(format!(
                    "returns a tuple of {} items; outputs = \"{}\" expects ({}){maps}",
                    items.len(),
                    kind.name(),
                    tuple_names(kind)
                ));
            }
            let logits = tensors[0];
            check_logits(logits, batch, c)?;
            let confidence = if wants_conf {
                let conf = tensors[1];
                if conf.size() != [batch] && conf.size() != [batch, 1] {
                    return Err(format!(
                        "confidence has shape {:?}, expected [{batch}, 1] or [{batch}]",
                        conf.size()
                    ));
                }
                Some(float(&conf.reshape([batch]))?)
            } else {
                None
            };
            let features = if wants_features {
                let z = tensors[outputs - 1];
                let size = z.size();
                let width_ok = shape.features.is_none_or(|d| size.get(1) == Some(&(d as i64)));
                if size.len() != 2 || size[0] != batch || size[1] < 1 || !width_ok {
                    let d = shape.features.map_or("D".to_string(), |d| d.to_string());
                    return Err(format!(
                        "features have shape {size:?}, expected [{batch}, {d}] (the penultimate layer's output, flattened)"
                    ));
                }
                Some(float(z)?)
            } else {
                None
            };
            let (block_means, rank1_removed, gram) = if blocks > 0 {
                let reduced = super::blocks::reduce(&tensors[outputs..], shape.blocks, batch, shape.gram_rows)?;
                (reduced.means, Some(reduced.rank1_removed), reduced.gram)
            } else {
                (Vec::new(), None, None)
            };
            Ok(Outputs {
                logits: float(logits)?,
                confidence,
                features,
                members: Vec::new(),
                block_means,
                rank1_removed,
                gram,
            })
        }
        other => Err(format!(
            "returns {}, expected a tensor or a tuple of tensors",
            ivalue_kind(&other)
        )),
    }
}

/// One `[N, C (+1) (+D)]` tensor, cut into its parts.
fn one_tensor(t: &Tensor, shape: OutputShape, batch: i64) -> Result<Outputs, String> {
    let kind = shape.kind;
    let c = shape.classes as i64;
    let conf = i64::from(kind.has_confidence());
    let d = match (kind.has_features(), shape.features) {
        (false, _) => 0,
        (true, Some(d)) => d as i64,
        (true, None) => {
            return Err(format!(
                "returns one tensor of shape {:?}; for outputs = \"{}\" in one tensor the card must give `features = D` (or return a ({}) tuple)",
                t.size(),
                kind.name(),
                tuple_names(kind)
            ));
        }
    };
    let width = c + conf + d;
    if t.size() != [batch, width] {
        let parts = match (conf, d) {
            (1, 0) => "last column = confidence".to_string(),
            (0, _) => format!("{c} logits, then {d} features"),
            _ => format!("{c} logits, the confidence, then {d} features"),
        };
        return Err(format!(
            "returns one tensor of shape {:?}; outputs = \"{}\" expects [{batch}, {width}] ({parts}) or a ({}) tuple",
            t.size(),
            kind.name(),
            tuple_names(kind)
        ));
    }
    let t = float(t)?;
    let narrow = |start: i64, len: i64| t.f_narrow(1, start, len).map_err(|e| e.to_string());
    Ok(Outputs {
        logits: narrow(0, c)?,
        confidence: if conf == 1 {
            Some(t.f_select(1, c).map_err(|e| e.to_string())?)
        } else {
            None
        },
        features: if d > 0 { Some(narrow(c + conf, d)?) } else { None },
        members: Vec::new(),
        block_means: Vec::new(),
        rank1_removed: None,
        gram: None,
    })
}

fn check_logits(t: &Tensor, batch: i64, c: i64) -> Result<(), String> {
    if t.size() == [batch, c] {
        Ok(())
    } else {
        Err(format!(
            "logits have shape {:?}, expected [{batch}, {c}] ({c} classes in the card)",
            t.size()
        ))
    }
}

fn float(t: &Tensor) -> Result<Tensor, String> {
    match t.kind() {
        Kind::Half => Err(super::probe::half_message("float16")),
        Kind::BFloat16 => Err(super::probe::half_message("bfloat16")),
        _ => t.f_to_kind(Kind::Float).map_err(|e| e.to_string()),
    }
}

fn tuple_names(kind: OutputKind) -> &'static str {
    match kind {
        OutputKind::Logits => "logits",
        OutputKind::LogitsAndConfidence => "logits, confidence",
        OutputKind::LogitsAndFeatures => "logits, features",
        OutputKind::LogitsConfidenceAndFeatures => "logits, confidence, features",
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
    use super::*;

    fn shape(kind: OutputKind, features: Option<usize>) -> OutputShape<'static> {
        OutputShape {
            kind,
            classes: 3,
            features,
            blocks: &[],
            gram_rows: false,
        }
    }

    #[test]
    fn one_tensor_is_cut_into_logits_confidence_and_features() {
        let t = Tensor::arange(2 * 7, (Kind::Float, tch::Device::Cpu)).view([2, 7]);
        let out = split_outputs(
            IValue::Tensor(t.shallow_clone()),
            shape(OutputKind::LogitsConfidenceAndFeatures, Some(3)),
            2,
        )
        .unwrap();
        assert_eq!(
            Vec::<f32>::try_from(out.logits.reshape([-1])).unwrap(),
            [0.0, 1.0, 2.0, 7.0, 8.0, 9.0]
        );
        assert_eq!(Vec::<f32>::try_from(out.confidence.unwrap()).unwrap(), [3.0, 10.0]);
        assert_eq!(out.features.unwrap().size(), [2, 3]);
        let err = split_outputs(IValue::Tensor(t), shape(OutputKind::LogitsAndFeatures, None), 2)
            .err()
            .unwrap();
        assert!(err.contains("must give `features = D`"), "{err}");
    }

    #[test]
    fn tuples_are_checked_item_by_item() {
        let logits = Tensor::zeros([2, 3], (Kind::Float, tch::Device::Cpu));
        let z = Tensor::zeros([2, 5], (Kind::Float, tch::Device::Cpu));
        let pair = || {
            IValue::Tuple(vec![
                IValue::Tensor(logits.shallow_clone()),
                IValue::Tensor(z.shallow_clone()),
            ])
        };
        let out = split_outputs(pair(), shape(OutputKind::LogitsAndFeatures, None), 2).unwrap();
        assert_eq!(out.features.unwrap().size(), [2, 5]);
        let err = split_outputs(pair(), shape(OutputKind::LogitsAndFeatures, Some(4)), 2)
            .err()
            .unwrap();
        assert!(err.contains("features have shape [2, 5], expected [2, 4]"), "{err}");
        let err = split_outputs(pair(), shape(OutputKind::LogitsConfidenceAndFeatures, None), 2)
            .err()
            .unwrap();
        assert!(err.contains("expects (logits, confidence, features)"), "{err}");
    }
}
