//! The worker thread's loop: runs each job with the model it owns and reports events; serves the
//! priority lane of dropped images before each job and between the batches of long ones.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};

use tch::{Device, Tensor};

use super::lane::Lane;
use super::{Event, Job, JobError, NotRun, Outcome, PixelSource, StoredComparison, TaskId, TaskProgress, Waker, Work};
use oodscope_data::noise::noise_image;
use oodscope_data::{ImageSet, Role, decode_file};
use oodscope_engine::Error;
use oodscope_engine::arrays::{check_fit_matches, head_of_fit};
use oodscope_engine::compare::{CompareProgress, Stage as CompareStage};
use oodscope_engine::detect::cache::{CachedOutputs, rescore};
use oodscope_engine::detect::plan::{Plan, dims_of, gradient_l1};
use oodscope_engine::detect::{Dims, Missing};
use oodscope_engine::fit::cache::bank_budget;
use oodscope_engine::model::Head;
use oodscope_engine::model::{Capabilities, Model, ModelCard, Network, device_name, set_model_threads};
use oodscope_engine::results::Load;
use oodscope_engine::results::stored::rescore_stored;
use oodscope_engine::score::classes::LogitLayout;
use oodscope_engine::score::{Method, ScoreSettings, run_scoring};
use oodscope_engine::stats::Fit;

/// What the UI shows about a loaded model (no tensors).
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub card: ModelCard,
    pub device: String,
    pub capabilities: Capabilities,
    pub dims: Dims,
    pub layout: LogitLayout,
    /// Each method's default detector name (`deploy::default_name`), for "Save detector…".
    pub detector_names: Vec<(Method, String)>,
}

impl ModelInfo {
    /// Number of ensemble members (0 for a single model).
    pub fn layout_members(&self) -> usize {
        match &self.layout {
            LogitLayout::Ensemble { members } => members.len(),
            LogitLayout::Single => 0,
        }
    }

    /// An ensemble's member logit widths (empty for one model).
    pub fn member_widths(&self) -> Vec<usize> {
        match &self.layout {
            LogitLayout::Ensemble { members } => members.iter().map(Vec::len).collect(),
            LogitLayout::Single => Vec::new(),
        }
    }

    /// The default name of a detector of `method` on this model.
    pub fn detector_name(&self, method: Method) -> String {
        self.detector_names
            .iter()
            .find(|(m, _)| *m == method)
            .map_or_else(|| method.name().to_string(), |(_, name)| name.clone())
    }

    /// Why `method` cannot run on this model (with a fit or not).
    pub fn missing(&self, method: Method, has_fit: bool) -> Option<Missing> {
        method.missing(&self.capabilities, has_fit)
    }
}

/// What the worker keeps between jobs: the model, the fit, and `‖∇ₓ L‖₁` per (images, step).
#[derive(Default)]
struct State {
    model: Option<Model>,
    fit: Option<Fit>,
    /// The head a fit opened beside a results file keeps (no model to take it from).
    head: Option<Head>,
    norms: HashMap<(u64, String), Vec<f32>>,
}

pub(super) fn run_worker(
    jobs: Receiver<Job>,
    mut lane: Lane,
    events: Sender<Event>,
    waker: Waker,
    pending: Arc<AtomicUsize>,
) {
    let mut state = State::default();
    let send = |event: Event| {
        let _ = events.send(event);
        waker();
    };
    for job in jobs {
        let shutdown = matches!(job, Job::Shutdown);
        if !shutdown {
            // Drops first: a drop is answered before any queued job starts.
            lane.serve(state.model.as_ref(), state.fit.as_ref(), false, &send);
            run_job(job, &mut state, &mut lane, &send);
        }
        // After the job's events are sent: a caller that sees no job pending has them all.
        pending.fetch_sub(1, Ordering::SeqCst);
        if shutdown {
            break;
        }
    }
}

/// Runs one job with the worker's state; a task ends in exactly one `Done`, `Failed` or
/// `Cancelled` event.
fn run_job(job: Job, state: &mut State, lane: &mut Lane, send: &dyn Fn(Event)) {
    match job {
        Job::Shutdown | Job::ServeDrops => {} // the lane is served at the top of the loop
        Job::DropFit => {
            state.fit = None;
            state.head = None;
            state.norms.clear();
        }
        Job::Task { id, cancel, work } => {
            let event = match run_task(id, &cancel, work, state, lane, send) {
                Ok(outcome) => Event::Done { task: id, outcome },
                Err(JobError::Engine(Error::Cancelled)) => Event::Cancelled { task: id },
                Err(cause) => Event::Failed { task: id, cause },
            };
            send(event);
        }
    }
}

/// A task's work: its outcome, or why there is none. Long jobs report progress and serve the
/// lane of dropped images between their batches.
fn run_task(
    task: TaskId,
    cancel: &AtomicBool,
    work: Work,
    state: &mut State,
    lane: &mut Lane,
    send: &dyn Fn(Event),
) -> Result<Outcome, JobError> {
    let progress = |progress: TaskProgress| send(Event::Progress { task, progress });
    match work {
        Work::LoadModel { path, device } => {
            let loaded = Model::load(&path, device).map_err(Error::from)?;
            set_model_threads(None, loaded.device);
            let info = model_info(&path, &loaded);
            *state = State {
                model: Some(loaded),
                ..State::default()
            };
            Ok(Outcome::ModelLoaded(Box::new(info)))
        }
        Work::OpenSet { spec, role, classes } => Ok(Outcome::SetOpened(
            ImageSet::open(&spec, role, &classes).map_err(Error::from)?,
        )),
        Work::Score {
            sets,
            settings,
            batch_size,
        } => {
            let m = state.model.as_ref().ok_or(JobError::NoModel)?;
            let fit = state.fit.as_ref();
            let plan = Plan::single(m, &settings, fit)?.keeping_features(true);
            let mut on_progress = |p| {
                progress(TaskProgress::Run(p));
                lane.serve(Some(m), fit, false, send);
            };
            let run = run_scoring(&plan, &sets, batch_size, cancel, &mut on_progress)?;
            Ok(Outcome::Scored {
                settings,
                run: Box::new(run),
            })
        }
        Work::Fit { train } => {
            let m = state.model.as_ref().ok_or(JobError::NoModel)?;
            state.fit = None;
            state.norms.clear();
            let mut on_progress = |p| {
                progress(TaskProgress::Fit(p));
                lane.serve(Some(m), None, true, send);
            };
            let fitted = fit_on(m, &train, cancel, &mut on_progress);
            let outcome = fitted.map(|fit| {
                let outcome = Outcome::Fitted {
                    info: Box::new(fit.info.clone()),
                    bank: fit.bank.as_ref().map(|b| b.len),
                    head: false,
                };
                state.fit = Some(fit);
                outcome
            });
            // The drops held for the fit: scored with it now (or told why not).
            lane.serve(state.model.as_ref(), state.fit.as_ref(), false, send);
            Ok(outcome?)
        }
        Work::Rescore { cache, settings } => {
            let scores = match &state.model {
                Some(m) => {
                    let plan = Plan::single(m, &settings, state.fit.as_ref())?;
                    rescore(&plan.context(), &cache, &settings).map_err(|e| Error::Invalid(e.0))?
                }
                // A results file's saved outputs, without the model.
                None => rescore_stored(&cache, &settings, state.fit.as_ref(), state.head.as_ref())
                    .map_err(Error::Invalid)?,
            };
            Ok(Outcome::Rescored { settings, scores })
        }
        Work::LoadFit { path, cache } => {
            if state.model.is_some() {
                return Err(Error::Invalid("with a model open, fit on a training folder instead".into()).into());
            }
            state.fit = None;
            state.head = None;
            let fit = Fit::load_unbound(&path, Device::Cpu, bank_budget()).map_err(Error::Invalid)?;
            check_fit_matches(&fit, &cache).map_err(Error::Invalid)?;
            let head = head_of_fit(&fit).map_err(Error::Invalid)?;
            let outcome = Outcome::Fitted {
                info: Box::new(fit.info.clone()),
                bank: fit.bank.as_ref().map(|b| b.len),
                head: head.is_some(),
            };
            state.fit = Some(fit);
            state.head = head;
            Ok(outcome)
        }
        Work::CompareStored(job) => compare_stored(*job, state, cancel, &progress),
        Work::TuneStored(job) => {
            let (fit, head) = (state.fit.as_ref(), state.head.as_ref());
            let score = |cache: &CachedOutputs, s: &ScoreSettings| rescore_stored(cache, s, fit, head);
            let mut on_progress = |p| progress(TaskProgress::Tune(p));
            let result = oodscope_engine::tune::tune_stored(
                &job.run,
                &job.cache,
                &job.sets,
                &job.options,
                &score,
                cancel,
                &mut on_progress,
            )?;
            Ok(Outcome::Tuned(Box::new(result)))
        }
        Work::OpenResults { path } => {
            let mut on_rows = |rows| {
                progress(TaskProgress::Rows(rows));
                if cancel.load(Ordering::Relaxed) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            };
            match oodscope_engine::results::open_watched(&path, Load::ALL, &mut on_rows) {
                Ok(results) => Ok(Outcome::ResultsOpened(Box::new(results))),
                Err(_) if cancel.load(Ordering::Relaxed) => Err(Error::Cancelled.into()),
                Err(why) => Err(Error::Invalid(why).into()),
            }
        }
        Work::Tune { sets, options } => {
            let m = state.model.as_ref().ok_or(JobError::NoModel)?;
            let fit = state.fit.as_ref();
            let mut on_progress = |p| {
                progress(TaskProgress::Tune(p));
                lane.serve(Some(m), fit, false, send);
            };
            let result = oodscope_engine::tune::tune(m, fit, &sets, &options, cancel, &mut on_progress)?;
            Ok(Outcome::Tuned(Box::new(result)))
        }
        Work::Compare {
            sets,
            settings,
            mut unsupported,
            batch_size,
        } => {
            let m = state.model.as_ref().ok_or(JobError::NoModel)?;
            let fit = state.fit.as_ref();
            // Methods whose statistics this fit lacks are listed as not run, not a failed comparison.
            let (settings, unserved) = oodscope_engine::compare::selection::split_served(settings, fit);
            unsupported.extend(unserved);
            let options = oodscope_engine::compare::CompareOptions {
                settings,
                tune: None,
                batch_size,
                keep_features: true,
            };
            let mut on_progress = |p| {
                progress(TaskProgress::Compare(p));
                lane.serve(Some(m), fit, false, send);
            };
            let result = oodscope_engine::compare::compare(m, fit, &sets, &options, cancel, &mut on_progress)?;
            Ok(Outcome::Compared {
                result: Box::new(result),
                not_run: unsupported.iter().map(NotRun::unsupported).collect(),
            })
        }
        Work::Estimate {
            images,
            sets,
            items,
            cache,
            settings,
        } => {
            let scores = estimate(state, images, &sets, &items, &cache, &settings)?;
            Ok(Outcome::Estimated { settings, scores })
        }
        Work::Perturbation { key, source, settings } => {
            let m = state.model.as_ref().ok_or(JobError::NoModel)?;
            let (values, shape) = perturbation_of(m, state.fit.as_ref(), &source, &settings).map_err(Error::Invalid)?;
            Ok(Outcome::Perturbation {
                key,
                settings,
                values,
                shape,
            })
        }
        Work::SaveDetector(job) => {
            let m = state.model.as_ref().ok_or(JobError::NoModel)?;
            let path = job.out.clone();
            let manifest = super::detector_jobs::save_detector(m, state.fit.as_ref(), *job)?;
            Ok(Outcome::DetectorSaved {
                path,
                manifest: Box::new(manifest),
            })
        }
        Work::OpenDetector { path, sets, batch_size } => {
            let (model, fit) = (state.model.as_ref(), state.fit.as_ref());
            let mut between_batches = || lane.serve(model, fit, false, send);
            let opened =
                super::detector_jobs::open_detector(path, sets, batch_size, cancel, &progress, &mut between_batches)?;
            Ok(Outcome::DetectorOpened(Box::new(opened)))
        }
    }
}

/// The most bytes of per-class covariances the window's fits keep (gmm needs them; a larger model's
/// fit for gmm is made with `oodscope fit --class-covariances` and opened as a file).
const WINDOW_COVARIANCE_BYTES: f64 = 512e6;

/// The fit of `model` on the folder `train` (cached, keyed by the model and the folder's listing).
fn fit_on(
    model: &Model,
    train: &std::path::Path,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(oodscope_engine::fit::FitProgress),
) -> Result<Fit, Error> {
    let set = ImageSet::open(&train.display().to_string(), Role::Id, &model.card.classes).map_err(Error::from)?;
    // Per-class covariances (gmm) are kept where they are small enough for a window to hold.
    let covariances = model
        .feature_width
        .map(|d| oodscope_engine::stats::gaussians::covariance_bytes(model.card.num_classes(), d));
    let options = oodscope_engine::fit::FitOptions {
        batch_size: 64,
        max_images: None,
        class_covariances: covariances.is_some_and(|bytes| bytes <= WINDOW_COVARIANCE_BYTES),
    };
    Ok(oodscope_engine::fit::cache::obtain(model, &set, &options, cancel, on_progress)?.fit)
}

/// The first-order estimate at `settings`: each image's clean score at ε = 0 (from the cache) moved
/// by the detector's `first_order` with `ε·‖∇ₓ L‖₁`; the norms are computed once per image list and
/// step.
fn estimate(
    state: &mut State,
    images: u64,
    sets: &[ImageSet],
    items: &[(usize, usize)],
    cache: &CachedOutputs,
    settings: &ScoreSettings,
) -> Result<Vec<f32>, JobError> {
    let model = state.model.as_ref().ok_or(JobError::NoModel)?;
    let detector = settings.method.detector();
    let clean_settings = settings.with("epsilon", 0.0);
    let key = (images, format!("{}:{}", settings.method, clean_settings.params));
    if !state.norms.contains_key(&key) {
        let norms = gradient_norms(model, state.fit.as_ref(), sets, items, settings).map_err(Error::Invalid)?;
        state.norms.insert(key.clone(), norms);
    }
    let norms = &state.norms[&key];
    let plan = Plan::single(model, &clean_settings, state.fit.as_ref())?;
    let clean = rescore(&plan.context(), cache, &clean_settings).map_err(|e| Error::Invalid(e.0))?;
    let eps = settings.epsilon();
    clean
        .iter()
        .zip(norms)
        .map(|(&s, &n)| {
            detector
                .first_order(s as f64, eps * n as f64)
                .map(|v| v as f32)
                .ok_or_else(|| {
                    JobError::from(Error::Invalid(format!(
                        "{} has no first-order estimate",
                        settings.method
                    )))
                })
        })
        .collect()
}

/// `‖∇ₓ L‖₁` of each item under `settings`' step, in batches of 64 (images that fail to decode get NaN).
fn gradient_norms(
    model: &Model,
    fit: Option<&Fit>,
    sets: &[ImageSet],
    items: &[(usize, usize)],
    settings: &ScoreSettings,
) -> Result<Vec<f32>, String> {
    let pre = model.card.preprocess();
    let [c, h, w] = model.card.input_shape();
    let mut norms = Vec::with_capacity(items.len());
    for chunk in items.chunks(64) {
        let pixels: Vec<f32> = chunk
            .iter()
            .flat_map(|&(set, index)| match &sets[set].source {
                oodscope_data::SetSource::Folder { files, .. } => {
                    decode_file(&files[index].path, &pre).unwrap_or_else(|_| vec![f32::NAN; pre.len()])
                }
                oodscope_data::SetSource::Noise { kind, first, .. } => noise_image(*kind, first + index, pre.len()),
            })
            .collect();
        let x = Tensor::from_slice(&pixels)
            .f_view([chunk.len() as i64, c, h, w])
            .and_then(|x| x.f_to_device(model.device))
            .map_err(|e| e.to_string())?;
        norms.extend(gradient_l1(model, &x, settings, fit).map_err(|e| e.to_string())?);
    }
    Ok(norms)
}

/// Decodes one image as the model sees it and computes its input step `x̃ − x` under `settings`
/// (zero where the method takes no step).
fn perturbation_of(
    model: &Model,
    fit: Option<&Fit>,
    source: &PixelSource,
    settings: &ScoreSettings,
) -> Result<(Vec<f32>, [usize; 3]), String> {
    let pre = model.card.preprocess();
    let pixels = match source {
        PixelSource::File(path) => decode_file(path, &pre).map_err(|e| e.0)?,
        PixelSource::Noise(kind, index) => noise_image(*kind, *index, pre.len()),
    };
    let [c, h, w] = model.card.input_shape();
    let x = Tensor::from_slice(&pixels)
        .f_view([1, c, h, w])
        .and_then(|x| x.f_to_device(model.device))
        .map_err(|e| e.to_string())?;
    let values = oodscope_engine::detect::plan::perturbation(model, &x, settings, fit).map_err(|e| e.to_string())?;
    Ok((values, [c as usize, h as usize, w as usize]))
}

fn model_info(path: &std::path::Path, model: &Model) -> ModelInfo {
    let layout = match &model.network {
        Network::Ensemble { members } => LogitLayout::Ensemble {
            members: members.iter().map(|m| m.classes.clone()).collect(),
        },
        Network::Single { .. } => LogitLayout::Single,
    };
    let dims = dims_of(model);
    let detector_names = Method::all()
        .map(|m| {
            let settings = ScoreSettings::default_for(m, &dims);
            (m, oodscope_engine::deploy::default_name(model, &settings))
        })
        .collect();
    ModelInfo {
        path: path.to_path_buf(),
        card: model.card.clone(),
        device: device_name(model.device),
        capabilities: model.capabilities(),
        dims,
        layout,
        detector_names,
    }
}

/// A results file's comparison without the model: each method from its stored column at the same
/// settings, else re-scored from the saved outputs (the fit and head open beside them); what
/// cannot run is listed with why. The file's own score columns follow the methods'.
fn compare_stored(
    job: StoredComparison,
    state: &State,
    cancel: &AtomicBool,
    progress: &dyn Fn(TaskProgress),
) -> Result<Outcome, JobError> {
    let StoredComparison {
        sets,
        mut run,
        cache,
        settings,
        mut not_run,
    } = job;
    let rows = run.images.len();
    let total = settings.len() * rows;
    let (mut methods, mut columns) = (Vec::new(), Vec::new());
    for (done, s) in settings.into_iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled.into());
        }
        progress(TaskProgress::Compare(CompareProgress {
            stage: CompareStage::Scoring,
            done: done * rows,
            total,
        }));
        let scores = match run.methods.iter().position(|m| *m == s) {
            Some(column) => Ok(run.columns[column].clone()),
            None => rescore_stored(&cache, &s, state.fit.as_ref(), state.head.as_ref()),
        };
        match scores {
            Ok(scores) => {
                methods.push(s);
                columns.push(scores);
            }
            Err(why) => not_run.push(NotRun { method: s.method, why }),
        }
    }
    let external = run.columns.split_off(run.methods.len());
    columns.extend(external);
    run.methods = methods;
    run.columns = columns;
    run.logits = cache.logits.clone();
    run.logit_width = cache.logit_width;
    run.features = cache.features.clone();
    run.feature_width = cache.feature_width;
    run.blocks = cache.blocks.clone();
    let result = oodscope_engine::compare::CompareResult {
        run,
        sets,
        tuning: None,
    };
    Ok(Outcome::Compared {
        result: Box::new(result),
        not_run,
    })
}
