//! Applying the commands the panels emitted while drawing, once per frame.

use std::path::{Path, PathBuf};

use super::shown::ShownResult;
use super::tasks::TaskKind;
use super::{Command, OodscopeApp, SetEntry, export};

impl OodscopeApp {
    /// Switching to a method the open results file stores: its stored parameters.
    fn adopt_stored_params(&mut self, method: oodscope_engine::score::Method) {
        if let Some(opened) = &self.opened
            && let Some(column) = opened.column_of_method(method)
        {
            let params = opened.run.methods[column].params.clone();
            self.settings.params.insert(method.name().to_string(), params);
        }
    }

    pub(super) fn apply(&mut self, command: Command, ctx: &egui::Context) {
        match command {
            Command::LoadModel(path) => self.load_model(path),
            Command::OpenResults(path) => self.open_results(path),
            Command::OpenFit(path) => self.open_fit(path),
            Command::AddSet { spec, role } => {
                // The same folder (however written) or the same noise spec is refused: it would
                // show twice in the metrics and once in the legend.
                let key = |s: &str| std::fs::canonicalize(s).unwrap_or_else(|_| PathBuf::from(s));
                if let Some(existing) = self.sets.iter().find(|e| key(&e.spec) == key(&spec)) {
                    self.messages.push(format!(
                        "{spec} is already an {} set: not added again",
                        existing.role.name().to_uppercase()
                    ));
                    return;
                }
                self.sets.push(SetEntry {
                    spec: spec.clone(),
                    role,
                    enabled: true,
                    set: None,
                });
                if let Some(classes) = self.model.as_ref().map(|m| m.card.classes.clone()) {
                    self.open_set(spec, role, classes);
                }
            }
            Command::RemoveSet(i) if i < self.sets.len() => {
                self.sets.remove(i);
                self.refresh();
            }
            Command::ToggleSet(i) if i < self.sets.len() => {
                self.sets[i].enabled = !self.sets[i].enabled;
                self.refresh();
            }
            Command::SetMethod(m) => {
                if self.result.as_mut().is_some_and(ShownResult::hide_external) {
                    self.rederive();
                }
                self.settings.method = m;
                self.adopt_stored_params(m);
                self.threshold = None;
                self.refresh();
            }
            Command::ShowExternal(name) => self.show_external(&name),
            Command::SetParam(name, value) => {
                self.settings.set_param(&name, value);
                self.refresh();
            }
            Command::SetThreshold(t) => self.threshold = Some(t),
            Command::ThresholdAt95Tpr => {
                self.threshold = self.derived.as_ref().and_then(|d| d.threshold_95).or(self.threshold);
            }
            Command::SetBins(b) => {
                self.settings.bins = b.clamp(5, 400);
                if let (Some(d), Some(r)) = (&mut self.derived, &self.result) {
                    d.rebin(&r.set_scores(), self.settings.bins);
                }
            }
            Command::SetTab(tab) => self.settings.tab = tab,
            Command::Rescore => {
                self.result = None;
                self.refresh();
            }
            Command::Cancel => self.tasks.cancel_where(TaskKind::is_cancellable),
            Command::CancelJobs(job) => self.tasks.cancel_where(|k| job.is(k) && k.is_cancellable()),
            Command::Tune => self.start_tuning(),
            Command::Compare => self.start_compare(),
            Command::SetParams(params) => {
                for (name, value) in params.iter() {
                    self.settings.set_param(name, value);
                }
                self.refresh();
            }
            Command::ScoreFiles(paths) => match self.current_settings() {
                Some(settings) => self.score_drop(paths, settings),
                _ => self.messages.push("load a model before dropping images"),
            },
            Command::AskFolderRole(path) => self.pending_folder = Some(path),
            Command::ResolveFolderAsTrain => {
                if let Some(path) = self.pending_folder.take() {
                    self.apply(Command::SetTrain(Some(path.display().to_string())), ctx);
                }
            }
            Command::SetTrain(train) => {
                self.settings.train = train;
                self.start_fit();
                self.refresh();
            }
            Command::ResolveFolder(role) => {
                if let (Some(path), Some(role)) = (self.pending_folder.take(), role) {
                    self.apply(
                        Command::AddSet {
                            spec: path.display().to_string(),
                            role,
                        },
                        ctx,
                    );
                }
            }
            Command::Export { kind, path } => {
                let path = path.unwrap_or_else(|| Path::new(&self.settings.export_dir).join(kind.default_name()));
                match export::export(self, kind, &path) {
                    Ok(()) => self.messages.done(format!("wrote {}", path.display())),
                    Err(e) => self.messages.push(format!("export failed: {e:#}")),
                }
            }
            Command::Select(i) => {
                self.selected = i;
                self.request_perturbation();
            }
            Command::DismissMessage => {
                self.messages.clear();
            }
            Command::Message(text) => self.messages.push(text),
            Command::SetLogY(on) => self.settings.log_y = on,
            Command::SetDensity(on) => self.settings.density = on,
            Command::SetExportDir(dir) => self.settings.export_dir = dir,
            Command::SaveDetector(form) => self.start_save_detector(form),
            Command::OpenDetector(path) => self.open_detector(path),
            Command::Watch(url) => self.start_watch(url),
            Command::StopWatch => self.stop_watch(),
            Command::RemoveSet(_) | Command::ToggleSet(_) => {}
        }
        ctx.request_repaint();
    }
}
