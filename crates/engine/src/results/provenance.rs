//! The metadata of a run's results file, from the run's model, methods, fit, shard and sets: what
//! `merge` checks parts against each other with.

use std::path::Path;

use super::schema::{
    FORMAT, FORMAT_VERSION, FitMeta, Metadata, MethodMeta, ModelMeta, SCHEMA_VERSION, SetMeta, sha256_hex,
};
use crate::detect::ScoreSettings;
use crate::model::{Model, device_name};
use crate::stats::Fit;
use oodscope_data::{ImageSet, Shard};

/// What a run's results file records besides its rows.
pub struct RunDescription<'a> {
    /// `score` or `compare`.
    pub command: &'static str,
    pub model: &'a Model,
    pub model_path: &'a Path,
    pub methods: &'a [ScoreSettings],
    pub fit: Option<&'a Fit>,
    pub shard: Shard,
    /// The sets as opened (whole listings, before the shard is taken).
    pub whole_sets: &'a [ImageSet],
    /// `compare`'s group of each set (empty: none).
    pub groups: &'a [Option<String>],
    pub save_logits: bool,
    pub save_features: bool,
    pub batch_size: usize,
}

/// The metadata a [`super::ResultsWriter`] starts from (rows and skipped files come as it writes).
pub fn metadata(run: &RunDescription) -> Result<Metadata, String> {
    let model = run.model;
    let card =
        std::fs::read(&model.card.path).map_err(|e| format!("cannot read {}: {e}", model.card.path.display()))?;
    let lens: Vec<usize> = run.whole_sets.iter().map(ImageSet::len).collect();
    Ok(Metadata {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        schema_version: SCHEMA_VERSION.into(),
        oodscope_version: env!("CARGO_PKG_VERSION").into(),
        command: run.command.into(),
        model: ModelMeta {
            path: run.model_path.display().to_string(),
            name: model.card.name.clone(),
            sha256: crate::stats::info::model_hash(model)?,
            card_sha256: sha256_hex(&card),
            classes: model.card.classes.clone(),
        },
        methods: run.methods.iter().map(MethodMeta::of).collect(),
        baseline: !model.card.is_ensemble(),
        fit: run.fit.map(|f| FitMeta::of(&f.info)),
        shard: run.shard,
        sets: run
            .whole_sets
            .iter()
            .enumerate()
            .zip(run.shard.blocks(&lens, run.batch_size))
            .map(|((i, s), block)| SetMeta::of(s, block, run.groups.get(i).cloned().flatten()))
            .collect(),
        skipped: Vec::new(),
        unreadable: Vec::new(),
        logits: run.save_logits.then_some(0),
        features: run.save_features.then_some(0),
        device: device_name(model.device),
        batch_size: run.batch_size,
    })
}
