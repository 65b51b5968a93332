//! `fit-merge`: the parts of a sharded fit checked against each other (one model, one listing, the
//! same options, every shard once, none truncated), their sums merged, and the finishing passes of
//! a single fit run over them, into a fit file whose provenance is the single fit's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use tch::Device;

use super::finish::{FeatureBlocks, Finish};
use super::part::{Part, PartFeatures};
use super::pass::WriteError;
use super::{FitProgress, FitStage};
use crate::Error;
use crate::stats::FitInfo;
use crate::stats::short;

/// Opens and checks the parts of one fit, in shard order. Each problem is one line naming the part.
pub fn open_parts(paths: &[PathBuf]) -> Result<Vec<Part>, String> {
    if paths.is_empty() {
        return Err("fit-merge: give the parts written by `fit --shard i/n --out PART`".into());
    }
    let mut parts = Vec::with_capacity(paths.len());
    for path in paths {
        parts.push(Part::open(path).map_err(|e| format!("fit part {}: {e}", path.display()))?);
    }
    let first = &parts[0];
    for part in &parts[1..] {
        agree(first, part)?;
    }
    let count = first.info.shard.count;
    let mut by_index: BTreeMap<usize, usize> = BTreeMap::new();
    for (k, part) in parts.iter().enumerate() {
        if let Some(&other) = by_index.get(&part.info.shard.index) {
            return Err(format!(
                "fit part {}: shard {} is given twice (also {})",
                part.path.display(),
                part.info.shard,
                parts[other].path.display()
            ));
        }
        by_index.insert(part.info.shard.index, k);
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !by_index.contains_key(i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "fit-merge: shard{} {} missing: every shard 0/{count} to {}/{count} must be given once",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", "),
            count - 1
        ));
    }
    let mut slots: Vec<Option<Part>> = parts.into_iter().map(Some).collect();
    Ok(by_index.values().filter_map(|&k| slots[k].take()).collect())
}

/// `part` is a shard of the same fit as `first`, or the reason it is not.
fn agree(first: &Part, part: &Part) -> Result<(), String> {
    let (a, b) = (&first.info, &part.info);
    let refuse = |what: String| {
        Err(format!(
            "fit part {}: {what} than {}",
            part.path.display(),
            first.path.display()
        ))
    };
    if a.fit.model_sha256 != b.fit.model_sha256 {
        return refuse(format!(
            "made from another model or card (model hash {}, {} there)",
            short(&b.fit.model_sha256),
            short(&a.fit.model_sha256)
        ));
    }
    if a.fit.train_listing_sha256 != b.fit.train_listing_sha256 || a.fit.train_files != b.fit.train_files {
        return refuse(format!(
            "made from another training listing ({} files, hash {}; {} files, hash {} there)",
            b.fit.train_files,
            short(&b.fit.train_listing_sha256),
            a.fit.train_files,
            short(&a.fit.train_listing_sha256)
        ));
    }
    if a.fit.max_images != b.fit.max_images || a.used_files != b.used_files {
        return refuse(format!(
            "made with another --max-images ({:?}, {:?} there)",
            b.fit.max_images, a.fit.max_images
        ));
    }
    if a.batch_size != b.batch_size {
        return refuse(format!(
            "made with another --batch-size ({}, {} there; shards are whole batches)",
            b.batch_size, a.batch_size
        ));
    }
    if a.shard.count != b.shard.count {
        return refuse(format!(
            "cut into another number of shards (shard {}, {} there)",
            b.shard, a.shard
        ));
    }
    if a.fit.class_covariances != b.fit.class_covariances {
        let with = |yes: bool| if yes { "with" } else { "without" };
        return refuse(format!(
            "made {} --class-covariances ({} there)",
            with(b.fit.class_covariances),
            with(a.fit.class_covariances)
        ));
    }
    if a.fit.oodscope_version != b.fit.oodscope_version {
        return refuse(format!(
            "made by another oodscope ({}, {} there)",
            b.fit.oodscope_version, a.fit.oodscope_version
        ));
    }
    if a.fit.classes != b.fit.classes
        || a.fit.feature_width != b.fit.feature_width
        || a.fit.labels != b.fit.labels
        || a.fit.preprocess != b.fit.preprocess
        || a.fit.block_widths != b.fit.block_widths
    {
        return refuse("made with other classes, features, inner blocks, labels or preprocessing".into());
    }
    Ok(())
}

/// What merging did.
pub struct MergeSummary {
    pub info: FitInfo,
    pub parts: usize,
}

/// Merges checked parts (in shard order, from [`open_parts`]) into the fit file at `out`: the same
/// file a single `fit` with the same options writes. Nothing is written on failure.
pub fn merge_parts(
    parts: &[Part],
    out: &Path,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(FitProgress),
) -> Result<MergeSummary, Error> {
    let device = Device::Cpu;
    fn fail(part: &Part) -> impl Fn(String) -> Error + '_ {
        move |e| Error::Invalid(format!("fit part {}: {e}", part.path.display()))
    }
    let Some(first) = parts.first() else {
        return Err(Error::Invalid("fit-merge: no parts".into()));
    };
    let mut accumulator = first.accumulator(device).map_err(fail(first))?;
    for part in &parts[1..] {
        let next = part.accumulator(device).map_err(fail(part))?;
        accumulator
            .merge(&next)
            .map_err(|e| fail(part)(crate::model::first_line(&e.to_string())))?;
    }
    if accumulator.images() == 0 {
        return Err(Error::Invalid(format!(
            "fit-merge: none of the {} images could be used ({} skipped)",
            first.info.used_files,
            parts.iter().map(|p| p.info.fit.skipped).sum::<usize>()
        )));
    }
    let moments = accumulator
        .finish()
        .map_err(|e| Error::Invalid(format!("fit-merge: {e}")))?;
    let head = first.head().map_err(fail(first))?;
    let mut info = first.info.fit.clone();
    info.skipped = parts.iter().map(|p| p.info.fit.skipped).sum();
    let features = PartFeatures(parts, "features");
    // OpenMax's rows, when every part kept them (parts of an older oodscope did not).
    let correct_logits = PartFeatures(parts, "correct_logits");
    let all_kept = parts.iter().all(|p| p.has("correct_logits"));
    // Each feature row's class (gmm's per-class covariances), in shard order, when the parts kept them.
    let mut row_classes = Vec::new();
    if info.class_covariances {
        for part in parts {
            let classes = part.row_classes().map_err(fail(part))?.unwrap_or_default();
            row_classes.extend(classes);
        }
    }
    let finish = Finish {
        device,
        feature_width: info.feature_width,
        head: head.as_ref(),
        store_head: false,
        features: &features,
        correct_logits: all_kept.then_some(&correct_logits as &dyn FeatureBlocks),
        row_classes: info.class_covariances.then_some(row_classes.as_slice()),
    };
    let start = std::time::Instant::now();
    let info = finish
        .write(out, info, &moments, cancel, &mut |done, total| {
            on_progress(FitProgress {
                stage: FitStage::Statistics,
                done,
                total,
                elapsed: start.elapsed(),
            });
        })
        .map_err(|e| match e {
            WriteError::Cancelled => Error::Cancelled,
            WriteError::Failed(m) => Error::Invalid(format!("fit-merge: writing {}: {m}", out.display())),
        })?;
    Ok(MergeSummary {
        info,
        parts: parts.len(),
    })
}
