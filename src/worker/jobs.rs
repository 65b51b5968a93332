//! The worker thread's loop: runs each job with the model it owns and reports events.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, Sender};

use tch::Tensor;

use super::{Event, Job, PixelSource, Waker};
use crate::data::noise::noise_image;
use crate::data::{ImageSet, Role};
use crate::data::{Preprocess, decode_file};
use crate::model::{CardKind, Model, ModelCard, Network, device_name, set_model_threads};
use crate::score::ScoreSettings;
use crate::score::methods::perturbation;
use crate::score::rescore::LogitLayout;
use crate::score::{Method, RunError, run_scoring};

/// What the UI shows about a loaded model (no tensors).
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub card: ModelCard,
    pub device: String,
    pub methods: Vec<Method>,
    pub layout: LogitLayout,
}

impl ModelInfo {
    /// Number of ensemble members (0 for a single model).
    pub fn layout_members(&self) -> usize {
        match &self.layout {
            LogitLayout::Ensemble { members } => members.len(),
            LogitLayout::Single => 0,
        }
    }
}

pub(super) fn run_worker(jobs: Receiver<Job>, events: Sender<Event>, waker: Waker) {
    let mut model: Option<Model> = None;
    let send = |event: Event| {
        let _ = events.send(event);
        waker();
    };
    for job in jobs {
        match job {
            Job::Shutdown => break,
            Job::LoadModel { path, device } => match Model::load(&path, device) {
                Ok(loaded) => {
                    set_model_threads(None, loaded.device);
                    send(Event::ModelLoaded(model_info(&path, &loaded)));
                    model = Some(loaded);
                }
                Err(e) => send(Event::Error(e.to_string())),
            },
            Job::OpenSet { spec, role, classes } => match ImageSet::open(&spec, role, &classes) {
                Ok(set) => send(Event::SetOpened { spec, set }),
                Err(e) => send(Event::Error(format!("{} set: {e}", role.name().to_uppercase()))),
            },
            Job::Score {
                generation,
                sets,
                settings,
                batch_size,
                cancel,
            } => {
                let Some(m) = &model else {
                    send(Event::Error("no model loaded".into()));
                    continue;
                };
                let mut on_progress = |progress| send(Event::Progress { generation, progress });
                match run_scoring(m, &sets, &settings, batch_size, &cancel, &mut on_progress) {
                    Ok(run) => send(Event::Scored {
                        generation,
                        settings,
                        run,
                    }),
                    Err(RunError::Cancelled) => send(Event::Cancelled { generation }),
                    Err(e) => send(Event::Error(e.to_string())),
                }
            }
            Job::Tune {
                generation,
                sets,
                options,
                cancel,
            } => {
                let Some(m) = &model else { continue };
                let mut on_progress = |progress| send(Event::TuneProgress { generation, progress });
                match crate::tune::tune(m, &sets, &options, &cancel, &mut on_progress) {
                    Ok(result) => send(Event::Tuned {
                        generation,
                        result: Box::new(result),
                    }),
                    Err(RunError::Cancelled) => send(Event::Cancelled { generation }),
                    Err(e) => send(Event::Error(format!("tuning: {e}"))),
                }
            }
            Job::GradientNorms {
                generation,
                sets,
                items,
                temperature,
            } => {
                let Some(m) = &model else { continue };
                match gradient_norms(m, &sets, &items, temperature) {
                    Ok(norms) => send(Event::GradientNorms {
                        generation,
                        temperature,
                        norms,
                    }),
                    Err(e) => send(Event::Error(format!("gradient norms: {e}"))),
                }
            }
            Job::Perturbation { key, source, settings } => {
                let Some(m) = &model else { continue };
                match perturbation_of(m, &source, &settings) {
                    Ok((values, shape)) => send(Event::Perturbation {
                        key,
                        settings,
                        values,
                        shape,
                    }),
                    Err(e) => send(Event::Error(format!("perturbation: {e}"))),
                }
            }
            Job::ScoreFiles {
                generation,
                paths,
                settings,
            } => {
                let Some(m) = &model else {
                    send(Event::Error("load a model before dropping images".into()));
                    continue;
                };
                let set = ImageSet::from_files("dropped", Role::Ood, &paths);
                let never = AtomicBool::new(false);
                match run_scoring(m, std::slice::from_ref(&set), &settings, 16, &never, &mut |_| {}) {
                    Ok(run) => send(Event::FilesScored {
                        generation,
                        set,
                        settings,
                        run,
                    }),
                    Err(e) => send(Event::Error(e.to_string())),
                }
            }
        }
    }
}

/// `‖∇ₓ L‖₁` of each item, in batches of 64 (images that fail to decode get NaN).
fn gradient_norms(model: &Model, sets: &[ImageSet], items: &[(usize, usize)], t: f64) -> Result<Vec<f32>, String> {
    let pre = Preprocess::for_card(&model.card);
    let [c, h, w] = model.card.input_shape();
    let mut norms = Vec::with_capacity(items.len());
    for chunk in items.chunks(64) {
        let pixels: Vec<f32> = chunk
            .iter()
            .flat_map(|&(set, index)| match &sets[set].source {
                crate::data::SetSource::Folder { files, .. } => {
                    decode_file(&files[index].path, &pre).unwrap_or_else(|_| vec![f32::NAN; pre.len()])
                }
                crate::data::SetSource::Noise { kind, .. } => noise_image(*kind, index, pre.len()),
            })
            .collect();
        let x = Tensor::from_slice(&pixels)
            .view([chunk.len() as i64, c, h, w])
            .to_device(model.device);
        norms.extend(crate::score::methods::odin_gradient_l1(model, &x, t).map_err(|e| e.to_string())?);
    }
    Ok(norms)
}

/// Decodes one image as the model sees it and computes its perturbation.
fn perturbation_of(
    model: &Model,
    source: &PixelSource,
    settings: &ScoreSettings,
) -> Result<(Vec<f32>, [usize; 3]), String> {
    let pre = Preprocess::for_card(&model.card);
    let pixels = match source {
        PixelSource::File(path) => decode_file(path, &pre).map_err(|e| e.0)?,
        PixelSource::Noise(kind, index) => noise_image(*kind, *index, pre.len()),
    };
    let [c, h, w] = model.card.input_shape();
    let x = Tensor::from_slice(&pixels).view([1, c, h, w]).to_device(model.device);
    let values = perturbation(model, &x, settings).map_err(|e| e.to_string())?;
    Ok((values, [c as usize, h as usize, w as usize]))
}

fn model_info(path: &std::path::Path, model: &Model) -> ModelInfo {
    let layout = match &model.network {
        Network::Ensemble { members } => LogitLayout::Ensemble {
            members: members.iter().map(|m| m.classes.clone()).collect(),
        },
        Network::Single { .. } => LogitLayout::Single,
    };
    debug_assert!(
        matches!(model.card.kind, CardKind::Ensemble { .. }) == matches!(layout, LogitLayout::Ensemble { .. })
    );
    ModelInfo {
        path: path.to_path_buf(),
        card: model.card.clone(),
        device: device_name(model.device),
        methods: Method::supported_by(&model.card),
        layout,
    }
}
