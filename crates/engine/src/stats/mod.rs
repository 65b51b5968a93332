//! A fit loaded back for the detectors: the statistics of ID training images on the model's device
//! (class means and the quadratic forms of Mahalanobis, ViM's space, ReAct's percentiles, VRA's
//! per-feature quantiles, SHE's patterns, the fitted temperature, KL templates, the KNN bank and
//! its images' energies, pNML's projector, gmm's per-class covariances, the per-block Mahalanobis
//! statistics), what the file says about itself (`info`), the file format
//! (`fit_file`), and its header checked against its tensors (`check`). `crate::fit` produces them;
//! the detectors read them from here.

pub mod bank;
pub mod best;
pub mod blocks;
pub mod check;
pub mod fit_file;
pub mod gaussians;
pub mod gram;
pub mod info;
pub mod percentile;
pub mod quadratic;
pub mod weibull;

use std::path::Path;
use std::sync::Arc;

use tch::Tensor;

pub use bank::Bank;
pub use info::{FitInfo, LabelSource};
pub use quadratic::Quadratic;

use crate::model::Model;

/// A fit's statistics that could not be read or used, in one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct StatsError(pub String);

impl From<tch::TchError> for StatsError {
    /// The cause only: libtorch's C++ frames are never shown.
    fn from(e: tch::TchError) -> Self {
        StatsError(crate::model::first_line(&e.to_string()))
    }
}

pub type StatsResult<T> = Result<T, StatsError>;

/// ReAct's threshold is stored for these percentiles of all fit feature entries: 0, 0.1, …, 100.
pub const REACT_LEVELS: usize = 1001;

/// The ReAct percentile levels.
pub fn react_levels() -> Vec<f64> {
    (0..REACT_LEVELS).map(|i| i as f64 / 10.0).collect()
}

/// VRA's per-feature quantiles are stored at these levels: 0, 0.01, …, 1.
pub const VRA_LEVELS: usize = 101;

/// The VRA quantile levels (fractions).
pub fn vra_levels() -> Vec<f64> {
    (0..VRA_LEVELS).map(|i| i as f64 / 100.0).collect()
}

/// ViM's space: the principal subspace's origin and every eigenvector, and α for every `dim`.
pub struct Vim {
    /// `u = −pinv(W)·b`, `[D]`.
    pub origin: Tensor,
    /// `[D, D]`, column j = the eigenvector of the j-th largest eigenvalue.
    pub eigenvectors: Tensor,
    pub eigenvalues: Vec<f64>,
    /// `α` for `dim = 0 … D−1`.
    pub alpha: Vec<f64>,
}

/// A fit, loaded onto the model's device (float64 tensors).
pub struct Fit {
    pub info: FitInfo,
    /// Classes with fit images (by label, or by prediction), in order.
    pub present: Vec<usize>,
    /// `[K, D]`: the mean feature of each present class.
    pub class_means: Option<Tensor>,
    /// Distances to the class means under the shared covariance's pseudo-inverse (Mahalanobis).
    pub mahalanobis: Option<Quadratic>,
    /// The distance to the mean of all fit features under their covariance's pseudo-inverse (the
    /// relative Mahalanobis baseline `d_0`).
    pub global: Option<Quadratic>,
    /// The mean of all fit features `[D]` (DICE's `z̄`).
    pub global_mean: Option<Tensor>,
    pub vim: Option<Vim>,
    /// ReAct's thresholds at [`react_levels`].
    pub react_percentiles: Option<Vec<f64>>,
    /// `[VRA_LEVELS, D]`: each feature's quantiles at [`vra_levels`] (VRA).
    pub vra_quantiles: Option<Tensor>,
    /// `[C, D]`: each class's mean feature over its correctly classified fit images (SHE; rows of
    /// classes without one are 0).
    pub she_patterns: Option<Tensor>,
    /// `[C, C]`: each class's mean logit vector over its correctly classified fit images (OpenMax;
    /// NaN rows where none), and `[W, C, TAIL_MAX]`: the largest distances to it at each of
    /// [`weibull::EUCLID_WEIGHTS`], largest first (NaN beyond a class's images).
    pub openmax_means: Option<Tensor>,
    pub openmax_tails: Option<Tensor>,
    /// `[D, D]`: `pinv(XᵀX)` of the normalised fit features X (a row per image), pNML's projector.
    pub pnml_gram_pinv: Option<Tensor>,
    /// One quadratic form per inner block (multi-mahalanobis): its class means (present classes)
    /// and its shared covariance's pseudo-inverse, when the model has blocks.
    pub blocks: Option<Vec<Quadratic>>,
    /// Gram's per-block bounds and held-out deviations, when the model has blocks.
    pub gram: Option<gram::GramStats>,
    /// `[K, D, D]`: each present class's covariance (gmm), when the fit was made with them.
    pub class_covariances: Option<Tensor>,
    /// gmm's Gaussians by ridge `reg` (its bits), factored once each.
    pub class_gaussians: std::sync::Mutex<std::collections::HashMap<u64, gaussians::ClassGaussians>>,
    /// Temperature scaling's T, fitted on the labelled fit images' logits.
    pub temperature: Option<f64>,
    /// `[K', C]`: the KL-matching templates of the classes some fit image was predicted as.
    pub klm_templates: Tensor,
    pub bank: Option<Bank>,
    /// `[N]`: each bank image's energy `logsumexp(W·z + b)` (NNGuide scales the bank by it), when
    /// the fit was made with a head.
    pub nnguide_energies: Option<Tensor>,
    /// DICE's masked weights `W ⊙ M` by percentile, made once per percentile (finding the
    /// percentile of `W ⊙ z̄` sorts C·D values: two million for an ImageNet ResNet-50).
    pub dice_weights: std::sync::Mutex<std::collections::HashMap<u64, Tensor>>,
    /// OpenMax's Weibull models `[shift, shape, scale, has a model]` (`[C]` each) by (Euclidean
    /// weight index, tailsize), fitted once each (C fits per setting).
    pub openmax_weibulls: std::sync::Mutex<std::collections::HashMap<(usize, usize), [Tensor; 4]>>,
    /// The head `(W [C, D], b [C])` in float64 (CPU), kept by fits made from arrays (a model's
    /// head is read from the model).
    pub head: Option<(Tensor, Tensor)>,
    /// The names of the tensors the file holds (a method whose `fit_tensors` are not all here cannot
    /// use this fit: one made without labels, or by an older oodscope).
    pub stored: std::collections::BTreeSet<String>,
}

impl Fit {
    /// What a method cannot use this fit for, if anything (a fit of a model without a head has no
    /// ViM space, …).
    pub fn lacks(&self, what: &str) -> String {
        format!(
            "the fit {} has no {what} (it was made from a model without {})",
            self.info.path.display(),
            if what.contains("ViM") { "a head" } else { "features" }
        )
    }

    /// Why a statistic that newer fits hold is missing here: the fit is older than it, or (a
    /// statistic of labelled images) was made without class folders, or from a model without
    /// features; what to do, in one line.
    pub fn lacks_newer(&self, what: &str, needs_labels: bool) -> String {
        let path = self.info.path.display();
        if needs_labels && self.info.labels == LabelSource::Predicted {
            return format!(
                "the fit {path} has no {what}: it was made without class folders (labels); fit on a labelled ImageFolder"
            );
        }
        if !needs_labels && self.info.feature_width.is_none() {
            return self.lacks(what);
        }
        format!(
            "the fit {path} has no {what}: it was made by an older oodscope; refit (`oodscope fit`, or give --train)"
        )
    }
}

impl Fit {
    /// Loads a fit file for `model`: it must have been made from this model (same file hash and
    /// card), its tensors must match their digest and its header must agree with them, else the
    /// message says which, in one line. Banks over `bank_budget` bytes stay on disk.
    pub fn load(path: &Path, model: &Model, bank_budget: usize) -> Result<Fit, String> {
        let fail = |m: String| format!("fit file {}: {m}", path.display());
        let reader = Arc::new(fit_file::Reader::open(path).map_err(fail)?);
        let info = FitInfo::from_metadata(path, &reader.metadata).map_err(fail)?;
        let current = info::model_hash(model).map_err(fail)?;
        if info.model_sha256 != current {
            return Err(fail(format!(
                "it was made for another model or card (model hash {} here, {} in the fit): refit with `oodscope fit` or give --train",
                short(&current),
                short(&info.model_sha256)
            )));
        }
        let (classes, width) = (model.card.classes.clone(), model.feature_width);
        Fit::read_digested(path, reader, info, (&classes, width), model.device, bank_budget)
    }

    /// The fit in `reader` (the file at `path`), its header `info` checked against its tensors and
    /// against `classes` and feature width, read onto `device`. The digest is checked on a thread of
    /// its own while the tensors load (each reads the data once; hashing a 200 MB bank takes about
    /// 0.2 s, as long as loading it): a damaged file is refused whatever else it says.
    fn read_digested(
        path: &Path,
        reader: Arc<fit_file::Reader>,
        info: FitInfo,
        (classes, feature_width): (&[String], Option<usize>),
        device: tch::Device,
        bank_budget: usize,
    ) -> Result<Fit, String> {
        let fail = |m: String| format!("fit file {}: {m}", path.display());
        let (digest, loaded) = std::thread::scope(|scope| {
            let digest = scope.spawn(|| reader.check_digest());
            let loaded = check::check(&info, &reader, classes, feature_width)
                .map_err(|m| fail(format!("{m}; refit")))
                .and_then(|()| Fit::read(&reader, info, device, bank_budget));
            (digest.join(), loaded)
        });
        match digest {
            Ok(Ok(_)) => loaded,
            Ok(Err(fit_file::DigestError::Mismatch)) => Err(format!(
                "fit file {} is damaged: its tensors do not match their digest; refit",
                path.display()
            )),
            Ok(Err(fit_file::DigestError::Missing)) => Err(fail(
                "its header has no digest of its tensors (`tensors_sha256`); refit".into(),
            )),
            Ok(Err(fit_file::DigestError::Io(e))) => Err(fail(format!("cannot read it: {e}"))),
            Err(_) => Err(fail("its digest could not be checked".into())),
        }
    }

    /// The fit inside another checked file (a saved detector: its loader checked the digest and the
    /// model): the header `info` checked against the tensors there, which are read onto the model's
    /// device. Tensors the file leaves out are absent from the fit (a detector keeps only its
    /// method's).
    pub fn from_checked(reader: Arc<fit_file::Reader>, info: FitInfo, model: &Model) -> Result<Fit, String> {
        check::check(&info, &reader, &model.card.classes, model.feature_width)
            .map_err(|m| format!("the fit in {}: {m}", info.path.display()))?;
        Fit::read(&reader, info, model.device, usize::MAX)
    }

    /// Loads a fit file with no model to check it against (the Python package's fits, made from
    /// arrays): its tensors must match their digest and its header must agree with them, against
    /// the classes and feature width the header itself gives. Callers check the outputs they score
    /// against [`FitInfo::classes`] and [`FitInfo::feature_width`].
    pub fn load_unbound(path: &Path, device: tch::Device, bank_budget: usize) -> Result<Fit, String> {
        let fail = |m: String| format!("fit file {}: {m}", path.display());
        let reader = Arc::new(fit_file::Reader::open(path).map_err(fail)?);
        let info = FitInfo::from_metadata(path, &reader.metadata).map_err(fail)?;
        let (classes, width) = (info.classes.clone(), info.feature_width);
        let mut fit = Fit::read_digested(path, reader.clone(), info, (&classes, width), device, bank_budget)?;
        fit.head = match (reader.has("head_weight"), reader.has("head_bias")) {
            (true, true) => Some((
                reader.tensor("head_weight").map_err(fail)?,
                reader.tensor("head_bias").map_err(fail)?,
            )),
            _ => None,
        };
        Ok(fit)
    }

    /// The tensors of a fit whose header was checked against them, onto the model's device.
    fn read(
        reader: &Arc<fit_file::Reader>,
        info: FitInfo,
        device: tch::Device,
        bank_budget: usize,
    ) -> Result<Fit, String> {
        let fail = |m: String| format!("fit file {}: {m}", info.path.display());
        let torch = |e: tch::TchError| fail(crate::model::first_line(&e.to_string()));
        let get = |name: &str| -> Result<Option<Tensor>, String> {
            if !reader.has(name) {
                return Ok(None);
            }
            let t = reader.tensor(name).map_err(fail)?;
            Ok(Some(t.f_to_device(device).map_err(torch)?))
        };
        let present: Vec<usize> = nonzero(&info.counts);
        let rows = |t: Option<Tensor>, which: &[usize]| -> Result<Option<Tensor>, String> {
            t.map(|t| {
                let index: Vec<i64> = which.iter().map(|&c| c as i64).collect();
                let index = Tensor::from_slice(&index).f_to_device(device)?;
                t.f_index_select(0, &index)
            })
            .transpose()
            .map_err(torch)
        };
        let predicted: Vec<usize> = nonzero(&info.predicted_counts);
        let klm_templates = rows(get("klm_templates")?, &predicted)?.ok_or_else(|| fail("no KL templates".into()))?;
        let vim = match (
            get("vim_u")?,
            get("vim_eigenvectors")?,
            get("vim_eigenvalues")?,
            get("vim_alpha")?,
        ) {
            (Some(origin), Some(eigenvectors), Some(values), Some(alpha)) => Some(Vim {
                origin,
                eigenvectors,
                eigenvalues: to_vec_f64_string(&values).map_err(fail)?,
                alpha: to_vec_f64_string(&alpha).map_err(fail)?,
            }),
            _ => None,
        };
        let react_percentiles = get("react_percentiles")?
            .map(|t| to_vec_f64_string(&t))
            .transpose()
            .map_err(fail)?;
        let bank = Bank::open(reader.clone(), "knn_bank", device, bank_budget).map_err(fail)?;
        let class_means = rows(get("class_means")?, &present)?;
        // Kept whole when every class has images (C·D² values: no copy of them).
        let class_covariances = match get(gaussians::CLASS_COVARIANCES)? {
            Some(all) if present.len() < info.counts.len() => rows(Some(all), &present)?,
            whole => whole,
        };
        let quadratic = |centres: &Option<Tensor>, precision: Option<Tensor>| -> Result<Option<Quadratic>, String> {
            match (centres, precision) {
                (Some(c), Some(p)) => Quadratic::new(c, &p).map(Some).map_err(torch),
                _ => Ok(None),
            }
        };
        let global_mean = get("global_mean")?;
        let temperature = get("temperature")?
            .map(|t| to_vec_f64_string(&t))
            .transpose()
            .map_err(fail)?
            .and_then(|t| t.first().copied());
        let global_centre = global_mean
            .as_ref()
            .map(|m| m.f_unsqueeze(0))
            .transpose()
            .map_err(torch)?;
        let blocks = match (get("block_class_means")?, get("block_shared_pinvs")?) {
            (Some(means), Some(pinvs)) => {
                let means = rows(Some(means), &present)?.ok_or_else(|| fail("no block class means".into()))?;
                Some(blocks::quadratics(&info.block_widths, &means, &pinvs).map_err(torch)?)
            }
            _ => None,
        };
        let gram = match (get("gram_mins")?, get("gram_maxs")?, get("gram_expected")?) {
            (Some(mins), Some(maxs), Some(expected)) => {
                Some(gram::split(&info.block_widths, info.counts.len(), &mins, &maxs, &expected).map_err(torch)?)
            }
            _ => None,
        };
        Ok(Fit {
            blocks,
            gram,
            mahalanobis: quadratic(&class_means, get("shared_pinv")?)?,
            global: quadratic(&global_centre, get("global_pinv")?)?,
            class_means,
            present,
            global_mean,
            vim,
            react_percentiles,
            vra_quantiles: get("vra_quantiles")?,
            she_patterns: get("she_patterns")?,
            pnml_gram_pinv: get("pnml_gram_pinv")?,
            openmax_means: get("openmax_means")?,
            openmax_tails: get("openmax_tails")?,
            class_covariances,
            class_gaussians: Default::default(),
            temperature,
            klm_templates,
            bank,
            nnguide_energies: get("nnguide_energies")?,
            dice_weights: Default::default(),
            openmax_weibulls: Default::default(),
            head: None,
            stored: reader.names(),
            info,
        })
    }
}

/// The indices of the non-zero counts.
fn nonzero(counts: &[u64]) -> Vec<usize> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(c, _)| c)
        .collect()
}

/// The first 12 hex digits of a hash, for messages.
pub fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

fn to_vec_f64_string(t: &Tensor) -> Result<Vec<f64>, String> {
    crate::tensor::to_vec_f64(t).map_err(|e| crate::model::first_line(&e.to_string()))
}
