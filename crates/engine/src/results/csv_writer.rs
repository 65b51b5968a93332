//! The per-image scores CSV through the `csv` crate, streamed: `set,role,path,score,pred,pred_prob,label`
//! for one method, one score column per method (named after it) for several; `pred` and `label`
//! are class names. As a [`BatchSink`] it writes each batch's rows as the run goes, into a file
//! renamed into place when complete.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::detect::ScoreSettings;
use crate::detect::plan::BatchScores;
use crate::output::AtomicFile;
use crate::pipeline::stream::Item;
use crate::score::run::{BatchSink, ScoreRun};
use oodscope_data::ImageSet;

/// The header of a one-method run.
pub const HEADER: &str = "set,role,path,score,pred,pred_prob,label";

/// Rows of the scores CSV written to `W` as they come.
pub struct CsvWriter<W: Write> {
    writer: csv::Writer<W>,
    classes: Vec<String>,
    record: Vec<String>,
}

impl<W: Write> CsvWriter<W> {
    /// Writes the header for these methods.
    pub fn new(out: W, methods: &[ScoreSettings], classes: &[String]) -> Result<CsvWriter<W>, String> {
        Self::with_external(out, methods, &[], classes)
    }

    /// Writes the header for these methods and external score columns (`NAME (external)`, after
    /// the methods').
    pub fn with_external(
        out: W,
        methods: &[ScoreSettings],
        external: &[String],
        classes: &[String],
    ) -> Result<CsvWriter<W>, String> {
        let mut writer = csv::Writer::from_writer(out);
        let mut header: Vec<String> = ["set", "role", "path"].map(String::from).to_vec();
        if methods.len() == 1 && external.is_empty() {
            header.push("score".into());
        } else {
            header.extend(methods.iter().map(|m| m.method.name().to_string()));
            header.extend(external.iter().map(|e| format!("{e} (external)")));
        }
        header.extend(["pred", "pred_prob", "label"].map(String::from));
        writer.write_record(&header).map_err(|e| e.to_string())?;
        Ok(CsvWriter {
            writer,
            classes: classes.to_vec(),
            record: Vec::new(),
        })
    }

    /// One image's row.
    pub fn row(
        &mut self,
        set: &ImageSet,
        path: &str,
        scores: impl Iterator<Item = f32>,
        pred: usize,
        pred_prob: f32,
        label: Option<usize>,
    ) -> Result<(), String> {
        let class = |i: usize| self.classes.get(i).map(String::as_str).unwrap_or("?").to_string();
        self.record.clear();
        self.record
            .extend([set.name.clone(), set.role.name().to_string(), path.to_string()]);
        self.record.extend(scores.map(|s| s.to_string()));
        self.record.push(class(pred));
        self.record.push(pred_prob.to_string());
        self.record.push(label.map(class).unwrap_or_default());
        self.writer.write_record(&self.record).map_err(|e| e.to_string())
    }

    /// Every row of a finished run.
    pub fn rows_of_run(&mut self, run: &ScoreRun, sets: &[ImageSet]) -> Result<(), String> {
        for (i, s) in run.images.iter().enumerate() {
            let path = run.path_of(i, sets);
            self.row(
                &sets[s.set],
                &path,
                run.columns.iter().map(|c| c[i]),
                s.pred as usize,
                s.pred_prob,
                s.label.map(|l| l as usize),
            )?;
        }
        Ok(())
    }

    /// The output, flushed.
    pub fn into_inner(self) -> Result<W, String> {
        self.writer.into_inner().map_err(|e| e.error().to_string())
    }
}

impl<W: Write> BatchSink for CsvWriter<W> {
    fn batch(&mut self, sets: &[ImageSet], items: &[Item], scores: &BatchScores) -> Result<(), String> {
        for (k, item) in items.iter().enumerate() {
            let set = &sets[item.set];
            self.row(
                set,
                &set.item_name(item.index),
                scores.scores.iter().map(|c| c[k]),
                scores.pred[k].max(0) as usize,
                scores.pred_prob[k],
                set.label(item.index),
            )?;
        }
        Ok(())
    }
}

/// The scores CSV of a run as a file, written as the run goes and renamed into place at the end.
pub struct CsvFile {
    path: PathBuf,
    writer: CsvWriter<AtomicFile>,
}

impl CsvFile {
    pub fn create(path: &Path, methods: &[ScoreSettings], classes: &[String]) -> Result<CsvFile, String> {
        let file = AtomicFile::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(CsvFile {
            path: path.to_path_buf(),
            writer: CsvWriter::new(file, methods, classes)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        })
    }

    /// Renames the complete file into place.
    pub fn finish(self) -> Result<(), String> {
        let fail = |e: String| format!("cannot write {}: {e}", self.path.display());
        let file = self.writer.into_inner().map_err(fail)?;
        file.commit().map_err(|e| fail(e.to_string()))
    }
}

impl BatchSink for CsvFile {
    fn batch(&mut self, sets: &[ImageSet], items: &[Item], scores: &BatchScores) -> Result<(), String> {
        self.writer
            .batch(sets, items, scores)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

/// The CSV bytes of a finished run (the window's export).
pub fn run_csv(run: &ScoreRun, sets: &[ImageSet], classes: &[String]) -> Result<Vec<u8>, String> {
    let out = Vec::with_capacity(64 * (run.images.len() + 1));
    let mut writer = CsvWriter::with_external(out, &run.methods, &run.external, classes)?;
    writer.rows_of_run(run, sets)?;
    writer.into_inner()
}
