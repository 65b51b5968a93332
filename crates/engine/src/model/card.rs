//! The model card: the sidecar TOML that says how to feed a TorchScript model and read its output.

use serde::Deserialize;
use std::path::{Path, PathBuf};

use super::ModelError;
use oodscope_data::limits::check_input_size;
pub use oodscope_data::preprocessing::{Backend, Interpolation, Preprocessing, ResizeMode};

/// What a single model returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OutputKind {
    /// Logits `[N, C]`.
    #[serde(rename = "logits")]
    Logits,
    /// Logits plus one confidence logit: a `(logits [N, C], confidence [N, 1] or [N])` tuple,
    /// or one `[N, C + 1]` tensor whose last column is the confidence logit.
    #[serde(rename = "logits+confidence")]
    LogitsAndConfidence,
    /// Logits plus the penultimate features z: a `(logits [N, C], features [N, D])` tuple, or one
    /// `[N, C + D]` tensor with the card's `features = D`.
    #[serde(rename = "logits+features")]
    LogitsAndFeatures,
    /// Both: a `(logits, confidence, features)` tuple, or one `[N, C + 1 + D]` tensor.
    #[serde(rename = "logits+confidence+features")]
    LogitsConfidenceAndFeatures,
}

impl OutputKind {
    pub fn has_confidence(self) -> bool {
        matches!(self, Self::LogitsAndConfidence | Self::LogitsConfidenceAndFeatures)
    }

    pub fn has_features(self) -> bool {
        matches!(self, Self::LogitsAndFeatures | Self::LogitsConfidenceAndFeatures)
    }

    /// The card's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Logits => "logits",
            Self::LogitsAndConfidence => "logits+confidence",
            Self::LogitsAndFeatures => "logits+features",
            Self::LogitsConfidenceAndFeatures => "logits+confidence+features",
        }
    }
}

/// Where the final linear layer `ℓ = W·z + b` is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadSource {
    /// A linear submodule of the TorchScript file (`"fc"`, `"classifier.3"`): its `weight` and `bias`.
    Submodule(String),
    /// A `.safetensors` file with `weight` [C, D] and `bias` [C] (resolved against the card).
    File(PathBuf),
}

impl HeadSource {
    fn parse(text: &str, card: &Path) -> Self {
        if text.ends_with(".safetensors") {
            HeadSource::File(card.parent().unwrap_or(Path::new(".")).join(text))
        } else {
            HeadSource::Submodule(text.to_string())
        }
    }

    pub fn describe(&self) -> String {
        match self {
            HeadSource::Submodule(name) => format!("submodule `{name}`"),
            HeadSource::File(path) => path.display().to_string(),
        }
    }
}

/// One member of a leave-out ensemble, as written in the card.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberEntry {
    /// Path of the member's TorchScript file, relative to the card.
    pub model: PathBuf,
    /// Indices (into the card's `classes`) of the classes this member outputs, in its output order.
    pub classes: Vec<usize>,
}

/// The card as parsed from TOML, before checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCard {
    name: Option<String>,
    input: Option<Vec<i64>>,
    mean: Option<Vec<f32>>,
    std: Option<Vec<f32>>,
    classes: Option<Vec<String>>,
    outputs: Option<OutputKind>,
    features: Option<i64>,
    head: Option<String>,
    blocks: Option<Vec<String>>,
    resize: Option<toml::Value>,
    crop: Option<toml::Value>,
    interpolation: Option<String>,
    backend: Option<String>,
    members: Option<Vec<MemberEntry>>,
    accuracy: Option<f64>,
    notes: Option<String>,
}

/// What kind of model a card describes.
#[derive(Debug, Clone, PartialEq)]
pub enum CardKind {
    /// One TorchScript file.
    Single {
        outputs: OutputKind,
        /// D, when the card gives it (required for the single-tensor form of features).
        features: Option<usize>,
        head: Option<HeadSource>,
        /// The inner blocks whose feature maps the model returns after its features (`blocks`).
        blocks: Vec<String>,
    },
    /// A leave-out ensemble: members with their class subsets (paths resolved against the card).
    Ensemble { members: Vec<MemberEntry> },
}

/// A checked model card.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCard {
    pub name: String,
    /// Input shape `[C, H, W]`; C is 1 or 3.
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub classes: Vec<String>,
    /// How images are brought to the input size (`resize`, `crop`, `interpolation`, `backend`).
    pub preprocessing: Preprocessing,
    pub kind: CardKind,
    /// The accuracy the card claims on its test set (a fraction), if it says.
    pub accuracy: Option<f64>,
    /// Free text: how the model was made.
    pub notes: Option<String>,
    /// Where the card was read from.
    pub path: PathBuf,
}

impl ModelCard {
    /// Reads and checks a card file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::card(path, format!("cannot read it: {e}")))?;
        Self::parse(&text, path)
    }

    /// Parses card text; `path` names the card in messages and anchors member paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ModelError> {
        let raw: RawCard =
            toml::from_str(text).map_err(|e| ModelError::card(path, format!("not a valid card: {}", e.message())))?;
        let missing = |field: &str| ModelError::card(path, format!("missing field `{field}`"));
        let input = raw.input.ok_or_else(|| missing("input"))?;
        let mean = raw.mean.ok_or_else(|| missing("mean"))?;
        let std = raw.std.ok_or_else(|| missing("std"))?;
        let classes = raw.classes.ok_or_else(|| missing("classes"))?;
        let bad = |what: String| ModelError::card(path, what);

        let [c, h, w] = input[..] else {
            return Err(bad(format!("`input` must be [C, H, W], got {input:?}")));
        };
        if !(c == 1 || c == 3) || h <= 0 || w <= 0 {
            return Err(bad(format!(
                "`input` must have C = 1 or 3 and positive H, W; got {input:?}"
            )));
        }
        let channels = c as usize;
        let preprocessing = Preprocessing::parse(
            raw.resize.as_ref(),
            raw.crop.as_ref(),
            raw.interpolation.as_deref(),
            raw.backend.as_deref(),
            (h as usize, w as usize),
        )
        .map_err(|e| bad(e.to_string()))?;
        // Before anything is allocated for it: the probe's images, the batches, `preprocess`'s tensor.
        check_input_size(c as u64, h as u64, w as u64, preprocessing.resize).map_err(bad)?;
        if mean.len() != channels || std.len() != channels {
            return Err(bad(format!(
                "`mean` and `std` need {channels} values (one per channel), got {} and {}",
                mean.len(),
                std.len()
            )));
        }
        if std.iter().any(|s| !(s.is_finite() && *s > 0.0)) || mean.iter().any(|m| !m.is_finite()) {
            return Err(bad("`std` must be positive and `mean` finite".into()));
        }
        if classes.len() < 2 {
            return Err(bad(format!(
                "`classes` must name at least 2 classes, got {}",
                classes.len()
            )));
        }
        // A name twice would make the ImageFolder labels and the predicted names ambiguous.
        let mut seen = std::collections::HashMap::new();
        for (k, name) in classes.iter().enumerate() {
            if let Some(first) = seen.insert(name.as_str(), k) {
                return Err(bad(format!(
                    "`classes` names \"{name}\" twice (classes {first} and {k}): class names must be unique"
                )));
            }
        }
        let kind = match (raw.outputs, raw.members) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "a card has either `outputs` (one model) or `members` (an ensemble), not both".into(),
                ));
            }
            (None, None) => return Err(missing("outputs")),
            (Some(outputs), None) => {
                let features = match raw.features {
                    Some(d) if d <= 0 => {
                        return Err(bad(format!("`features` must be a positive width D, got {d}")));
                    }
                    Some(_) if !outputs.has_features() => {
                        return Err(bad(format!(
                            "`features` is set but outputs = \"{}\" has no features (use \"logits+features\")",
                            outputs.name()
                        )));
                    }
                    d => d.map(|d| d as usize),
                };
                if raw.head.as_deref().is_some_and(str::is_empty) {
                    return Err(bad(
                        "`head` is empty: give a linear submodule's name or a .safetensors file".into(),
                    ));
                }
                CardKind::Single {
                    outputs,
                    features,
                    head: raw.head.as_deref().map(|h| HeadSource::parse(h, path)),
                    blocks: super::blocks::check_names(raw.blocks.unwrap_or_default(), outputs).map_err(bad)?,
                }
            }
            (None, Some(_)) if raw.features.is_some() || raw.head.is_some() || raw.blocks.is_some() => {
                return Err(bad("an ensemble card has no `features`, `head` or `blocks`".into()));
            }
            (None, Some(members)) => CardKind::Ensemble {
                members: check_members(members, classes.len(), path)?,
            },
        };
        let name = raw.name.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        Ok(ModelCard {
            name,
            channels,
            height: h as usize,
            width: w as usize,
            mean,
            std,
            classes,
            preprocessing,
            kind,
            accuracy: raw.accuracy,
            notes: raw.notes,
            path: path.to_path_buf(),
        })
    }

    /// What decoding needs to bring any image to this model's input.
    pub fn preprocess(&self) -> oodscope_data::Preprocess {
        let p = self.preprocessing;
        oodscope_data::Preprocess {
            resize: p.resize,
            crop: p.crop,
            interpolation: p.interpolation,
            backend: p.backend,
            ..oodscope_data::Preprocess::new(self.channels, self.height, self.width)
        }
    }

    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Input shape as `[C, H, W]` for tensors.
    pub fn input_shape(&self) -> [i64; 3] {
        [self.channels as i64, self.height as i64, self.width as i64]
    }

    pub fn has_confidence_branch(&self) -> bool {
        matches!(&self.kind, CardKind::Single { outputs, .. } if outputs.has_confidence())
    }

    /// The inner blocks whose maps the model returns after its features (empty: none).
    pub fn blocks(&self) -> &[String] {
        match &self.kind {
            CardKind::Single { blocks, .. } => blocks,
            CardKind::Ensemble { .. } => &[],
        }
    }

    /// Whether the model returns its penultimate features.
    pub fn has_features(&self) -> bool {
        matches!(&self.kind, CardKind::Single { outputs, .. } if outputs.has_features())
    }

    /// Where the head is read from, when the card gives one.
    pub fn head(&self) -> Option<&HeadSource> {
        match &self.kind {
            CardKind::Single { head, .. } => head.as_ref(),
            CardKind::Ensemble { .. } => None,
        }
    }

    pub fn is_ensemble(&self) -> bool {
        matches!(self.kind, CardKind::Ensemble { .. })
    }
}

fn check_members(members: Vec<MemberEntry>, num_classes: usize, path: &Path) -> Result<Vec<MemberEntry>, ModelError> {
    if members.is_empty() {
        return Err(ModelError::card(path, "`members` is empty".into()));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    members
        .into_iter()
        .enumerate()
        .map(|(k, m)| {
            if m.classes.len() < 2 {
                return Err(ModelError::card(
                    path,
                    format!("member {k} must cover at least 2 classes"),
                ));
            }
            if let Some(&c) = m.classes.iter().find(|&&c| c >= num_classes) {
                return Err(ModelError::card(
                    path,
                    format!("member {k} names class {c}, but the card has {num_classes} classes"),
                ));
            }
            let mut sorted = m.classes.clone();
            sorted.sort_unstable();
            if sorted.windows(2).any(|w| w[0] == w[1]) {
                return Err(ModelError::card(path, format!("member {k} lists a class twice")));
            }
            Ok(MemberEntry {
                model: base.join(&m.model),
                classes: m.classes,
            })
        })
        .collect()
}

/// The card path for a model path: a `.toml` is the card; a `.pt` has `<stem>.toml` beside it.
pub fn card_path_for(model_path: &Path) -> PathBuf {
    if model_path.extension().is_some_and(|e| e == "toml") {
        model_path.to_path_buf()
    } else {
        model_path.with_extension("toml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = r#"
name = "tiny"
input = [3, 8, 8]
mean = [0.5, 0.5, 0.5]
std = [0.25, 0.25, 0.25]
classes = ["a", "b", "c"]
outputs = "logits"
"#;

    #[test]
    fn parses_a_plain_card() {
        let card = ModelCard::parse(PLAIN, Path::new("m/tiny.toml")).unwrap();
        assert_eq!(card.input_shape(), [3, 8, 8]);
        assert_eq!(card.preprocessing, Preprocessing::default());
        assert_eq!(card.preprocessing.resize, ResizeMode::Resize);
        assert_eq!(
            card.kind,
            CardKind::Single {
                outputs: OutputKind::Logits,
                features: None,
                head: None,
                blocks: Vec::new(),
            }
        );
        assert!(!card.has_features() && card.head().is_none());
    }

    #[test]
    fn parses_features_and_a_head() {
        let text = PLAIN.replace(
            "outputs = \"logits\"",
            "outputs = \"logits+features\"\nfeatures = 16\nhead = \"w.safetensors\"",
        );
        let card = ModelCard::parse(&text, Path::new("m/tiny.toml")).unwrap();
        assert!(card.has_features() && !card.has_confidence_branch());
        assert_eq!(card.head(), Some(&HeadSource::File(PathBuf::from("m/w.safetensors"))));
        let text = PLAIN.replace(
            "outputs = \"logits\"",
            "outputs = \"logits+confidence+features\"\nhead = \"classifier.3\"",
        );
        let card = ModelCard::parse(&text, Path::new("m/tiny.toml")).unwrap();
        assert!(card.has_features() && card.has_confidence_branch());
        assert_eq!(card.head(), Some(&HeadSource::Submodule("classifier.3".into())));
        let err = ModelCard::parse(
            &PLAIN.replace("outputs = \"logits\"", "outputs = \"logits\"\nfeatures = 8"),
            Path::new("x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("has no features"), "{err}");
    }

    #[test]
    fn names_the_missing_field_and_file() {
        let err = ModelCard::parse(
            &PLAIN.replace("classes = [\"a\", \"b\", \"c\"]", ""),
            Path::new("m/tiny.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("m/tiny.toml") && err.contains("`classes`"), "{err}");
    }

    #[test]
    fn rejects_mean_of_wrong_length() {
        let err = ModelCard::parse(
            &PLAIN.replace("mean = [0.5, 0.5, 0.5]", "mean = [0.5]"),
            Path::new("x.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("one per channel"), "{err}");
    }

    fn with(fields: &str) -> Result<ModelCard, String> {
        let text = PLAIN.replace("input = [3, 8, 8]", "input = [3, 224, 224]") + fields;
        ModelCard::parse(&text, Path::new("m/p.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_the_preprocessing_fields() {
        let p = with("resize = 256\ncrop = [224, 224]\ninterpolation = \"bicubic\"\nbackend = \"pil\"")
            .unwrap()
            .preprocessing;
        assert_eq!(
            p,
            Preprocessing {
                resize: ResizeMode::ShorterSide(256),
                crop: Some((224, 224)),
                interpolation: Interpolation::Bicubic,
                backend: Backend::Pil,
            }
        );
        // An integer resize crops to the input by default; a crop may be an integer too.
        assert_eq!(with("resize = 248").unwrap().preprocessing.crop, Some((224, 224)));
        assert_eq!(
            with("resize = 256\ncrop = 224").unwrap().preprocessing.crop,
            Some((224, 224))
        );
        let p = with("resize = [227, 229]\ncrop = [224, 224]").unwrap().preprocessing;
        assert_eq!(
            p.resize,
            ResizeMode::Size {
                height: 227,
                width: 229
            }
        );
        assert_eq!(p.backend, Backend::Tensor);
        let p = with("resize = [224, 224]\ninterpolation = \"nearest\"")
            .unwrap()
            .preprocessing;
        assert_eq!((p.crop, p.interpolation), (None, Interpolation::Nearest));
        // The old strings keep their meaning, with a backend or filter if given.
        assert_eq!(
            with("resize = \"center-crop\"").unwrap().preprocessing.resize,
            ResizeMode::CenterCrop
        );
        let p = with("resize = \"resize\"\nbackend = \"pil\"").unwrap().preprocessing;
        assert_eq!((p.resize, p.crop, p.backend), (ResizeMode::Resize, None, Backend::Pil));
    }

    #[test]
    fn rejects_bad_preprocessing_with_a_clear_message() {
        for (fields, expected) in [
            (
                "resize = 256\ninterpolation = \"lanczos\"",
                "`interpolation` must be \"bilinear\", \"bicubic\" or \"nearest\", got \"lanczos\"",
            ),
            (
                "backend = \"opencv\"",
                "`backend` must be \"pil\", \"tensor\" or \"hf\", got \"opencv\"",
            ),
            (
                "resize = \"squash\"",
                "`resize` must be an integer (the shorter side), [H, W]",
            ),
            ("resize = 2.5", "`resize` must be an integer"),
            ("resize = 0", "`resize` must be positive, got 0"),
            ("resize = [256]", "`resize` must be an integer or [H, W], got [256]"),
            (
                "resize = 256\ncrop = [260, 224]",
                "`crop` 260×224 is larger than `resize` = 256",
            ),
            (
                "resize = 200",
                "the default crop (the input size) 224×224 is larger than `resize` = 200",
            ),
            (
                "resize = [256, 230]\ncrop = [224, 240]",
                "`crop` 224×240 is larger than `resize` = [256, 230]",
            ),
            (
                "resize = 256\ncrop = [200, 200]",
                "give 200×200 images, but `input` is 224×224",
            ),
            ("resize = [256, 256]", "give 256×256 images, but `input` is 224×224"),
            (
                "resize = \"center-crop\"\ncrop = [224, 224]",
                "`crop` needs `resize` to be a size",
            ),
            ("crop = [224, 224]", "`crop` needs `resize` to be a size"),
        ] {
            let err = with(fields).unwrap_err();
            assert!(err.contains(expected) && err.contains("m/p.toml"), "{fields}: {err}");
        }
    }

    #[test]
    fn resolves_member_paths_against_the_card() {
        let text = PLAIN.replace(
            "outputs = \"logits\"",
            "members = [{ model = \"m0.pt\", classes = [0, 1] }, { model = \"m1.pt\", classes = [1, 2] }]",
        );
        let card = ModelCard::parse(&text, Path::new("dir/ens.toml")).unwrap();
        let CardKind::Ensemble { members } = card.kind else {
            panic!("not an ensemble")
        };
        assert_eq!(members[1].model, Path::new("dir/m1.pt"));
    }

    #[test]
    fn rejects_an_input_over_the_memory_budget_and_a_class_named_twice() {
        let err = ModelCard::parse(
            &PLAIN
                .replace("input = [3, 8, 8]", "input = [1, 100000, 100000]")
                .replace("[0.5, 0.5, 0.5]", "[0.5]")
                .replace("[0.25, 0.25, 0.25]", "[0.25]"),
            Path::new("m/big.toml"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "model card m/big.toml: `input` = [1, 100000, 100000] takes 38146 MiB per image as float32, over the 256 MiB limit for one input image (4096×4096 RGB takes 192 MiB; classifiers take 224 to 1024 px)"
        );
        let err = ModelCard::parse(
            &PLAIN.replace("[\"a\", \"b\", \"c\"]", "[\"a\", \"b\", \"a\"]"),
            Path::new("m/twice.toml"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "model card m/twice.toml: `classes` names \"a\" twice (classes 0 and 2): class names must be unique"
        );
    }

    #[test]
    fn rejects_member_class_out_of_range() {
        let text = PLAIN.replace(
            "outputs = \"logits\"",
            "members = [{ model = \"m0.pt\", classes = [0, 7] }]",
        );
        let err = ModelCard::parse(&text, Path::new("e.toml")).unwrap_err();
        assert!(err.to_string().contains("class 7"), "{err}");
    }
}
