//! The per-image results table: its columns (one row per image, one `f32` score column per method,
//! optional `logits` / `features` lists) and its metadata (one JSON value under the key `oodscope`).
//! Only `set`, `role` and something to score are required of a file; every other column and every
//! metadata field has a default (docs/results.md lists them).

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

use crate::detect::{Method, Params, ScoreSettings};
use oodscope_data::{ImageSet, NoiseKind, Role, SetSource, Shard, path_to_text};

/// The key of the file's key-value metadata that holds [`Metadata`] as JSON.
pub const KEY: &str = "oodscope";
/// [`Metadata::format`] of every results file, and the version of its layout.
pub const FORMAT: &str = "oodscope-results";
pub const FORMAT_VERSION: u32 = 1;
/// [`Metadata::schema_version`] of the files this oodscope writes: "2" added optional columns and
/// metadata fields, other tools' list and number types, and external score columns to "1".
pub const SCHEMA_VERSION: &str = "2";
/// The schema version of a file without oodscope's metadata (written by another tool).
pub const EXTERNAL: &str = "external";

pub const SET: &str = "set";
pub const ROLE: &str = "role";
pub const PATH: &str = "path";
pub const INDEX: &str = "index";
pub const LABEL: &str = "label";
pub const PRED: &str = "pred";
pub const PRED_PROB: &str = "pred_prob";
pub const LOGITS: &str = "logits";
pub const FEATURES: &str = "features";

/// The columns before the score columns, in order.
pub const FIXED: [&str; 7] = [SET, ROLE, PATH, INDEX, LABEL, PRED, PRED_PROB];

/// What a results file says about its run. Every field but `format` may be left out of a file's
/// JSON (its default is then used).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metadata {
    /// Always [`FORMAT`].
    pub format: String,
    pub format_version: u32,
    /// [`SCHEMA_VERSION`]; "1" in files written before it was recorded, [`EXTERNAL`] for a file
    /// without oodscope's metadata.
    pub schema_version: String,
    pub oodscope_version: String,
    /// `score` or `compare`.
    pub command: String,
    pub model: ModelMeta,
    /// The methods, in the order of the score columns.
    pub methods: Vec<MethodMeta>,
    /// Whether `pred_prob` is also the MSP baseline (single models; not an ensemble).
    pub baseline: bool,
    /// The fit the methods used, if any.
    pub fit: Option<FitMeta>,
    /// Which shard of every set's listing the rows cover (`0/1`: the whole listing).
    pub shard: Shard,
    pub sets: Vec<SetMeta>,
    /// Images of the covered blocks that could not be decoded: no row, but a place.
    pub skipped: Vec<SkippedMeta>,
    /// Entries the folder scans could not follow (not in any listing).
    pub unreadable: Vec<UnreadableMeta>,
    /// The width of the `logits` column, when saved.
    pub logits: Option<usize>,
    /// The width of the `features` column, when saved.
    pub features: Option<usize>,
    pub device: String,
    pub batch_size: usize,
}

impl Default for Metadata {
    /// The metadata of a file that says nothing about its run: version "1", no model, no method.
    fn default() -> Metadata {
        Metadata {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            schema_version: "1".into(),
            oodscope_version: String::new(),
            command: String::new(),
            model: ModelMeta::default(),
            methods: Vec::new(),
            baseline: false,
            fit: None,
            shard: Shard::WHOLE,
            sets: Vec::new(),
            skipped: Vec::new(),
            unreadable: Vec::new(),
            logits: None,
            features: None,
            device: String::new(),
            batch_size: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelMeta {
    pub path: String,
    pub name: String,
    /// SHA-256 over the model file, its card and its head file (as the fit's provenance has it).
    pub sha256: String,
    /// SHA-256 of the card's text.
    pub card_sha256: String,
    /// The class names `pred` and `label` index.
    pub classes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodMeta {
    /// The method's name, also its score column's.
    pub name: String,
    #[serde(default)]
    pub params: Params,
    /// `T = 1000, ε = 0.0014`.
    #[serde(default)]
    pub describe: String,
}

impl MethodMeta {
    pub fn of(settings: &ScoreSettings) -> MethodMeta {
        MethodMeta {
            name: settings.method.name().to_string(),
            params: settings.params.clone(),
            describe: settings.describe_params(),
        }
    }

    /// The settings back (`None` for a method this oodscope does not have).
    pub fn settings(&self) -> Option<ScoreSettings> {
        Some(ScoreSettings {
            method: Method::find(&self.name)?,
            params: self.params.clone(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitMeta {
    /// SHA-256 of the fit's provenance without its paths: the same statistics on any machine.
    pub identity_sha256: String,
    /// SHA-256 of the fit's tensor data (its header's `tensors_sha256`; empty in files written
    /// before fits had one).
    #[serde(default)]
    pub tensors_sha256: String,
    /// The fit's provenance as reports show it.
    pub provenance: serde_json::Value,
}

impl FitMeta {
    pub fn of(info: &crate::stats::FitInfo) -> FitMeta {
        let mut identity = serde_json::to_value(info).unwrap_or_default();
        if let Some(map) = identity.as_object_mut() {
            map.remove("model_file");
            map.remove("train_root");
            map.remove("oodscope_version");
            // Compared on its own (`tensors_sha256` below), so that a message says which differs.
            map.remove("tensors_sha256");
        }
        FitMeta {
            identity_sha256: sha256_hex(identity.to_string().as_bytes()),
            tensors_sha256: info.tensors_sha256.clone(),
            provenance: info.to_json(),
        }
    }
}

/// One set: its whole listing's length and the block of it this file covers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SetMeta {
    pub name: String,
    /// `id` or `ood`.
    pub role: String,
    /// `folder`, or the noise: `uniform`, `gaussian`.
    pub kind: String,
    /// The folder, or `uniform:N` / `gaussian:N`.
    pub source: String,
    /// `compare`'s group (`near`, `far`), if any.
    pub group: Option<String>,
    pub labelled: bool,
    /// Images in the whole listing.
    pub len: u64,
    /// The block `[start, end)` of the listing this file covers.
    pub start: u64,
    pub end: u64,
    /// Rows of this set in the file (the block less its skipped images).
    pub rows: u64,
}

impl SetMeta {
    /// A set of a run: `whole` is the set's whole listing, `range` the block of it that was scored.
    pub fn of(whole: &ImageSet, range: std::ops::Range<usize>, group: Option<String>) -> SetMeta {
        let (kind, source) = match &whole.source {
            SetSource::Folder { root, .. } => ("folder".to_string(), path_to_text(root)),
            SetSource::Noise { kind, count, .. } => (kind.name().to_string(), format!("{kind}:{count}")),
        };
        SetMeta {
            name: whole.name.clone(),
            role: whole.role.name().to_string(),
            kind,
            source,
            group,
            labelled: whole.labelled,
            len: whole.len() as u64,
            start: range.start as u64,
            end: range.end as u64,
            rows: 0,
        }
    }

    pub fn role(&self) -> Role {
        if self.role == "id" { Role::Id } else { Role::Ood }
    }

    /// The noise of a noise set (`None` for a folder).
    pub fn noise(&self) -> Option<NoiseKind> {
        match self.kind.as_str() {
            "uniform" => Some(NoiseKind::Uniform),
            "gaussian" => Some(NoiseKind::Gaussian),
            _ => None,
        }
    }

    /// The images of the covered block.
    pub fn block_len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether two files' sets are the same set (the block and the folder's place aside).
    pub fn same_set(&self, other: &SetMeta) -> bool {
        (&self.name, &self.role, &self.kind, self.len, &self.group, self.labelled)
            == (
                &other.name,
                &other.role,
                &other.kind,
                other.len,
                &other.group,
                other.labelled,
            )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedMeta {
    pub set: String,
    /// The image's place in its whole set's listing.
    pub index: u64,
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableMeta {
    pub set: String,
    pub path: String,
    pub reason: String,
}

impl Metadata {
    /// The metadata as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the stored JSON; says what is wrong in one line.
    pub fn from_json(text: &str) -> Result<Metadata, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("its `{KEY}` metadata is not JSON: {e}"))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(format!(
                "not an oodscope results file (its `{KEY}` metadata has no format = {FORMAT})"
            ));
        }
        let version = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if version != u64::from(FORMAT_VERSION) {
            return Err(format!(
                "results format {version}; this oodscope reads format {FORMAT_VERSION}"
            ));
        }
        let mut meta: Metadata =
            serde_json::from_value(value).map_err(|e| format!("unreadable `{KEY}` metadata: {e}"))?;
        if meta.schema_version == EXTERNAL {
            meta.schema_version = "1".into();
        }
        Ok(meta)
    }

    /// The metadata of a file without oodscope's (written by another tool): schema version
    /// [`EXTERNAL`]; its sets and lists are found from its columns.
    pub fn external() -> Metadata {
        Metadata {
            schema_version: EXTERNAL.into(),
            ..Metadata::default()
        }
    }

    /// Whether the file had no oodscope metadata.
    pub fn is_external(&self) -> bool {
        self.schema_version == EXTERNAL
    }

    /// The method names: the score columns, in order.
    pub fn score_columns(&self) -> Vec<&str> {
        self.methods.iter().map(|m| m.name.as_str()).collect()
    }
}

/// The Arrow schema of a file with these methods and saved outputs.
pub fn arrow_schema(meta: &Metadata) -> Arc<Schema> {
    let mut fields = vec![
        Field::new(SET, DataType::Utf8, false),
        Field::new(ROLE, DataType::Utf8, false),
        Field::new(PATH, DataType::Utf8, false),
        Field::new(INDEX, DataType::UInt64, false),
        Field::new(LABEL, DataType::Int64, true),
        Field::new(PRED, DataType::Int64, false),
        Field::new(PRED_PROB, DataType::Float32, false),
    ];
    fields.extend(
        meta.methods
            .iter()
            .map(|m| Field::new(&m.name, DataType::Float32, false)),
    );
    if meta.logits.is_some() {
        fields.push(list_field(LOGITS));
    }
    if meta.features.is_some() {
        fields.push(list_field(FEATURES));
    }
    Arc::new(Schema::new(fields))
}

fn list_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true))),
        false,
    )
}

/// The columns every results file needs: which set and which role each row belongs to.
pub const REQUIRED: [&str; 2] = [SET, ROLE];

/// Checks that a file's schema has what scoring needs (`set`, `role`) and every column its metadata
/// promises (its methods' scores, the saved lists), of a kind oodscope reads: the first missing or
/// mistyped column is the error. Other columns and other number, text and list types are read as
/// they are (see `columns`).
pub fn check_schema(schema: &Schema, meta: &Metadata) -> Result<(), String> {
    use super::columns::{is_numeric, is_numeric_list, is_text};
    let kind = |name: &str, ok: fn(&DataType) -> bool, what: &str| -> Result<(), String> {
        match schema.field_with_name(name) {
            Err(_) => Err(format!("it has no `{name}` column")),
            Ok(found) if !ok(found.data_type()) => {
                Err(format!("its `{name}` column is {}, not {what}", found.data_type()))
            }
            Ok(_) => Ok(()),
        }
    };
    for name in REQUIRED {
        kind(name, is_text, "text")
            .map_err(|e| format!("{e}: every results file needs `{SET}` and `{ROLE}` (text)"))?;
    }
    for m in &meta.methods {
        kind(&m.name, is_numeric, "numbers")?;
    }
    if meta.logits.is_some() {
        kind(LOGITS, is_numeric_list, "a list of numbers per row")?;
    }
    if meta.features.is_some() {
        kind(FEATURES, is_numeric_list, "a list of numbers per row")?;
    }
    Ok(())
}

/// Checks that a file has every column oodscope writes for its metadata, with the type it writes
/// (what `merge` needs of its parts): the first missing or mistyped column is the error.
pub fn check_complete(schema: &Schema, meta: &Metadata) -> Result<(), String> {
    for expected in arrow_schema(meta).fields() {
        match schema.field_with_name(expected.name()) {
            Err(_) => return Err(format!("it has no `{}` column", expected.name())),
            Ok(found) if found.data_type() != expected.data_type() => {
                return Err(format!(
                    "its `{}` column is {}, not {}",
                    expected.name(),
                    found.data_type(),
                    expected.data_type()
                ));
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

/// The file's own score columns: every numeric column that is not one oodscope knows (the fixed
/// columns, the lists) and not one of its metadata's methods, in file order. In a file without
/// oodscope's metadata a column named after a method is one of these too: nothing says how it was
/// scored. Pandas' saved index (`__index_level_0__`) is not a score.
pub fn external_columns(schema: &Schema, meta: &Metadata) -> Vec<String> {
    schema
        .fields()
        .iter()
        .filter(|f| super::columns::is_numeric(f.data_type()))
        .map(|f| f.name().clone())
        .filter(|name| {
            !FIXED.contains(&name.as_str())
                && name != LOGITS
                && name != FEATURES
                && !name.starts_with("__")
                && !meta.methods.iter().any(|m| &m.name == name)
        })
        .collect()
}

/// Lower-case hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(bytes))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small metadata value for the module's tests.
    pub(crate) fn sample() -> Metadata {
        Metadata {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            schema_version: SCHEMA_VERSION.into(),
            oodscope_version: "test".into(),
            command: "score".into(),
            model: ModelMeta {
                path: "m.pt".into(),
                name: "m".into(),
                sha256: "aa".into(),
                card_sha256: "bb".into(),
                classes: vec!["a".into(), "b".into()],
            },
            methods: vec![MethodMeta {
                name: "msp".into(),
                params: Params::new(),
                describe: String::new(),
            }],
            baseline: true,
            fit: None,
            shard: Shard::WHOLE,
            sets: vec![SetMeta {
                name: "id".into(),
                role: "id".into(),
                kind: "folder".into(),
                source: "id".into(),
                group: None,
                labelled: true,
                len: 4,
                start: 0,
                end: 4,
                rows: 4,
            }],
            skipped: Vec::new(),
            unreadable: Vec::new(),
            logits: Some(2),
            features: None,
            device: "cpu".into(),
            batch_size: 2,
        }
    }

    #[test]
    fn metadata_round_trips_and_foreign_json_says_so() {
        let meta = sample();
        assert_eq!(Metadata::from_json(&meta.to_json()).unwrap(), meta);
        assert!(
            Metadata::from_json("{\"a\": 1}")
                .unwrap_err()
                .contains("not an oodscope results file")
        );
        assert!(Metadata::from_json("nope").unwrap_err().contains("not JSON"));
        let newer = meta.to_json().replace("\"format_version\":1", "\"format_version\":9");
        assert!(Metadata::from_json(&newer).unwrap_err().contains("format 9"));
    }

    #[test]
    fn the_schema_has_a_score_column_per_method_and_the_saved_lists() {
        let meta = sample();
        let schema = arrow_schema(&meta);
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "set",
                "role",
                "path",
                "index",
                "label",
                "pred",
                "pred_prob",
                "msp",
                "logits"
            ]
        );
        assert!(check_schema(&schema, &meta).is_ok());
        let fewer = Schema::new(
            schema
                .fields()
                .iter()
                .filter(|f| f.name() != "pred")
                .cloned()
                .collect::<Vec<_>>(),
        );
        // Only what scoring needs is required: `pred` may go, `set` may not.
        assert!(check_schema(&fewer, &meta).is_ok());
        let no_set = Schema::new(
            schema
                .fields()
                .iter()
                .filter(|f| f.name() != "set")
                .cloned()
                .collect::<Vec<_>>(),
        );
        assert!(
            check_schema(&no_set, &meta)
                .unwrap_err()
                .starts_with("it has no `set` column")
        );
        let mut mine = schema.fields().to_vec();
        mine.push(Arc::new(Field::new("mine", DataType::Float64, false)));
        mine.push(Arc::new(Field::new("__index_level_0__", DataType::Int64, false)));
        assert_eq!(external_columns(&Schema::new(mine), &meta), ["mine"]);
    }
}
