//! Writing a results file from outputs held in memory (the Python package's arrays): one set per
//! entry, its logits and features as list columns, `pred` / `pred_prob` from the logits (the MSP
//! baseline), and any extra score columns as the file's own ("external") scores. The file is an
//! ordinary results file: `oodscope score --from`, `compare --from` and the window open it.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, ListBuilder};
use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};

use super::parquet_writer::TableWriter;
use super::reader::top_softmax;
use super::schema::{
    FEATURES, FORMAT, FORMAT_VERSION, FitMeta, LOGITS, Metadata, ModelMeta, SCHEMA_VERSION, SetMeta, arrow_schema,
};
use crate::arrays::check_outputs;
use crate::detect::cache::CachedOutputs;
use crate::stats::FitInfo;
use oodscope_data::{Role, Shard};

/// One set of outputs.
pub struct ArraySet<'a> {
    pub name: &'a str,
    pub role: Role,
    pub outputs: &'a CachedOutputs,
    /// One class index per row (negative: unknown), or none.
    pub labels: Option<&'a [i64]>,
    /// One path (or any name) per row, or none (`<set>#<row>`).
    pub paths: Option<&'a [String]>,
}

/// A score column of the caller's own, one value per row of every set (in set order).
pub struct ExtraColumn<'a> {
    pub name: &'a str,
    pub scores: &'a [f32],
}

/// What else the file records.
pub struct ArrayProvenance<'a> {
    /// The class names (one per logit column); empty: numbered.
    pub classes: &'a [String],
    /// The fit the outputs go with, if any.
    pub fit: Option<&'a FitInfo>,
}

/// Writes the results file `path` (atomically) from `sets`, with the `extra` score columns.
pub fn write(
    path: &Path,
    sets: &[ArraySet],
    extra: &[ExtraColumn],
    provenance: &ArrayProvenance,
) -> Result<(), String> {
    let at = path.display();
    let Some(first) = sets.first() else {
        return Err(format!("cannot write {at}: give at least one set"));
    };
    let (c, d) = (first.outputs.logit_width, first.outputs.feature_width);
    let total: usize = sets.iter().map(|s| s.outputs.rows).sum();
    for set in sets {
        check_outputs(set.outputs).map_err(|e| format!("cannot write {at}: set `{}`: {e}", set.name))?;
        if (set.outputs.logit_width, set.outputs.feature_width) != (c, d) {
            return Err(format!(
                "cannot write {at}: set `{}` has {} logits and {} features per row, the first set {c} and {d}",
                set.name, set.outputs.logit_width, set.outputs.feature_width
            ));
        }
        for (what, len) in [
            ("labels", set.labels.map(<[i64]>::len)),
            ("paths", set.paths.map(<[String]>::len)),
        ] {
            if let Some(len) = len.filter(|&l| l != set.outputs.rows) {
                return Err(format!(
                    "cannot write {at}: set `{}` has {len} {what} for {} rows",
                    set.name, set.outputs.rows
                ));
            }
        }
    }
    for column in extra {
        if column.scores.len() != total {
            return Err(format!(
                "cannot write {at}: score column `{}` has {} values for {total} rows (all sets, in order)",
                column.name,
                column.scores.len()
            ));
        }
    }
    let classes = if provenance.classes.is_empty() {
        crate::arrays::numbered_classes(c)
    } else {
        provenance.classes.to_vec()
    };
    if classes.len() != c {
        return Err(format!(
            "cannot write {at}: {} class names for {c} logits",
            classes.len()
        ));
    }
    let mut meta = Metadata {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        schema_version: SCHEMA_VERSION.into(),
        oodscope_version: env!("CARGO_PKG_VERSION").into(),
        command: "arrays".into(),
        model: ModelMeta {
            name: "arrays".into(),
            classes,
            ..ModelMeta::default()
        },
        baseline: true,
        fit: provenance.fit.map(FitMeta::of),
        shard: Shard::WHOLE,
        sets: sets
            .iter()
            .map(|s| {
                let rows = s.outputs.rows as u64;
                SetMeta {
                    name: s.name.to_string(),
                    role: s.role.name().into(),
                    kind: "rows".into(),
                    labelled: s.labels.is_some_and(|l| l.iter().any(|&l| l >= 0)),
                    len: rows,
                    end: rows,
                    rows,
                    ..SetMeta::default()
                }
            })
            .collect(),
        logits: Some(c),
        features: (d > 0).then_some(d),
        ..Metadata::default()
    };
    meta.batch_size = 0;
    // The standard columns, then the extra scores before the lists.
    let standard = arrow_schema(&meta);
    let mut fields: Vec<Field> = standard
        .fields()
        .iter()
        .filter(|f| f.name() != LOGITS && f.name() != FEATURES)
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(extra.iter().map(|e| Field::new(e.name, DataType::Float32, false)));
    fields.extend(
        standard
            .fields()
            .iter()
            .filter(|f| f.name() == LOGITS || f.name() == FEATURES)
            .map(|f| f.as_ref().clone()),
    );
    let schema = Arc::new(Schema::new(fields));
    let mut writer = TableWriter::create(path, schema.clone())?;
    let mut row0 = 0;
    for (s, set) in sets.iter().enumerate() {
        let o = set.outputs;
        let n = o.rows;
        let top: Vec<(usize, f32)> = (0..n).map(|k| top_softmax(&o.logits[k * c..(k + 1) * c])).collect();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(set.name, n))),
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(set.role.name(), n))),
            Arc::new(StringArray::from_iter_values((0..n).map(|k| match set.paths {
                Some(p) => p[k].clone(),
                None => format!("{}#{k}", set.name),
            }))),
            Arc::new(UInt64Array::from_iter_values(0..n as u64)),
            Arc::new(Int64Array::from_iter(
                (0..n).map(|k| set.labels.map(|l| l[k]).filter(|&l| l >= 0)),
            )),
            Arc::new(Int64Array::from_iter_values(top.iter().map(|t| t.0 as i64))),
            Arc::new(Float32Array::from_iter_values(top.iter().map(|t| t.1))),
        ];
        for column in extra {
            columns.push(Arc::new(Float32Array::from(column.scores[row0..row0 + n].to_vec())));
        }
        for (values, width) in [(&o.logits, c), (&o.features, d)] {
            if width == 0 {
                continue;
            }
            let mut list = ListBuilder::new(Float32Builder::with_capacity(n * width));
            for k in 0..n {
                list.values().append_slice(&values[k * width..(k + 1) * width]);
                list.append(true);
            }
            columns.push(Arc::new(list.finish()));
        }
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| format!("cannot write {at}: {e}"))?;
        writer.write(s, &batch)?;
        row0 += n;
    }
    writer.finish(&meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_written_from_arrays_opens_with_its_outputs_and_extra_scores() {
        let outputs = |rows: usize, shift: f32| CachedOutputs {
            logits: (0..rows * 3).map(|v| v as f32 * 0.1 + shift).collect(),
            logit_width: 3,
            features: (0..rows * 2).map(|v| v as f32).collect(),
            feature_width: 2,
            member_widths: Vec::new(),
            blocks: Default::default(),
            rows,
        };
        let (id, ood) = (outputs(4, 0.0), outputs(2, 1.0));
        let labels = [0, 1, -1, 2];
        let mine: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.parquet");
        let sets = [
            ArraySet {
                name: "cifar10",
                role: Role::Id,
                outputs: &id,
                labels: Some(&labels),
                paths: None,
            },
            ArraySet {
                name: "svhn",
                role: Role::Ood,
                outputs: &ood,
                labels: None,
                paths: None,
            },
        ];
        let extra = [ExtraColumn {
            name: "mine",
            scores: &mine,
        }];
        let provenance = ArrayProvenance {
            classes: &[],
            fit: None,
        };
        write(&out, &sets, &extra, &provenance).unwrap();
        let read = super::super::open(&out).unwrap();
        assert_eq!(read.meta.schema_version, SCHEMA_VERSION);
        assert_eq!(read.run.external, ["mine"]);
        assert_eq!(read.run.columns[0], mine);
        assert_eq!(read.run.logits[..12], id.logits[..]);
        assert_eq!(read.run.features[8..], ood.features[..]);
        assert_eq!(read.run.images[1].label, Some(1));
        assert_eq!(read.run.images[2].label, None);
        assert_eq!(read.sets[1].name, "svhn");
        assert_eq!(read.sets[0].item_name(3), "cifar10#3");
        assert!(
            write(
                &out,
                &sets,
                &[ExtraColumn {
                    name: "mine",
                    scores: &mine[..5]
                }],
                &provenance
            )
            .unwrap_err()
            .contains("has 5 values for 6 rows")
        );
    }

    #[test]
    fn a_file_opens_telling_its_rows_read_batch_by_batch_and_stops_when_told() {
        let rows = 3000;
        let outputs = CachedOutputs {
            logits: (0..rows * 2).map(|v| (v % 7) as f32).collect(),
            logit_width: 2,
            features: Vec::new(),
            feature_width: 0,
            member_widths: Vec::new(),
            blocks: Default::default(),
            rows,
        };
        let set = |name, role| ArraySet {
            name,
            role,
            outputs: &outputs,
            labels: None,
            paths: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.parquet");
        let provenance = ArrayProvenance {
            classes: &[],
            fit: None,
        };
        write(&out, &[set("id", Role::Id), set("ood", Role::Ood)], &[], &provenance).unwrap();
        let mut told = Vec::new();
        let read = super::super::open_watched(&out, super::super::Load::ALL, &mut |r| {
            told.push(r);
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(read.run.images.len(), 2 * rows);
        // A call per batch read (here one per set: a batch holds up to 65 536 rows).
        let total = 2 * rows as u64;
        let expected = [rows as u64, total].map(|done| super::super::RowsRead { done, total });
        assert_eq!(told, expected);

        let mut calls = 0;
        let stopped = super::super::open_watched(&out, super::super::Load::ALL, &mut |_| {
            calls += 1;
            std::ops::ControlFlow::Break(())
        });
        assert_eq!(calls, 1);
        assert!(stopped.is_err_and(|e| e.ends_with("reading stopped")));
    }
}
