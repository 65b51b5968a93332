//! Writing a detector file: a safetensors file (the fit file's streaming writer) whose header says
//! `format = oodscope-detector`, holding the manifest (JSON bytes), the fit's provenance and the fit
//! tensors the method reads, the sorted calibration scores, the card and, with `embed_model`, the
//! model's files. The header's digest covers every byte of them, the manifest included.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::manifest::{Decision, FORMAT, FORMAT_VERSION, FitRef, Manifest, ModelRef, Provenance, RULE, SetSummary};
use super::{Calibration, names};
use crate::Error;
use crate::detect::ScoreSettings;
use crate::model::{HeadSource, Model};
use crate::stats::Fit;
use crate::stats::fit_file::{Entry, Reader, Writer};

/// Everything a detector file is made from.
pub struct SaveRequest<'a> {
    /// The detector's name (a server's model name): letters, digits, `-`, `_` and `.`.
    pub name: String,
    pub model: &'a Model,
    pub settings: &'a ScoreSettings,
    /// The fit the method scores with (its file is where the kept tensors are copied from).
    pub fit: Option<&'a Fit>,
    pub calibration: &'a Calibration,
    /// Where the calibration images came from, and how many could not be used.
    pub calibration_set: String,
    pub calibration_skipped: usize,
    /// Put the model, its card and its head inside the detector (else: a path and a hash).
    pub embed_model: bool,
    /// `detector save`, `tune`, `compare` or `window`.
    pub made_by: String,
    pub sets: Vec<SetSummary>,
    pub metrics: Option<serde_json::Value>,
}

/// A name a server can answer to (the Open Inference Protocol's model name goes in a URL path).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "detector name `{name}`: use 1 to 128 letters, digits, `-`, `_` or `.` (it is a URL path segment)"
        ))
    }
}

/// The default name of a detector: the model's card name and the method, made URL-safe.
pub fn default_name(model: &Model, settings: &ScoreSettings) -> String {
    let raw = format!("{}-{}", model.card.name, settings.method.name());
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.trim_start_matches('.').chars().take(128).collect()
}

/// A file of the model, embedded under a tensor name.
struct Embedded {
    tensor: &'static str,
    path: PathBuf,
    len: usize,
}

/// Writes the detector file `out` (atomically: the file appears whole or not at all) and returns its
/// manifest.
pub fn save(request: &SaveRequest, out: &Path) -> Result<Manifest, Error> {
    let fail = |m: String| Error::Invalid(format!("detector {}: {m}", out.display()));
    check_name(&request.name).map_err(Error::Invalid)?;
    let model = request.model;
    let model_sha256 = crate::stats::info::model_hash(model).map_err(fail)?;
    let model_path = model.file().to_path_buf();
    let card_text = std::fs::read_to_string(&model.card.path)
        .map_err(|e| fail(format!("cannot read the card {}: {e}", model.card.path.display())))?;
    let head_file = match model.card.head() {
        Some(HeadSource::File(path)) => Some(path.clone()),
        _ => None,
    };
    let embedded = if request.embed_model {
        embedded_files(model, &model_path, head_file.as_deref()).map_err(fail)?
    } else {
        Vec::new()
    };
    let file_name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let card_dir = model.card.path.parent().unwrap_or(Path::new("."));
    let head_relative = head_file
        .as_deref()
        .map(|h| pathdiff::diff_paths(h, card_dir).unwrap_or_else(|| h.to_path_buf()));

    // The fit's tensors that the method reads, copied from its file.
    let fit_source = match request.fit {
        Some(fit) if request.settings.method.detector().needs().fit => {
            let reader =
                Reader::open(&fit.info.path).map_err(|m| fail(format!("the fit {}: {m}", fit.info.path.display())))?;
            reader.check_digest().map_err(|_| {
                fail(format!(
                    "the fit {} changed or is damaged since it was loaded",
                    fit.info.path.display()
                ))
            })?;
            let mut tensors: Vec<&str> = names::ALWAYS_KEPT.to_vec();
            tensors.extend(request.settings.method.detector().fit_tensors());
            tensors.retain(|t| reader.has(t));
            let tensors: Vec<String> = tensors.into_iter().map(String::from).collect();
            Some((fit, reader, tensors))
        }
        _ => None,
    };
    if request.settings.method.detector().needs().fit && fit_source.is_none() {
        return Err(fail(format!(
            "method `{}` needs a fit, and none was given",
            request.settings.method.name()
        )));
    }

    let relative_model = relative_to(&model_path, out).map_err(fail)?;
    let c = request.calibration;
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        name: request.name.clone(),
        method: request.settings.clone(),
        decision: Decision {
            threshold: c.threshold,
            rule: RULE.into(),
            chosen_by: if c.false_alarm.is_some() {
                "false-alarm"
            } else {
                "given"
            }
            .into(),
            false_alarm: c.false_alarm,
            calibration_images: c.scores.len(),
            calibration_set: request.calibration_set.clone(),
            calibration_skipped: request.calibration_skipped,
        },
        model: ModelRef {
            name: model.card.name.clone(),
            sha256: model_sha256,
            path: relative_model,
            embedded: request.embed_model,
            file_name: file_name(&model_path),
            card_file_name: file_name(&model.card.path),
            head_file: head_relative.map(|p| p.to_string_lossy().replace('\\', "/")),
            classes: model.card.classes.clone(),
            input: [model.card.channels, model.card.height, model.card.width],
            card: card_text.clone(),
        },
        fit: fit_source.as_ref().map(|(fit, _, tensors)| FitRef {
            tensors: tensors.clone(),
            images: fit.info.images,
            train_root: fit.info.train_root.clone(),
            from: fit.info.path.display().to_string(),
        }),
        provenance: Provenance {
            oodscope_version: env!("CARGO_PKG_VERSION").into(),
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            made_by: request.made_by.clone(),
            sets: request.sets.clone(),
            metrics: request.metrics.clone(),
        },
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| fail(e.to_string()))?;
    let fit_json = match &fit_source {
        Some((fit, ..)) => Some(serde_json::to_vec(&fit.info).map_err(|e| fail(e.to_string()))?),
        None => None,
    };

    let mut entries = vec![Entry::u8(names::MANIFEST, manifest_json.len())];
    if let Some(json) = &fit_json {
        entries.push(Entry::u8(names::FIT_INFO, json.len()));
    }
    if let Some((_, reader, tensors)) = &fit_source {
        for name in tensors {
            let (_, shape, dtype) = reader
                .location(name)
                .ok_or_else(|| fail(format!("the fit has no `{name}`")))?;
            entries.push(Entry {
                name: name.clone(),
                dtype,
                shape,
            });
        }
    }
    entries.push(Entry::f32(names::CALIBRATION, &[c.scores.len()]));
    entries.push(Entry::u8(names::CARD, card_text.len()));
    for e in &embedded {
        entries.push(Entry::u8(e.tensor, e.len));
    }
    let metadata: BTreeMap<String, String> = [
        ("format".to_string(), FORMAT.to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
    ]
    .into();
    let io = |e: std::io::Error| fail(format!("cannot write it: {e}"));
    let mut writer = Writer::create(out, entries, &metadata).map_err(io)?;
    writer.write_bytes(&manifest_json).map_err(io)?;
    if let Some(json) = &fit_json {
        writer.write_bytes(json).map_err(io)?;
    }
    if let Some((_, reader, tensors)) = &fit_source {
        for name in tensors {
            copy_tensor(reader, name, &mut writer).map_err(fail)?;
        }
    }
    writer.write_f32(&c.scores).map_err(io)?;
    writer.write_bytes(card_text.as_bytes()).map_err(io)?;
    for e in &embedded {
        let bytes = std::fs::read(&e.path).map_err(|err| fail(format!("cannot read {}: {err}", e.path.display())))?;
        if bytes.len() != e.len {
            return Err(fail(format!(
                "{} changed while the detector was written",
                e.path.display()
            )));
        }
        writer.write_bytes(&bytes).map_err(io)?;
    }
    writer.finish().map_err(io)?;
    Ok(manifest)
}

/// The files an embedded model is made of: the network, the card, the head file.
fn embedded_files(model: &Model, model_path: &Path, head: Option<&Path>) -> Result<Vec<Embedded>, String> {
    if model.card.is_ensemble() {
        return Err(
            "--embed-model takes a single network; a leave-out ensemble is saved by path (leave out --embed-model)"
                .into(),
        );
    }
    let mut files = vec![
        (names::MODEL_FILE, model_path.to_path_buf()),
        (names::MODEL_CARD, model.card.path.clone()),
    ];
    if let Some(head) = head {
        let card_dir = model.card.path.parent().unwrap_or(Path::new("."));
        let relative = pathdiff::diff_paths(head, card_dir).unwrap_or_else(|| head.to_path_buf());
        if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(format!(
                "--embed-model needs the head file {} in the card's folder or below it",
                head.display()
            ));
        }
        files.push((names::MODEL_HEAD, head.to_path_buf()));
    }
    files
        .into_iter()
        .map(|(tensor, path)| {
            let len = std::fs::metadata(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .len() as usize;
            if path.is_dir() {
                return Err(format!(
                    "{} is a folder: --embed-model takes a model in one file",
                    path.display()
                ));
            }
            Ok(Embedded { tensor, path, len })
        })
        .collect()
}

/// Copies a tensor's bytes from a fit file, in blocks (a KNN bank can be large).
fn copy_tensor(reader: &Reader, name: &str, writer: &mut Writer) -> Result<(), String> {
    let (offset, shape, dtype) = reader
        .location(name)
        .ok_or_else(|| format!("the fit has no `{name}`"))?;
    let total = shape.iter().product::<usize>() * dtype.size();
    let mut buffer = vec![0u8; (4 << 20).min(total.max(1))];
    let mut done = 0;
    while done < total {
        let len = (total - done).min(buffer.len());
        reader
            .read_at(&mut buffer[..len], offset + done as u64)
            .map_err(|e| format!("cannot read the fit's `{name}`: {e}"))?;
        writer
            .write_raw(dtype, &buffer[..len])
            .map_err(|e| format!("cannot write `{name}`: {e}"))?;
        done += len;
    }
    Ok(())
}

/// `target` relative to the folder of `file` (`/`-separated), both resolved first (links and `..`).
fn relative_to(target: &Path, file: &Path) -> Result<String, String> {
    let resolve = |p: &Path| {
        p.canonicalize()
            .map_err(|e| format!("cannot resolve {}: {e}", p.display()))
    };
    let target = resolve(target)?;
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => resolve(p)?,
        _ => resolve(Path::new("."))?,
    };
    let relative = pathdiff::diff_paths(&target, &dir).unwrap_or(target);
    Ok(relative.to_string_lossy().replace('\\', "/"))
}
