//! A results file open in the window (`oodscope score --results`): its sets, records and stored
//! score columns (each a method shown from its column, with no model), and the logits / features
//! it saved, which re-score other parameters without the model.

use std::path::PathBuf;
use std::sync::Arc;

use oodscope_data::ImageSet;
use oodscope_engine::detect::Dims;
use oodscope_engine::detect::cache::CachedOutputs;
use oodscope_engine::results::stored::{Beside, stored_missing};
use oodscope_engine::results::{Metadata, Results};
use oodscope_engine::score::{Method, ScoreRun, ScoreSettings};

pub struct ResultsFile {
    pub path: PathBuf,
    pub meta: Box<Metadata>,
    pub sets: Vec<ImageSet>,
    /// The records and every stored column (the saved lists moved to `cache`).
    pub run: ScoreRun,
    /// The saved logits and features (empty when the file has none).
    pub cache: Arc<CachedOutputs>,
    /// How many of the image paths checked are not on this machine, of how many checked (`None`:
    /// noise sets only, nothing to check).
    pub missing_images: Option<(usize, usize)>,
}

impl ResultsFile {
    pub fn new(results: Results) -> ResultsFile {
        let Results {
            path,
            meta,
            sets,
            mut run,
        } = results;
        let cache = CachedOutputs {
            logits: std::mem::take(&mut run.logits),
            logit_width: run.logit_width,
            features: std::mem::take(&mut run.features),
            feature_width: run.feature_width,
            member_widths: Vec::new(),
            blocks: std::mem::take(&mut run.blocks),
            rows: run.images.len(),
        };
        ResultsFile {
            path,
            meta: Box::new(meta),
            sets,
            run,
            cache: Arc::new(cache),
            missing_images: None,
        }
    }

    /// Whether none of the file's image paths is on this machine (the file was made elsewhere):
    /// the gallery draws placeholders, and nothing else needs the images.
    pub fn has_no_images(&self) -> bool {
        self.missing_images
            .is_some_and(|(missing, checked)| missing > 0 && missing == checked)
    }

    /// The dimensions the sliders use: the model's classes and the saved feature width.
    pub fn dims(&self) -> Dims {
        let classes = if self.meta.model.classes.is_empty() {
            self.cache.logit_width
        } else {
            self.meta.model.classes.len()
        };
        Dims {
            classes,
            features: self.meta.features,
            bank: None,
        }
    }

    /// The stored column scored at exactly these settings.
    pub fn column_of(&self, settings: &ScoreSettings) -> Option<usize> {
        self.run.methods.iter().position(|m| m == settings)
    }

    /// The first stored column of `method`.
    pub fn column_of_method(&self, method: Method) -> Option<usize> {
        self.run.methods.iter().position(|m| m.method == method)
    }

    /// Why `settings` cannot be shown without the model (not stored, and not computable from the
    /// saved outputs), if it cannot.
    pub fn missing(&self, settings: &ScoreSettings, beside: Beside) -> Option<String> {
        if self.column_of(settings).is_some() {
            return None;
        }
        stored_missing(settings, &self.cache, beside)
    }

    /// Why `settings` cannot be re-scored from the saved outputs (stored columns aside), if it
    /// cannot.
    pub fn missing_beyond_columns(&self, settings: &ScoreSettings, beside: Beside) -> Option<String> {
        stored_missing(settings, &self.cache, beside)
    }

    /// Why `method` cannot be chosen without the model, if it cannot.
    pub fn method_missing(&self, method: Method, beside: Beside) -> Option<String> {
        if self.column_of_method(method).is_some() {
            return None;
        }
        let settings = ScoreSettings::default_for(method, &self.dims());
        self.missing(&settings, beside)
            .map(|why| format!("not in the file; {why}"))
    }

    /// The run of one column alone, as a scoring job returns it (no saved lists: they are in
    /// `cache`).
    pub fn run_of(&self, column: usize) -> ScoreRun {
        ScoreRun {
            images: self.run.images.clone(),
            methods: vec![self.run.methods[column].clone()],
            columns: vec![self.run.columns[column].clone()],
            skipped: self.run.skipped.clone(),
            ..ScoreRun::default()
        }
    }
}
