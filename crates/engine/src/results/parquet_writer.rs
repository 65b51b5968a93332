//! Writing a results file as a stream: rows arrive batch by batch and are encoded into row groups
//! of one set each (at most [`ROW_GROUP_ROWS`] rows or about [`ROW_GROUP_BYTES`]), so memory stays
//! bounded at any row count; the metadata goes into the footer at the end, and the file is renamed
//! into place only when complete.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, ListBuilder};
use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::schema::{KEY, Metadata, SkippedMeta, UnreadableMeta, arrow_schema};
use crate::detect::plan::BatchScores;
use crate::output::AtomicFile;
use crate::pipeline::stream::Item;
use crate::score::run::{BatchSink, ScoreRun};
use oodscope_data::{ImageSet, path_to_text};

/// Rows per row group at most (a row group is also closed at every change of set).
pub const ROW_GROUP_ROWS: usize = 1 << 17;
/// Encoded bytes per row group at most (with saved logits or features, rows are wide).
pub const ROW_GROUP_BYTES: usize = 64 << 20;

/// A Parquet table written row group by row group into a temporary file.
pub struct TableWriter {
    path: PathBuf,
    writer: ArrowWriter<AtomicFile>,
    current_set: Option<usize>,
}

impl TableWriter {
    /// Starts the file `path` (a temporary until [`TableWriter::finish`]).
    pub fn create(path: &Path, schema: SchemaRef) -> Result<TableWriter, String> {
        let file = AtomicFile::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
            .build();
        let writer = ArrowWriter::try_new(file, schema, Some(props))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(TableWriter {
            path: path.to_path_buf(),
            writer,
            current_set: None,
        })
    }

    /// Appends rows of set `set`; the first rows of another set start a new row group.
    pub fn write(&mut self, set: usize, batch: &RecordBatch) -> Result<(), String> {
        if self.current_set.is_some_and(|s| s != set) {
            self.writer.flush().map_err(|e| self.fail(e))?;
        }
        self.current_set = Some(set);
        self.writer.write(batch).map_err(|e| self.fail(e))
    }

    /// Writes the metadata into the footer and renames the file into place.
    pub fn finish(mut self, meta: &Metadata) -> Result<(), String> {
        self.writer
            .append_key_value_metadata(KeyValue::new(KEY.to_string(), meta.to_json()));
        let path = self.path.clone();
        let file = self
            .writer
            .into_inner()
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        file.commit()
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    fn fail(&self, e: impl std::fmt::Display) -> String {
        format!("cannot write {}: {e}", self.path.display())
    }
}

/// A scoring run's results file: a [`BatchSink`] that writes each batch's rows as it finishes.
pub struct ResultsWriter {
    table: TableWriter,
    meta: Metadata,
    schema: SchemaRef,
    /// Each set's next local index not yet seen, and the local indices that had no row (skipped).
    next: Vec<usize>,
    gaps: Vec<Vec<usize>>,
}

impl ResultsWriter {
    /// Starts the file for a run described by `meta` (its sets' blocks set; rows, skipped files
    /// and the lists' widths are filled in as the run goes). `meta.logits` / `meta.features`:
    /// `Some(_)` to save them.
    pub fn create(path: &Path, meta: Metadata) -> Result<ResultsWriter, String> {
        let schema = arrow_schema(&meta);
        let table = TableWriter::create(path, schema.clone())?;
        let sets = meta.sets.len();
        Ok(ResultsWriter {
            table,
            meta,
            schema,
            next: vec![0; sets],
            gaps: vec![Vec::new(); sets],
        })
    }

    /// Completes the metadata from the finished run (skipped files, unreadable entries, rows per
    /// set) and renames the file into place.
    pub fn finish(mut self, run: &ScoreRun, sets: &[ImageSet]) -> Result<(), String> {
        let path = self.table.path.clone();
        let mut skipped = Vec::new();
        for (s, set) in sets.iter().enumerate() {
            let mut gaps = std::mem::take(&mut self.gaps[s]);
            gaps.extend(self.next[s]..set.len());
            let reasons: Vec<_> = run.skipped.iter().filter(|k| k.set == s).collect();
            if reasons.len() != gaps.len() {
                return Err(format!(
                    "cannot write {}: set `{}` has {} images without a row but {} skipped files",
                    path.display(),
                    set.name,
                    gaps.len(),
                    reasons.len()
                ));
            }
            let start = self.meta.sets[s].start;
            self.meta.sets[s].rows = (set.len() - gaps.len()) as u64;
            skipped.extend(gaps.into_iter().zip(reasons).map(|(local, k)| SkippedMeta {
                set: set.name.clone(),
                index: start + local as u64,
                path: k.path.clone(),
                reason: k.reason.clone(),
            }));
            self.meta
                .unreadable
                .extend(set.unreadable.iter().map(|(p, r)| UnreadableMeta {
                    set: set.name.clone(),
                    path: path_to_text(p),
                    reason: r.clone(),
                }));
        }
        self.meta.skipped = skipped;
        self.table.finish(&self.meta)
    }

    /// The rows `range` of a batch, all of set `set`, as a record batch.
    fn rows(
        &mut self,
        sets: &[ImageSet],
        set: usize,
        items: &[Item],
        scores: &BatchScores,
        range: std::ops::Range<usize>,
    ) -> Result<RecordBatch, String> {
        let n = range.len();
        let s = &sets[set];
        let start = self.meta.sets[set].start;
        let items = &items[range.clone()];
        for item in items {
            if item.index < self.next[set] {
                return Err(format!("image #{} of set `{}` came twice", item.index, s.name));
            }
            self.gaps[set].extend(self.next[set]..item.index);
            self.next[set] = item.index + 1;
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(s.name.as_str(), n))),
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(s.role.name(), n))),
            Arc::new(StringArray::from_iter_values(
                items.iter().map(|i| s.item_name(i.index)),
            )),
            Arc::new(UInt64Array::from_iter_values(
                items.iter().map(|i| start + i.index as u64),
            )),
            Arc::new(Int64Array::from_iter(
                items.iter().map(|i| s.label(i.index).map(|l| l as i64)),
            )),
            Arc::new(Int64Array::from(scores.pred[range.clone()].to_vec())),
            Arc::new(Float32Array::from(scores.pred_prob[range.clone()].to_vec())),
        ];
        for column in &scores.scores {
            columns.push(Arc::new(Float32Array::from(column[range.clone()].to_vec())));
        }
        let path = self.table.path.clone();
        for (saved, values, width, what) in [
            (&mut self.meta.logits, &scores.logits, scores.logit_width, "logits"),
            (
                &mut self.meta.features,
                &scores.features,
                scores.feature_width,
                "features",
            ),
        ] {
            let Some(saved_width) = saved else { continue };
            if width == 0 || values.len() != width * scores.pred.len() {
                return Err(format!("cannot write {}: the run computed no {what}", path.display()));
            }
            if *saved_width == 0 {
                *saved_width = width;
            }
            if *saved_width != width {
                return Err(format!(
                    "cannot write {}: the run's {what} are {width} wide, not {saved_width}",
                    path.display()
                ));
            }
            let mut list = ListBuilder::new(Float32Builder::with_capacity(n * width));
            for k in range.clone() {
                list.values().append_slice(&values[k * width..(k + 1) * width]);
                list.append(true);
            }
            columns.push(Arc::new(list.finish()));
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

impl BatchSink for ResultsWriter {
    fn batch(&mut self, sets: &[ImageSet], items: &[Item], scores: &BatchScores) -> Result<(), String> {
        // A batch may span sets: one record batch per run of the same set.
        let mut a = 0;
        while a < items.len() {
            let set = items[a].set;
            let b = a + items[a..].iter().take_while(|i| i.set == set).count();
            let batch = self.rows(sets, set, items, scores, a..b)?;
            self.table.write(set, &batch)?;
            a = b;
        }
        Ok(())
    }
}
