//! A fit file's header checked against its tensors and its model before anything is computed from
//! them: the classes, the counts (header and tensor), the image total, the feature width and every
//! tensor's type and shape agree, or one line says what differs. An edited header would otherwise
//! give NaN statistics, or an error deep inside libtorch.

use safetensors::tensor::Dtype;

use super::fit_file::Reader;
use super::gaussians::CLASS_COVARIANCES;
use super::info::FitInfo;
use super::weibull::{EUCLID_WEIGHTS, TAIL_MAX};
use super::{REACT_LEVELS, VRA_LEVELS};

/// The tensors that depend on the feature width `D` (every one but the KL templates and the
/// counts), with their type and shape for `n` images. Each is optional: a fit holds them all (the
/// head only when it was made from arrays), a saved detector only its method's.
fn feature_tensors(n: usize, c: usize, d: usize) -> [(&'static str, Dtype, Vec<usize>); 18] {
    [
        ("knn_bank", Dtype::F32, vec![n, d]),
        ("nnguide_energies", Dtype::F64, vec![n]),
        ("class_means", Dtype::F64, vec![c, d]),
        ("shared_cov", Dtype::F64, vec![d, d]),
        ("shared_pinv", Dtype::F64, vec![d, d]),
        ("global_mean", Dtype::F64, vec![d]),
        ("global_cov", Dtype::F64, vec![d, d]),
        ("global_pinv", Dtype::F64, vec![d, d]),
        ("vim_u", Dtype::F64, vec![d]),
        ("vim_eigenvectors", Dtype::F64, vec![d, d]),
        ("vim_eigenvalues", Dtype::F64, vec![d]),
        ("vim_alpha", Dtype::F64, vec![d]),
        ("react_percentiles", Dtype::F64, vec![REACT_LEVELS]),
        ("vra_quantiles", Dtype::F64, vec![VRA_LEVELS, d]),
        ("she_patterns", Dtype::F64, vec![c, d]),
        ("pnml_gram_pinv", Dtype::F64, vec![d, d]),
        ("head_weight", Dtype::F64, vec![c, d]),
        ("head_bias", Dtype::F64, vec![c]),
    ]
}

/// Checks `info` (the header) against the tensors of `reader` and the model's classes and feature
/// width; the reason in one line when they disagree (the caller names the file).
pub fn check(info: &FitInfo, reader: &Reader, classes: &[String], feature_width: Option<usize>) -> Result<(), String> {
    let c = classes.len();
    if info.classes != classes {
        return Err(match info.classes.iter().zip(classes).position(|(a, b)| a != b) {
            Some(i) => format!(
                "its header names class {i} `{}`, the model's card `{}`",
                info.classes[i], classes[i]
            ),
            None => format!("its header lists {} classes, the model's card {c}", info.classes.len()),
        });
    }
    for (name, counts) in [("counts", &info.counts), ("predicted_counts", &info.predicted_counts)] {
        if counts.len() != c {
            return Err(format!(
                "its header's `{name}` has {} entries for {c} classes",
                counts.len()
            ));
        }
        let sum: u128 = counts.iter().map(|&n| u128::from(n)).sum();
        if sum != u128::from(info.images) {
            return Err(format!(
                "its header's `{name}` sum to {sum}, but it says it holds {} images",
                info.images
            ));
        }
    }
    if info.images == 0 {
        return Err("its header says it holds no images".into());
    }
    expect(reader, "counts", Dtype::I64, &[c])?;
    let stored = reader
        .tensor("counts")
        .and_then(|t| Vec::<i64>::try_from(t).map_err(|e| crate::model::first_line(&e.to_string())))?;
    let header: Vec<i64> = info.counts.iter().map(|&n| n as i64).collect();
    if stored != header {
        return Err(format!(
            "its header's `counts` {header:?} differ from its `counts` tensor {stored:?}"
        ));
    }
    expect(reader, "klm_templates", Dtype::F64, &[c, c])?;
    if reader.has("openmax_means") || reader.has("openmax_tails") {
        expect(reader, "openmax_means", Dtype::F64, &[c, c])?;
        expect(
            reader,
            "openmax_tails",
            Dtype::F64,
            &[EUCLID_WEIGHTS.len(), c, TAIL_MAX],
        )?;
    }
    if reader.has("temperature") {
        expect(reader, "temperature", Dtype::F64, &[1])?;
    }
    check_blocks(info, reader, c)?;
    if info.feature_width != feature_width {
        return Err(format!(
            "its header says feature_width = {}, the model gives {}",
            width(info.feature_width),
            width(feature_width)
        ));
    }
    let n = usize::try_from(info.images).map_err(|_| format!("its header says {} images", info.images))?;
    match feature_width {
        Some(d) => {
            for (name, dtype, shape) in feature_tensors(n, c, d) {
                if reader.has(name) {
                    expect(reader, name, dtype, &shape)?;
                }
            }
            // gmm's per-class covariances (opt-in).
            if reader.has(CLASS_COVARIANCES) {
                expect(reader, CLASS_COVARIANCES, Dtype::F64, &[c, d, d])?;
            }
        }
        None => {
            let names = feature_tensors(0, c, 0).map(|(name, ..)| name);
            if let Some(name) = names
                .into_iter()
                .chain([CLASS_COVARIANCES])
                .find(|name| reader.has(name))
            {
                return Err(format!(
                    "it holds `{name}`, but its header says it has no features (feature_width = none)"
                ));
            }
        }
    }
    Ok(())
}

/// The per-block statistics against the header's `block_widths`: multi-mahalanobis's and Gram's,
/// each all or none (a saved detector of another method keeps none).
fn check_blocks(info: &FitInfo, reader: &Reader, c: usize) -> Result<(), String> {
    let [widths, means, pinvs] = super::blocks::BLOCK_TENSORS;
    let [_, mins, maxs, expected] = super::gram::GRAM_TENSORS;
    let held = |names: &[&str]| names.iter().filter(|n| reader.has(n)).count();
    let (mahalanobis, gram) = (held(&[means, pinvs]), held(&[mins, maxs, expected]));
    if !reader.has(widths) && mahalanobis + gram == 0 {
        return Ok(());
    }
    if !reader.has(widths) || info.block_widths.is_empty() || mahalanobis == 1 || (gram != 0 && gram != 3) {
        return Err(format!(
            "its per-block tensors are incomplete, or its header lists no blocks ({}; {})",
            super::blocks::BLOCK_TENSORS.join(", "),
            super::gram::GRAM_TENSORS.join(", ")
        ));
    }
    let shape = |name: &str| -> Result<Vec<usize>, String> {
        match reader.location(name) {
            Some((_, s, Dtype::F64)) => Ok(s),
            _ => Err(format!("its `{name}` tensor is not float64")),
        }
    };
    expect(reader, widths, Dtype::F64, &[info.block_widths.len()])?;
    let stored = reader
        .tensor(widths)
        .and_then(|t| Vec::<f64>::try_from(t).map_err(|e| crate::model::first_line(&e.to_string())))?;
    let header: Vec<f64> = info.block_widths.iter().map(|&w| w as f64).collect();
    if header != stored {
        return Err(format!(
            "its header's `block_widths` {:?} differ from its `block_widths` tensor {stored:?}",
            info.block_widths
        ));
    }
    if mahalanobis == 2 {
        super::blocks::check_shapes(&info.block_widths, &shape(means)?, &shape(pinvs)?, c)?;
    }
    if gram == 3 {
        super::gram::check_shapes(&info.block_widths, c, &shape(mins)?, &shape(maxs)?, &shape(expected)?)?;
    }
    Ok(())
}

/// Tensor `name` is there, of `dtype` and `shape`.
fn expect(reader: &Reader, name: &str, dtype: Dtype, shape: &[usize]) -> Result<(), String> {
    match reader.location(name) {
        None => Err(format!("it has no `{name}` tensor")),
        Some((_, s, t)) if s == shape && t == dtype => Ok(()),
        Some((_, s, t)) => Err(format!(
            "its `{name}` tensor is {t:?} {s:?}, its header implies {dtype:?} {shape:?}"
        )),
    }
}

fn width(d: Option<usize>) -> String {
    d.map_or("none".into(), |d| d.to_string())
}
