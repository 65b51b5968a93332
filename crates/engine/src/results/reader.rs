//! Reading results files: a part's footer and metadata checked (one line naming the file for a
//! truncated file, a file that is not Parquet or not ours, a missing column), its row groups by
//! set, and [`open_with`]: the sets, a [`ScoreRun`] and the metadata, reading only the columns
//! needed.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::SchemaRef;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};

use super::schema::{FEATURES, INDEX, KEY, LABEL, LOGITS, Metadata, PATH, PRED, PRED_PROB, SetMeta, check_schema};
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
    file: File,
    arrow: ArrowReaderMetadata,
    /// Each set's row groups and its rows' selection within them.
    set_rows: Vec<(Vec<usize>, RowSelection)>,
}

impl ResultsFile {
    /// Opens `path` and checks it is a whole oodscope results file.
    pub fn read(path: &Path) -> Result<ResultsFile, String> {
        let at = path.display();
        let file = File::open(path).map_err(|e| format!("{at}: cannot open: {e}"))?;
        let arrow = ArrowReaderMetadata::load(&file, Default::default())
            .map_err(|e| format!("{at}: not a readable Parquet file (truncated, or not Parquet): {e}"))?;
        let text = arrow
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|k| k.key == KEY))
            .and_then(|k| k.value.clone())
            .ok_or_else(|| format!("{at}: a Parquet file, but not an oodscope results file (no `{KEY}` metadata)"))?;
        let meta = Metadata::from_json(&text).map_err(|e| format!("{at}: {e}"))?;
        check_schema(arrow.schema(), &meta).map_err(|e| format!("{at}: {e}"))?;
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
        let set_rows = rows_by_set(&arrow, &meta.sets);
        Ok(ResultsFile {
            path: path.to_path_buf(),
            meta,
            file,
            arrow,
            set_rows,
        })
    }

    /// The columns (without the file's key-value metadata, which Arrow copies into its schema).
    pub fn schema(&self) -> SchemaRef {
        std::sync::Arc::new(arrow_schema::Schema::new(self.arrow.schema().fields().clone()))
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

/// Where each set's rows are (the sets' rows follow each other in set order): the row groups that
/// hold them, and the selection of their rows within those groups. Our files keep one set per
/// row group; a file rewritten by another tool may not, and reads the same. The row groups' counts
/// and the sets' are checked first (`ResultsFile::read`): they add up to the same total.
fn rows_by_set(arrow: &ArrowReaderMetadata, sets: &[SetMeta]) -> Vec<(Vec<usize>, RowSelection)> {
    let groups = arrow.metadata().row_groups();
    let mut starts = Vec::with_capacity(groups.len() + 1);
    let mut total = 0u64;
    for g in groups {
        starts.push(total);
        total += g.num_rows() as u64;
    }
    starts.push(total);
    let mut first = 0u64;
    sets.iter()
        .map(|set| {
            let (a, b) = (first, first + set.rows);
            first = b;
            let chosen: Vec<usize> = (0..groups.len())
                .filter(|&g| starts[g] < b && starts[g + 1] > a)
                .collect();
            let Some(&g0) = chosen.first() else {
                return (Vec::new(), RowSelection::from(Vec::<RowSelector>::new()));
            };
            let end = chosen.last().map_or(b, |&g| starts[g + 1]);
            let selection = RowSelection::from(vec![
                RowSelector::skip((a - starts[g0]) as usize),
                RowSelector::select((b - a) as usize),
                RowSelector::skip((end - b) as usize),
            ]);
            (chosen, selection)
        })
        .collect()
}

/// Which saved lists to load besides the scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub logits: bool,
    pub features: bool,
}

impl Load {
    /// Everything the file saved.
    pub const ALL: Load = Load {
        logits: true,
        features: true,
    };
    /// The scores and records only.
    pub const SCORES: Load = Load {
        logits: false,
        features: false,
    };
}

/// A results file as the window and the reports use it.
#[derive(Debug, Clone)]
pub struct Results {
    pub path: PathBuf,
    pub meta: Metadata,
    /// The sets, built from the stored paths (each over its covered block: `index` 0 is the
    /// block's first image); the skipped files keep their places.
    pub sets: Vec<ImageSet>,
    /// The records (their `path` empty: the set listings hold the paths), one column per method,
    /// and the saved logits and features when loaded.
    pub run: ScoreRun,
}

/// Opens a results file with everything it saved (see [`open_with`]).
pub fn open(path: &Path) -> Result<Results, String> {
    open_with(path, Load::ALL)
}

/// Opens a results file, reading only the columns needed: `index`, `label`, `pred`, `pred_prob`,
/// the score columns, `path` for folder sets, and the saved lists `load` asks for.
pub fn open_with(path: &Path, load: Load) -> Result<Results, String> {
    let part = ResultsFile::read(path)?;
    let at = path.display().to_string();
    let meta = part.meta.clone();
    let methods = meta
        .methods
        .iter()
        .map(|m| {
            m.settings()
                .ok_or_else(|| format!("{at}: method `{}` is not one this oodscope has", m.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let logits = meta.logits.filter(|_| load.logits);
    let features = meta.features.filter(|_| load.features);
    // Reserved from the file's own counts, at most RESERVE_ROWS: a footer claiming 10¹⁵ rows is
    // found out by reading, not by an allocation that aborts.
    let total = (part.num_rows() as usize).min(RESERVE_ROWS);
    let mut run = ScoreRun {
        images: Vec::with_capacity(total),
        columns: vec![Vec::with_capacity(total); methods.len()],
        methods,
        logit_width: logits.unwrap_or(0),
        feature_width: features.unwrap_or(0),
        ..ScoreRun::default()
    };
    let mut sets = Vec::with_capacity(meta.sets.len());
    for (s, set) in meta.sets.iter().enumerate() {
        let mut columns = vec![INDEX, LABEL, PRED, PRED_PROB];
        let noise = set.noise();
        if noise.is_none() {
            columns.push(PATH);
        }
        columns.extend(meta.methods.iter().map(|m| m.name.as_str()));
        if logits.is_some() {
            columns.push(LOGITS);
        }
        if features.is_some() {
            columns.push(FEATURES);
        }
        let mut skipped = meta.skipped.iter().filter(|k| k.set == set.name).peekable();
        let reserve = if noise.is_none() {
            set.block_len().min(RESERVE_ROWS as u64)
        } else {
            0
        };
        let mut files: Vec<FileEntry> = Vec::with_capacity(reserve as usize);
        let mut next = set.start;
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
            let cols = Columns::of(&batch, &meta, logits, features).map_err(|e| format!("{at}: {e}"))?;
            for k in 0..batch.num_rows() {
                let index = cols.index.value(k);
                if index < next || index >= set.end {
                    return Err(format!(
                        "{at}: set `{}` has image #{index} twice or out of its block",
                        set.name
                    ));
                }
                skip_to(&mut next, index, &mut files)?;
                next = index + 1;
                let label = cols.label.is_valid(k).then(|| cols.label.value(k).max(0) as u32);
                if let Some(paths) = &cols.path {
                    files.push(FileEntry {
                        path: path_from_text(paths.value(k)),
                        label: label.map(|l| l as usize),
                    });
                }
                let pred_prob = cols.pred_prob.value(k);
                run.images.push(ImageScore {
                    set: s,
                    index: (index - set.start) as usize,
                    path: Box::default(),
                    baseline: meta.baseline.then_some(pred_prob),
                    pred: cols.pred.value(k).max(0) as u32,
                    pred_prob,
                    label,
                });
            }
            for (column, values) in run.columns.iter_mut().zip(&cols.scores) {
                column.extend_from_slice(values.values());
            }
            if let Some((values, width)) = cols.logits {
                append_list(&mut run.logits, values, width).map_err(|e| format!("{at}: `{LOGITS}`: {e}"))?;
            }
            if let Some((values, width)) = cols.features {
                append_list(&mut run.features, values, width).map_err(|e| format!("{at}: `{FEATURES}`: {e}"))?;
            }
        }
        skip_to(&mut next, set.end, &mut files)?;
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
            unreadable: meta
                .unreadable
                .iter()
                .filter(|u| u.set == set.name)
                .map(|u| (path_from_text(&u.path), u.reason.clone()))
                .collect(),
            labelled: set.labelled,
        });
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

/// The typed columns of one record batch.
struct Columns<'a> {
    index: &'a arrow_array::UInt64Array,
    label: &'a arrow_array::Int64Array,
    pred: &'a arrow_array::Int64Array,
    pred_prob: &'a arrow_array::Float32Array,
    path: Option<&'a arrow_array::StringArray>,
    scores: Vec<&'a arrow_array::Float32Array>,
    logits: Option<(&'a arrow_array::ListArray, usize)>,
    features: Option<(&'a arrow_array::ListArray, usize)>,
}

impl<'a> Columns<'a> {
    fn of(
        batch: &'a RecordBatch,
        meta: &Metadata,
        logits: Option<usize>,
        features: Option<usize>,
    ) -> Result<Columns<'a>, String> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| format!("it has no `{name}` column"))
        };
        let bad = |name: &str| format!("its `{name}` column has the wrong type");
        let f32s = |name: &str| column(name)?.as_primitive_opt::<Float32Type>().ok_or_else(|| bad(name));
        let list = |name: &str| column(name)?.as_list_opt::<i32>().ok_or_else(|| bad(name));
        Ok(Columns {
            index: column(INDEX)?
                .as_primitive_opt::<UInt64Type>()
                .ok_or_else(|| bad(INDEX))?,
            label: column(LABEL)?
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| bad(LABEL))?,
            pred: column(PRED)?.as_primitive_opt::<Int64Type>().ok_or_else(|| bad(PRED))?,
            pred_prob: f32s(PRED_PROB)?,
            path: match batch.column_by_name(PATH) {
                Some(c) => Some(c.as_string_opt::<i32>().ok_or_else(|| bad(PATH))?),
                None => None,
            },
            scores: meta
                .methods
                .iter()
                .map(|m| f32s(&m.name))
                .collect::<Result<Vec<_>, _>>()?,
            logits: logits.map(|w| list(LOGITS).map(|l| (l, w))).transpose()?,
            features: features.map(|w| list(FEATURES).map(|l| (l, w))).transpose()?,
        })
    }
}

/// Appends a list column whose every entry has `width` values.
fn append_list(out: &mut Vec<f32>, list: &arrow_array::ListArray, width: usize) -> Result<(), String> {
    let offsets = list.value_offsets();
    let (first, last) = (offsets[0] as usize, offsets[list.len()] as usize);
    if last - first != width * list.len() || offsets.windows(2).any(|w| (w[1] - w[0]) as usize != width) {
        return Err(format!("an entry is not {width} wide"));
    }
    let values = list
        .values()
        .as_primitive_opt::<Float32Type>()
        .ok_or("its values are not float32")?;
    out.extend_from_slice(&values.values()[first..last]);
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;
    use crate::detect::plan::BatchScores;
    use crate::pipeline::stream::Item;
    use crate::results::ResultsWriter;
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
