//! OpenMax (Bendale & Boult 2016), as pytorch-ood's `OpenMax`: each class's mean logit vector μ_c
//! over its correctly classified fit images, and a Weibull model (libMR's `FitHigh`,
//! `crate::stats::weibull`) of the `tailsize` largest distances of those images to μ_c. For a test
//! image the `alpha` largest logits are revised: `ℓ̂_c = ℓ_c·(1 − ω_c·r_c)`, with ω_c the Weibull CDF
//! at its distance to μ_c and r_c = (alpha + 1 − rank)/alpha, and an unknown class gets
//! `v_0 = Σ_c ℓ_c·ω_c·r_c`. The score is `−log softmax([v_0, ℓ̂])_0`, minus the log-probability of
//! the unknown class (pytorch-ood's outlier score is that probability itself: the same ranking,
//! without its rounding to 0, a tie, for confident images).

use tch::{Kind, Tensor};

use crate::detect::{Context, DetectError, DetectResult, Detector, Dims, Group, Needs, ParamSpec, Params};
use crate::model::Outputs;
use crate::stats::weibull::{EUCLID_WEIGHTS, TAIL_MAX, Weibull};

pub struct OpenMax;

/// The fit's class means and tails, or why it has none.
fn fitted<'a>(ctx: &Context<'a>) -> DetectResult<(&'a Tensor, &'a Tensor)> {
    let fit = ctx.fit()?;
    match (&fit.openmax_means, &fit.openmax_tails) {
        (Some(means), Some(tails)) => Ok((means, tails)),
        _ => Err(DetectError(format!(
            "the fit {} has no OpenMax tails: it was made (or merged from parts made) by an older oodscope; refit (`oodscope fit`, or give --train)",
            fit.info.path.display()
        ))),
    }
}

/// The index of `w` in [`EUCLID_WEIGHTS`].
fn weight_index(w: f64) -> Result<usize, String> {
    EUCLID_WEIGHTS.iter().position(|&v| (v - w).abs() < 1e-9).ok_or_else(|| {
        format!("OpenMax's euclid_weight is {w}: the fit keeps its tails at 0, 0.25, 0.5, 0.75 and 1 only; give one of those")
    })
}

/// Per class: the Weibull CDF's shift, shape and scale, and whether the class has a model (`[C]`
/// each, float64, on `device`).
fn weibulls(tails: &Tensor, weight: usize, tailsize: usize, device: tch::Device) -> DetectResult<[Tensor; 4]> {
    let rows = tails.f_select(0, weight as i64)?.f_narrow(1, 0, tailsize as i64)?;
    let values = crate::tensor::to_vec_f64(&rows)?;
    let mut columns: [Vec<f64>; 4] = Default::default();
    for tail in values.chunks_exact(tailsize) {
        let finite: Vec<f64> = tail.iter().copied().filter(|v| v.is_finite()).collect();
        let model = Weibull::fit(&finite);
        let (shift, shape, scale) = model.map_or((0.0, 1.0, 1.0), |w| (w.shift, w.shape, w.scale));
        for (column, v) in columns
            .iter_mut()
            .zip([shift, shape, scale, f64::from(model.is_some())])
        {
            column.push(v);
        }
    }
    let tensor = |v: &Vec<f64>| Tensor::from_slice(v).f_to_device(device);
    Ok([
        tensor(&columns[0])?,
        tensor(&columns[1])?,
        tensor(&columns[2])?,
        tensor(&columns[3])?,
    ])
}

impl Detector for OpenMax {
    fn name(&self) -> &'static str {
        "openmax"
    }
    fn title(&self) -> &'static str {
        "OpenMax"
    }
    fn group(&self) -> Group {
        Group::Fit
    }
    fn needs(&self) -> Needs {
        Needs {
            fit: true,
            ..Needs::default()
        }
    }

    fn fit_tensors(&self) -> &'static [&'static str] {
        &["openmax_means", "openmax_tails"]
    }

    fn params(&self, dims: &Dims) -> Vec<ParamSpec> {
        let classes = dims.classes.max(1) as f64;
        let alphas: Vec<f64> = [1.0, 3.0, 5.0, 10.0, 15.0, 20.0]
            .into_iter()
            .filter(|&a| a <= classes)
            .collect();
        vec![
            ParamSpec::integer("tailsize", "n", "Tail size", 25, [1, TAIL_MAX])
                .help("The Weibull model of each class is fitted to its this many largest distances")
                .grid(&[10.0, 20.0, 30.0, 40.0, 50.0]),
            ParamSpec::integer("alpha", "α", "Revised classes", 10, [1, 1_000_000])
                .help("The logits of this many top classes are revised (at most C)")
                .grid(&alphas),
            ParamSpec::real("euclid_weight", "w", "Euclidean weight", 1.0, [0.0, 1.0])
                .step(0.25)
                .help("The distance is w·Euclidean + (1 − w)·cosine distance")
                .grid(&EUCLID_WEIGHTS),
        ]
    }
    fn score(&self, outputs: &Outputs, ctx: &Context, params: &Params) -> DetectResult<Tensor> {
        self.check(ctx, params)?;
        let (means, tails) = fitted(ctx)?;
        let w = params.get("euclid_weight")?;
        let tailsize = params.count("tailsize")?;
        let logits = outputs.logits.f_to_kind(Kind::Double)?;
        let c = logits.size()[1];
        let alpha = (params.count("alpha")? as i64).min(c);
        let key = (weight_index(w)?, tailsize);
        let fit = ctx.fit()?;
        let mut cache = fit
            .openmax_weibulls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let [shift, shape, scale, has_model] = match cache.get(&key) {
            Some(models) => models.each_ref().map(Tensor::shallow_clone),
            None => {
                let models = weibulls(tails, key.0, tailsize, logits.device())?;
                cache.insert(key, models.each_ref().map(Tensor::shallow_clone));
                models
            }
        };
        drop(cache);
        // Distances to every class's mean (pytorch-ood computes the cosine term only where w < 1).
        // Compute mode 2: exact differences, not the matrix-product expansion (which loses a small
        // distance to cancellation).
        let euclid = Tensor::f_cdist(&logits, means, 2.0, Some(2i64))?;
        let distance = if w < 1.0 {
            let norms = logits.f_norm_scalaropt_dim(2.0, [1i64], true)?;
            let mean_norms = means.f_norm_scalaropt_dim(2.0, [1i64], true)?.f_transpose(0, 1)?;
            let cosine = logits
                .f_mm(&means.f_transpose(0, 1)?)?
                .f_div(&norms.f_mul(&mean_norms)?)?;
            let cosine_distance = cosine.f_neg()?.f_add_scalar(1.0)?;
            if w > 0.0 {
                euclid.f_mul_scalar(w)?.f_add(&cosine_distance.f_mul_scalar(1.0 - w)?)?
            } else {
                cosine_distance
            }
        } else {
            euclid
        };
        // ω_c: the Weibull CDF at the shifted distance; 1 for a class without a model.
        let cdf = distance
            .f_add(&shift)?
            .f_div(&scale)?
            .f_pow(&shape)?
            .f_neg()?
            .f_exp()?
            .f_neg()?
            .f_add_scalar(1.0)?;
        let omega = cdf.f_where_self(&has_model.f_gt(0.5)?, &cdf.f_ones_like()?)?;
        // r_c: (alpha + 1 − rank)/alpha for the alpha largest logits, 0 elsewhere.
        let (_, top) = logits.f_topk(alpha, 1, true, true)?;
        let weights: Vec<f64> = (1..=alpha).map(|i| (alpha + 1 - i) as f64 / alpha as f64).collect();
        let weights = Tensor::from_slice(&weights)
            .f_to_device(logits.device())?
            .f_unsqueeze(0)?
            .f_expand([logits.size()[0], alpha], false)?
            .f_contiguous()?;
        let ranked = logits.f_zeros_like()?.f_scatter(1, &top, &weights)?;
        let unknown_part = omega.f_mul(&ranked)?; // 1 − wscore
        let revised = logits.f_mul(&unknown_part.f_neg()?.f_add_scalar(1.0)?)?;
        let unknown = logits
            .f_mul(&unknown_part)?
            .f_sum_dim_intlist(&[1i64][..], true, Kind::Double)?;
        let all = Tensor::f_cat(&[&unknown, &revised], 1)?;
        Ok(all.f_logsumexp([1i64], false)?.f_sub(&unknown.f_squeeze_dim(1)?)?)
    }
    fn check(&self, ctx: &Context, params: &Params) -> Result<(), String> {
        fitted(ctx).map_err(|e| e.0)?;
        weight_index(params.get("euclid_weight")?)?;
        let tailsize = params.count("tailsize")?;
        if tailsize == 0 || tailsize > TAIL_MAX {
            return Err(format!(
                "OpenMax's tailsize is {tailsize}: the fit keeps at most {TAIL_MAX} distances per class; give 1 to {TAIL_MAX}"
            ));
        }
        if params.count("alpha")? == 0 {
            return Err("OpenMax's alpha must be at least 1".into());
        }
        Ok(())
    }
}
