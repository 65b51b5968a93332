//! The fit cache: `score --train DIR` fits on first use and keeps the file in the user's cache
//! directory (`$OODSCOPE_CACHE_DIR`, else the platform's, e.g. `~/.cache/oodscope`), keyed by the
//! model (file, card, head), the folder's listing and the fit options. A changed model or folder
//! gives another key, so it refits. A fit with per-class covariances (gmm) serves the requests
//! without them too.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use sha2::{Digest, Sha256};

use super::{Fit, FitOptions, FitProgress, FitSummary, fit_model};
use crate::Error;
use crate::model::Model;
use crate::stats::info::{listing_hash, model_hash};
use oodscope_data::ImageSet;

/// The folder that holds cached fits.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OODSCOPE_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .map(|d| d.join("oodscope"))
        .unwrap_or_else(|| PathBuf::from(".oodscope-cache"))
}

/// Banks larger than this stay on disk (`OODSCOPE_BANK_MEMORY_MB` sets it, in MiB).
pub fn bank_budget() -> usize {
    std::env::var("OODSCOPE_BANK_MEMORY_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(crate::stats::bank::DEFAULT_MEMORY_BUDGET, |mb| mb << 20)
}

/// Where the fit of `model` on `train` with `options` is cached.
pub fn cached_path(model: &Model, train: &ImageSet, options: &FitOptions) -> Result<PathBuf, String> {
    Ok(cached_path_for(
        &model.card.name,
        &model_hash(model)?,
        &listing_hash(train),
        options.max_images,
        options.class_covariances,
    ))
}

/// The statistics newer than the fit format's version, in the cache key: a fit cached before they
/// were added (which lacks them) is fitted again, not reused.
const LATER_STATISTICS: &str = "she_patterns,vra_quantiles,temperature,nnguide_energies,pnml_gram_pinv,openmax";

/// Where the fit of a model (by card name and [`model_hash`]) on a listing (by [`listing_hash`])
/// with `max_images` (and per-class covariances or not) is cached: `fit-merge` puts a merged fit
/// there from its parts' provenance.
pub fn cached_path_for(
    card_name: &str,
    model_hash: &str,
    listing_hash: &str,
    max_images: Option<usize>,
    class_covariances: bool,
) -> PathBuf {
    let mut hasher = Sha256::new();
    hasher.update(model_hash);
    hasher.update(listing_hash);
    hasher.update(format!("{:?}|{}", max_images, crate::stats::info::FORMAT_VERSION));
    hasher.update(LATER_STATISTICS);
    if class_covariances {
        // Only then: the keys of the fits without them stay as they were.
        hasher.update("|class_covariances");
    }
    let key = format!("{:x}", hasher.finalize());
    let name: String = card_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect();
    cache_dir()
        .join("fits")
        .join(format!("{name}-{}.safetensors", &key[..16]))
}

/// A fit ready to use, and how it was had.
pub struct Obtained {
    pub fit: Fit,
    /// The pass, when the fit was computed now (`None`: read from the cache).
    pub computed: Option<FitSummary>,
    /// Why the cache's file could not be used and was replaced (damaged, truncated), in one line.
    pub replaced: Option<String>,
}

/// The fit of `model` on `train`: from the cache when it holds one for exactly these inputs, else
/// computed now and cached.
pub fn obtain(
    model: &Model,
    train: &ImageSet,
    options: &FitOptions,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(FitProgress),
) -> Result<Obtained, Error> {
    let path = cached_path(model, train, options).map_err(Error::Invalid)?;
    if !options.class_covariances {
        // A cached fit with per-class covariances holds everything this one would.
        let fuller = FitOptions {
            class_covariances: true,
            ..*options
        };
        let other = cached_path(model, train, &fuller).map_err(Error::Invalid)?;
        if other.is_file()
            && let Ok(mut fit) = Fit::load(&other, model, bank_budget())
        {
            fit.info.cached = true;
            return Ok(Obtained {
                fit,
                computed: None,
                replaced: None,
            });
        }
    }
    let mut replaced = None;
    if path.is_file() {
        // The digest is checked here too: a cache file changed since it was written (a flipped
        // bit, a bad disk) is refitted, never used.
        match Fit::load(&path, model, bank_budget()) {
            Ok(mut fit) => {
                fit.info.cached = true;
                return Ok(Obtained {
                    fit,
                    computed: None,
                    replaced: None,
                });
            }
            // A damaged cache entry is replaced (by an atomic rename of the new file).
            Err(why) => replaced = Some(why),
        }
    }
    create_parent(&path)?;
    let summary = fit_model(model, train, options, &path, cancel, on_progress)?;
    let fit = Fit::load(&path, model, bank_budget()).map_err(Error::Invalid)?;
    Ok(Obtained {
        fit,
        computed: Some(summary),
        replaced,
    })
}

pub fn create_parent(path: &Path) -> Result<(), Error> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::Invalid(format!("cannot create {}: {e}", parent.display())))?;
    }
    Ok(())
}
