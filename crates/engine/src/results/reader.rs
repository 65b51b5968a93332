//! Reading results files: a part's footer and metadata checked (one line naming the file for a
//! truncated file, a file that is not Parquet, a missing column), its sets' rows found (from the
//! metadata, or from the `set` and `role` columns of a file another tool wrote), and
//! [`open_with`]: the sets, a [`ScoreRun`] (the file's own score columns after the methods') and
//! the metadata, reading only the columns needed.

use std::fs::File;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder, RowSelection,
};

use super::columns::{self, Text, is_numeric_list};
use super::layout::{ranges_in_order, rows_by_set, sets_from_columns};
use super::load::{Load, OnRows, RowsRead};
use super::schema::{
    FEATURES, INDEX, KEY, LABEL, LOGITS, Metadata, PATH, PRED, PRED_PROB, check_schema, external_columns,
};
use crate::pipeline::SkippedFile;
use crate::score::run::{ImageScore, ScoreRun};
use oodscope_data::scan::FileEntry;
use oodscope_data::{ImageSet, SetSource, path_from_text};

/// Rows per record batch when reading.
const READ_BATCH: usize = 65_536;
/// The most rows reserved ahead from a file's counts (more grow as they are read).
const RESERVE_ROWS: usize = 1 << 24;

/// An open results file: its checked metadata and where each set's rows are.
pub struct ResultsFile {
    pub path: PathBuf,
    pub meta: Metadata,
    /// The file's own score columns (not oodscope's methods), in file order.
    pub external: Vec<String>,
    /// Whether the sets were found from the `set` and `role` columns (a file without oodscope's
    /// metadata): their rows are numbered in file order, with no skipped images.
    pub derived_sets: bool,
    file: File,
    arrow: ArrowReaderMetadata,
    /// Each set's row groups and its rows' selection within them.
    set_rows: Vec<(Vec<usize>, RowSelection)>,
}

impl ResultsFile {
    /// Opens `path` and checks it is a whole results file: oodscope's, or another tool's with at
    /// least `set`, `role` and something to score.
    pub fn read(path: &Path) -> Result<ResultsFile, String> {
        let at = path.display().to_string();
        let file = File::open(path).map_err(|e| format!("{at}: cannot open: {e}"))?;
        let arrow = ArrowReaderMetadata::load(&file, Default::default())
            .map_err(|e| format!("{at}: not a readable Parquet file (truncated, or not Parquet): {e}"))?;
        let text = arrow
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|k| k.key == KEY))
            .and_then(|k| k.value.clone());
        let mut meta = match text {
            Some(text) => Metadata::from_json(&text).map_err(|e| format!("{at}: {e}"))?,
            None => Metadata::external(),
        };
        check_schema(arrow.schema(), &meta).map_err(|e| {
            if meta.is_external() {
                format!("{at}: a Parquet file, but not an oodscope results file: {e}")
            } else {
                format!("{at}: {e}")
            }
        })?;
        let external = external_columns(arrow.schema(), &meta);
        // Lists the metadata does not promise (another tool's file) are read when present.
        let has_list = |name: &str| {
            arrow
                .schema()
                .field_with_name(name)
                .is_ok_and(|f| is_numeric_list(f.data_type()))
        };
        if meta.logits.is_none() && has_list(LOGITS) {
            meta.logits = Some(0);
        }
        if meta.features.is_none() && has_list(FEATURES) {
            meta.features = Some(0);
        }
        if meta.methods.is_empty() && external.is_empty() && meta.logits.is_none() && meta.features.is_none() {
            return Err(format!(
                "{at}: nothing to score: give a `{LOGITS}` or `{FEATURES}` column (a list of numbers per row) or a column of scores"
            ));
        }
        let derived_sets = meta.sets.is_empty();
        let ranges = if derived_sets {
            let (sets, ranges) = sets_from_columns(&file, &arrow, &at)?;
            meta.sets = sets;
            if meta.is_external() && meta.logits.is_some() {
                // The MSP baseline is computed from the logits.
                meta.baseline = true;
            }
            ranges
        } else {
            ranges_in_order(&meta.sets)
        };
        // The counts are checked before any arithmetic on them: a damaged footer may say anything.
        let damaged = |what: String| format!("{at}: {what}: not a whole oodscope results file");
        let rows = meta
            .sets
            .iter()
            .try_fold(0u64, |sum, s| sum.checked_add(s.rows))
            .ok_or_else(|| damaged("its metadata's row counts overflow".into()))?;
        let file_rows = arrow.metadata().file_metadata().num_rows();
        if u64::try_from(file_rows) != Ok(rows) {
            return Err(damaged(format!("{file_rows} rows, but its metadata counts {rows}")));
        }
        let group_rows = arrow.metadata().row_groups().iter().try_fold(0u64, |sum, g| {
            u64::try_from(g.num_rows()).ok().and_then(|n| sum.checked_add(n))
        });
        if group_rows != Some(rows) {
            return Err(damaged(format!("its row groups do not add up to its {rows} rows")));
        }
        let set_rows = rows_by_set(&arrow, &ranges);
        Ok(ResultsFile {
            path: path.to_path_buf(),
            meta,
            external,
            derived_sets,
            file,
            arrow,
            set_rows,
        })
    }

    /// The columns (without the file's key-value metadata, which Arrow copies into its schema).
    pub fn schema(&self) -> SchemaRef {
        std::sync::Arc::new(arrow_schema::Schema::new(self.arrow.schema().fields().clone()))
    }

    /// Whether the file has a column of this name.
    pub fn has_column(&self, name: &str) -> bool {
        self.arrow.schema().field_with_name(name).is_ok()
    }

    pub fn num_rows(&self) -> u64 {
        self.arrow.metadata().file_metadata().num_rows() as u64
    }

    /// The rows of set `set` in order, batch by batch: the named columns (all with `None`).
    pub fn set_batches(&self, set: usize, columns: Option<&[&str]>) -> Result<ParquetRecordBatchReader, String> {
        let at = self.path.display();
        let file = self.file.try_clone().map_err(|e| format!("{at}: cannot read: {e}"))?;
        let (groups, selection) = &self.set_rows[set];
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.arrow.clone())
            .with_row_groups(groups.clone())
            .with_row_selection(selection.clone())
            .with_batch_size(READ_BATCH);
        if let Some(names) = columns {
            let schema = self.arrow.schema();
            let roots = names
                .iter()
                .map(|n| schema.index_of(n).map_err(|_| format!("{at}: it has no `{n}` column")))
                .collect::<Result<Vec<_>, _>>()?;
            let mask = ProjectionMask::roots(self.arrow.parquet_schema(), roots);
            builder = builder.with_projection(mask);
        }
        builder.build().map_err(|e| format!("{at}: cannot read: {e}"))
    }
}

/// A results file as the window and the reports use it.
#[derive(Debug, Clone)]
pub struct Results {
    pub path: PathBuf,
    pub meta: Metadata,
    /// The sets, built from the stored paths (each over its covered block: `index` 0 is the
    /// block's first image); the skipped files keep their places.
    pub sets: Vec<ImageSet>,
    /// The records (their `path` empty: the set listings hold the paths), one column per method
    /// and then one per external score column (`run.external`), and the saved logits and features
    /// when loaded.
    pub run: ScoreRun,
}

/// Opens a results file with everything it saved (see [`open_with`]).
pub fn open(path: &Path) -> Result<Results, String> {
    open_with(path, Load::ALL)
}

/// Opens a results file, reading only the columns needed: those of `index`, `label`, `pred`,
/// `pred_prob` the file has, the score columns (oodscope's methods, then the file's own), `path`
/// for folder sets, and the saved lists `load` asks for. A file without `pred` / `pred_prob` gets
/// them from its logits (the arg-max and its softmax probability), as the MSP baseline.
pub fn open_with(path: &Path, load: Load) -> Result<Results, String> {
    open_watched(path, load, &mut |_| ControlFlow::Continue(()))
}

/// [`open_with`], telling `on_rows` how far it is after every batch of rows; a `Break` stops the
/// reading (an error saying so).
pub fn open_watched(path: &Path, load: Load, on_rows: OnRows) -> Result<Results, String> {
    let part = ResultsFile::read(path)?;
    let mut read = RowsRead {
        done: 0,
        total: part.num_rows(),
    };
    let at = path.display().to_string();
    let mut meta = part.meta.clone();
    let methods = meta
        .methods
        .iter()
        .map(|m| {
            m.settings()
                .ok_or_else(|| format!("{at}: method `{}` is not one this oodscope has", m.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let has = |name: &str| part.has_column(name);
    let from_logits = !has(PRED_PROB) && meta.logits.is_some();
    let logits = meta.logits.filter(|_| load.logits || from_logits);
    let features = meta.features.filter(|_| load.features);
    let score_names: Vec<&str> = meta
        .methods
        .iter()
        .map(|m| m.name.as_str())
        .chain(part.external.iter().map(String::as_str))
        .collect();
    // Reserved from the file's own counts, at most RESERVE_ROWS: a footer claiming 10¹⁵ rows is
    // found out by reading, not by an allocation that aborts.
    let total = (part.num_rows() as usize).min(RESERVE_ROWS);
    let mut run = ScoreRun {
        images: Vec::with_capacity(total),
        columns: vec![Vec::with_capacity(total); score_names.len()],
        methods,
        external: part.external.clone(),
        logit_width: logits.unwrap_or(0),
        feature_width: features.unwrap_or(0),
        ..ScoreRun::default()
    };
    let mut sets = Vec::with_capacity(meta.sets.len());
    for (s, set) in meta.sets.iter_mut().enumerate() {
        let noise = set.noise();
        let mut columns: Vec<&str> = [INDEX, LABEL, PRED, PRED_PROB]
            .into_iter()
            .filter(|&c| has(c) && !(c == INDEX && part.derived_sets))
            .collect();
        if noise.is_none() && has(PATH) {
            columns.push(PATH);
        }
        columns.extend(score_names.iter().copied());
        if logits.is_some() {
            columns.push(LOGITS);
        }
        if features.is_some() {
            columns.push(FEATURES);
        }
        let mut skipped = meta_skipped(&part.meta, &set.name).peekable();
        let reserve = if noise.is_none() {
            set.block_len().min(RESERVE_ROWS as u64)
        } else {
            0
        };
        let mut files: Vec<FileEntry> = Vec::with_capacity(reserve as usize);
        let mut next = set.start;
        let mut labelled = false;
        // Places `*next..until` of the block have no row: each must be a listed skipped file, whose
        // listing entry (folders only) keeps its place.
        let mut skip_to = |next: &mut u64, until: u64, files: &mut Vec<FileEntry>| -> Result<(), String> {
            while *next < until {
                let Some(skip) = skipped.next_if(|k| k.index == *next) else {
                    return Err(format!(
                        "{at}: set `{}` has no row for image #{next}, and does not list it as skipped",
                        set.name
                    ));
                };
                if noise.is_none() {
                    files.push(FileEntry {
                        path: path_from_text(&skip.path),
                        label: None,
                    });
                }
                *next += 1;
            }
            Ok(())
        };
        for batch in part.set_batches(s, Some(&columns))? {
            let batch = batch.map_err(|e| format!("{at}: cannot read (truncated or corrupt?): {e}"))?;
            let mut cols = Columns::of(&batch, &score_names, logits, features).map_err(|e| format!("{at}: {e}"))?;
            let n = batch.num_rows();
            let (lw, fw) = (cols.logits.as_ref().map(|l| l.1), cols.features.as_ref().map(|f| f.1));
            for (width, saved) in [(lw, &mut run.logit_width), (fw, &mut run.feature_width)] {
                if let Some(w) = width {
                    if *saved == 0 {
                        *saved = w;
                    } else if *saved != w && n > 0 {
                        return Err(format!(
                            "{at}: its lists are {w} wide in one place and {saved} in another: every row needs the same number"
                        ));
                    }
                }
            }
            for k in 0..n {
                let index = match &cols.index {
                    Some(index) => index[k].and_then(|i| u64::try_from(i).ok()).ok_or_else(|| {
                        format!(
                            "{at}: its `{INDEX}` column is empty or negative at a row of set `{}`",
                            set.name
                        )
                    })?,
                    None => next,
                };
                if index < next || index >= set.end {
                    return Err(format!(
                        "{at}: set `{}` has image #{index} twice or out of its block",
                        set.name
                    ));
                }
                skip_to(&mut next, index, &mut files)?;
                next = index + 1;
                let label = cols
                    .label
                    .as_ref()
                    .and_then(|l| l[k])
                    .filter(|&l| l >= 0)
                    .map(|l| l.min(i64::from(u32::MAX)) as u32);
                labelled |= label.is_some();
                let name = match &cols.path {
                    Some(paths) => path_from_text(paths.value(k)),
                    None => PathBuf::from(format!("{}#{index}", set.name)),
                };
                if noise.is_none() {
                    files.push(FileEntry {
                        path: name,
                        label: label.map(|l| l as usize),
                    });
                }
                let msp = cols
                    .logits
                    .as_ref()
                    .filter(|_| from_logits)
                    .map(|(v, w)| top_softmax(&v[k * w..(k + 1) * w]));
                let pred = match (&cols.pred, msp) {
                    (Some(pred), _) => pred[k].unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
                    (None, Some((top, _))) => top as u32,
                    (None, None) => 0,
                };
                let pred_prob = match (&cols.pred_prob, msp) {
                    (Some(p), _) => p[k],
                    (None, Some((_, p))) => p,
                    (None, None) => 0.0,
                };
                run.images.push(ImageScore {
                    set: s,
                    index: (index - set.start) as usize,
                    path: Box::default(),
                    baseline: meta_baseline(part.meta.baseline, msp.map(|m| m.1), pred_prob),
                    pred,
                    pred_prob,
                    label,
                });
            }
            for (column, values) in run.columns.iter_mut().zip(&mut cols.scores) {
                column.append(values);
            }
            read.done += n as u64;
            if on_rows(read).is_break() {
                return Err(format!("{at}: reading stopped"));
            }
            if let Some((values, _)) = cols.logits.take().filter(|_| load.logits) {
                run.logits.extend_from_slice(&values);
            }
            if let Some((values, _)) = cols.features.take() {
                run.features.extend_from_slice(&values);
            }
        }
        skip_to(&mut next, set.end, &mut files)?;
        if part.derived_sets {
            set.labelled = labelled;
        }
        let source = match noise {
            Some(kind) => SetSource::Noise {
                kind,
                count: set.block_len() as usize,
                first: set.start as usize,
            },
            None => SetSource::Folder {
                root: path_from_text(&set.source),
                files,
            },
        };
        sets.push(ImageSet {
            name: set.name.clone(),
            role: set.role(),
            source,
            unreadable: part
                .meta
                .unreadable
                .iter()
                .filter(|u| u.set == set.name)
                .map(|u| (path_from_text(&u.path), u.reason.clone()))
                .collect(),
            labelled: set.labelled,
        });
    }
    if !load.logits {
        run.logit_width = 0;
    }
    if let Some(w) = meta.logits.as_mut().filter(|w| **w == 0) {
        *w = run.logit_width;
    }
    if let Some(w) = meta.features.as_mut().filter(|w| **w == 0) {
        *w = run.feature_width;
    }
    if meta.model.classes.is_empty() && run.logit_width > 0 {
        meta.model.classes = (0..run.logit_width).map(|c| c.to_string()).collect();
    }
    run.skipped = meta
        .skipped
        .iter()
        .filter_map(|k| {
            Some(SkippedFile {
                set: meta.sets.iter().position(|s| s.name == k.set)?,
                path: k.path.clone(),
                reason: k.reason.clone(),
            })
        })
        .collect();
    Ok(Results {
        path: path.to_path_buf(),
        meta,
        sets,
        run,
    })
}

/// The skipped files of one set.
fn meta_skipped<'a>(meta: &'a Metadata, set: &'a str) -> impl Iterator<Item = &'a super::schema::SkippedMeta> + 'a {
    meta.skipped.iter().filter(move |k| k.set == set)
}

/// An image's MSP baseline: computed from its logits where the file has no `pred_prob`, else
/// `pred_prob` when the file says it is the baseline.
fn meta_baseline(baseline: bool, from_logits: Option<f32>, pred_prob: f32) -> Option<f32> {
    from_logits.or(baseline.then_some(pred_prob))
}

/// The arg-max of some logits and its softmax probability (computed in f64, as a stable softmax).
pub fn top_softmax(logits: &[f32]) -> (usize, f32) {
    let (top, max) = logits.iter().enumerate().fold(
        (0, f32::NEG_INFINITY),
        |best, (i, &v)| if v > best.1 { (i, v) } else { best },
    );
    let sum: f64 = logits.iter().map(|&v| (f64::from(v) - f64::from(max)).exp()).sum();
    (top, (1.0 / sum) as f32)
}

/// The columns of one record batch as plain values (the ones the file lacks: `None`).
struct Columns<'a> {
    index: Option<Vec<Option<i64>>>,
    label: Option<Vec<Option<i64>>>,
    pred: Option<Vec<Option<i64>>>,
    pred_prob: Option<Vec<f32>>,
    path: Option<Text<'a>>,
    scores: Vec<Vec<f32>>,
    logits: Option<(Vec<f32>, usize)>,
    features: Option<(Vec<f32>, usize)>,
}

impl<'a> Columns<'a> {
    fn of(
        batch: &'a RecordBatch,
        scores: &[&str],
        logits: Option<usize>,
        features: Option<usize>,
    ) -> Result<Columns<'a>, String> {
        let whole = |name: &str| {
            batch
                .column_by_name(name)
                .map(|c| columns::whole_numbers(c.as_ref(), name))
                .transpose()
        };
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| format!("it has no `{name}` column"))
        };
        let list = |name: &str, width: Option<usize>| -> Result<Option<(Vec<f32>, usize)>, String> {
            width
                .map(|w| columns::list_values(column(name)?, name, Some(w)))
                .transpose()
        };
        Ok(Columns {
            index: whole(INDEX)?,
            label: whole(LABEL)?,
            pred: whole(PRED)?,
            pred_prob: batch
                .column_by_name(PRED_PROB)
                .map(|c| columns::scores(c.as_ref(), PRED_PROB))
                .transpose()?,
            path: batch
                .column_by_name(PATH)
                .map(|c| Text::of(c.as_ref(), PATH))
                .transpose()?,
            scores: scores
                .iter()
                .map(|name| columns::scores(column(name)?.as_ref(), name))
                .collect::<Result<Vec<_>, _>>()?,
            logits: list(LOGITS, logits)?,
            features: list(FEATURES, features)?,
        })
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;
    use crate::detect::plan::BatchScores;
    use crate::pipeline::stream::Item;
    use crate::results::ResultsWriter;
    use crate::results::schema::SetMeta;
    use crate::results::schema::tests::sample;
    use crate::score::run::BatchSink;
    use oodscope_data::Role;

    fn path(bytes: &[u8]) -> PathBuf {
        PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
    }

    #[test]
    fn paths_that_are_not_utf8_come_back_exactly() {
        let files: Vec<FileEntry> = [
            &b"d\xe9j\xe0/a.png"[..],
            b"ok/b.png",
            b"lit\\x41.png",
            b"bad\xff\xfe.png",
        ]
        .iter()
        .map(|b| FileEntry {
            path: path(b),
            label: None,
        })
        .collect();
        let set = ImageSet {
            name: "id".into(),
            role: Role::Id,
            source: SetSource::Folder {
                root: path(b"root\xff"),
                files: files.clone(),
            },
            unreadable: vec![(path(b"fifo\xfe.png"), "not a regular file: a FIFO (named pipe)".into())],
            labelled: false,
        };
        let mut meta = sample();
        meta.logits = None;
        meta.sets = vec![SetMeta::of(&set, 0..4, None)];
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r.parquet");
        let mut writer = ResultsWriter::create(&out, meta).unwrap();
        let items: Vec<Item> = (0..4).map(|index| Item { set: 0, index }).collect();
        let scores = BatchScores {
            scores: vec![vec![0.5; 4]],
            pred: vec![1; 4],
            pred_prob: vec![0.5; 4],
            ..BatchScores::default()
        };
        writer.batch(std::slice::from_ref(&set), &items, &scores).unwrap();
        writer.finish(&ScoreRun::default(), std::slice::from_ref(&set)).unwrap();

        let read = open(&out).unwrap();
        let SetSource::Folder { root, files: back } = &read.sets[0].source else {
            panic!("not a folder set")
        };
        assert_eq!(root, &path(b"root\xff"));
        assert_eq!(back, &files);
        assert_eq!(read.sets[0].unreadable, set.unreadable);
        // As text in the file: escaped, ordinary paths as they are.
        let names: Vec<String> = (0..4).map(|i| read.sets[0].item_name(i)).collect();
        assert_eq!(
            names,
            [r"d\xe9j\xe0/a.png", "ok/b.png", r"lit\x5cx41.png", r"bad\xff\xfe.png"]
        );
    }
}
