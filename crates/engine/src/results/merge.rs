//! `merge`: shards' results files into the whole run's. Every part must come from the same run
//! (command, model, card, methods and parameters, fit, sets, saved lists), the shards `0..n` must
//! each be there once, and each part must hold a row or a skipped file for every image of its
//! blocks; then the rows are copied set by set, shard by shard, row group by row group (the order
//! a single run writes), into a file renamed into place when complete.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_schema::{Field, FieldRef, Schema, SchemaRef};

use super::parquet_writer::TableWriter;
use super::reader::ResultsFile;
use super::schema::{INDEX, Metadata, SetMeta};
use crate::Error;
use oodscope_data::Shard;

/// Merges `parts` into `out`; returns the merged file's metadata. Nothing is written on any error,
/// nor when `cancel` is raised (checked between row groups).
pub fn merge(parts: &[PathBuf], out: &Path, cancel: &AtomicBool) -> Result<Metadata, Error> {
    if parts.is_empty() {
        return Err(Error::Invalid("merge needs at least one part".into()));
    }
    let files = parts
        .iter()
        .map(|p| ResultsFile::read(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::Invalid)?;
    // Parts are oodscope's own, whole: every column their metadata promises, as written.
    for file in &files {
        if file.derived_sets {
            return Err(Error::Invalid(format!(
                "{}: a Parquet file, but not an oodscope results file (no `{}` metadata): merge joins the parts of one oodscope run",
                file.path.display(),
                super::schema::KEY
            )));
        }
        super::schema::check_complete(&file.schema(), &file.meta)
            .map_err(|e| Error::Invalid(format!("{}: {e}", file.path.display())))?;
    }
    let first = &files[0];
    for other in &files[1..] {
        check_same(first, other).map_err(Error::Invalid)?;
    }
    let order = shard_order(&files).map_err(Error::Invalid)?;
    for file in &files {
        check_blocks(file).map_err(Error::Invalid)?;
    }
    let merged = merged_metadata(&files, &order);
    let schema = first.schema();
    let mut writer = TableWriter::create(out, schema.clone()).map_err(Error::Invalid)?;
    for (s, set) in merged.sets.iter().enumerate() {
        for &p in &order {
            copy_set(&files[p], s, set, &schema, &mut writer, cancel)?;
        }
    }
    writer.finish(&merged).map_err(Error::Invalid)?;
    Ok(merged)
}

/// Parts in shard order; a shard given twice or missing is the error.
fn shard_order(files: &[ResultsFile]) -> Result<Vec<usize>, String> {
    let count = files[0].meta.shard.count;
    let mut by_index: Vec<Option<usize>> = vec![None; count];
    for (p, file) in files.iter().enumerate() {
        let shard = file.meta.shard;
        if let Some(q) = by_index[shard.index] {
            return Err(format!(
                "{}: shard {shard} again (also {}): each shard once",
                file.path.display(),
                files[q].path.display()
            ));
        }
        by_index[shard.index] = Some(p);
    }
    let missing: Vec<String> = (0..count)
        .filter(|&i| by_index[i].is_none())
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "shard {} missing: {} of {count} parts given",
            missing.join(", "),
            files.len()
        ));
    }
    Ok(by_index.into_iter().flatten().collect())
}

/// One line naming `other` and what differs from `first`.
fn check_same(first: &ResultsFile, other: &ResultsFile) -> Result<(), String> {
    let (a, b) = (&first.meta, &other.meta);
    let differs = |what: &str, x: &str, y: &str| {
        Err(format!(
            "{}: {what} differs from {}'s ({y} vs {x}): parts of different runs cannot be merged",
            other.path.display(),
            first.path.display()
        ))
    };
    let short = |h: &str| h.chars().take(12).collect::<String>();
    if a.command != b.command {
        return differs("the command", &a.command, &b.command);
    }
    if a.model.sha256 != b.model.sha256 {
        return differs("the model (sha256)", &short(&a.model.sha256), &short(&b.model.sha256));
    }
    if a.model.card_sha256 != b.model.card_sha256 {
        return differs(
            "the model card (sha256)",
            &short(&a.model.card_sha256),
            &short(&b.model.card_sha256),
        );
    }
    let methods = |m: &Metadata| {
        m.methods
            .iter()
            .map(|m| format!("{} ({})", m.name, m.describe))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if a.methods != b.methods {
        return differs("the methods and their parameters", &methods(a), &methods(b));
    }
    let fit = |m: &Metadata| {
        m.fit
            .as_ref()
            .map_or("no fit".to_string(), |f| short(&f.identity_sha256))
    };
    if fit(a) != fit(b) {
        return differs("the fit (its statistics' sha256)", &fit(a), &fit(b));
    }
    // Two fits with the same provenance can still differ in their tensors (a damaged copy with
    // its digest rewritten, a refit on changed bytes): the digest of their data tells them apart.
    let tensors = |m: &Metadata| m.fit.as_ref().map_or(String::new(), |f| short(&f.tensors_sha256));
    if tensors(a) != tensors(b) {
        return differs("the fit's tensor data (sha256)", &tensors(a), &tensors(b));
    }
    let sets = |m: &Metadata| {
        m.sets
            .iter()
            .map(|s| format!("{} {} of {}", s.role, s.name, s.len))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if a.sets.len() != b.sets.len() || a.sets.iter().zip(&b.sets).any(|(x, y)| !x.same_set(y)) {
        return differs("the sets", &sets(a), &sets(b));
    }
    let lists = |m: &Metadata| format!("logits {:?}, features {:?}", m.logits, m.features);
    if (a.logits, a.features, a.baseline) != (b.logits, b.features, b.baseline) {
        return differs("the saved lists", &lists(a), &lists(b));
    }
    if a.batch_size != b.batch_size {
        return differs("the batch size", &a.batch_size.to_string(), &b.batch_size.to_string());
    }
    if a.shard.count != b.shard.count {
        return differs("the shard count", &a.shard.to_string(), &b.shard.to_string());
    }
    if first.schema() != other.schema() {
        return Err(format!(
            "{}: the columns differ from {}'s ({}): parts of different runs cannot be merged",
            other.path.display(),
            first.path.display(),
            column_difference(&first.schema(), &other.schema())
        ));
    }
    Ok(())
}

/// The first difference between two parts' columns, `other`'s side first (as [`check_same`] says
/// the others): a name, a type, a nullability, a field's metadata, or columns only one part has.
fn column_difference(first: &Schema, other: &Schema) -> String {
    let nullable = |f: &Field| if f.is_nullable() { "nullable" } else { "not nullable" };
    // Display is Arrow's reversible form (it names nested nullability); Debug where it ties.
    let type_of = |a: &Field, b: &Field| {
        let (x, y) = (a.data_type().to_string(), b.data_type().to_string());
        if x == y {
            (format!("{:?}", a.data_type()), format!("{:?}", b.data_type()))
        } else {
            (x, y)
        }
    };
    let (a, b) = (first.fields(), other.fields());
    for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
        if x.name() != y.name() {
            return format!("column {}: `{}` vs `{}`", i + 1, y.name(), x.name());
        }
        if x.data_type() != y.data_type() {
            let (tx, ty) = type_of(x, y);
            return format!("column `{}`: type {ty} vs {tx}", x.name());
        }
        if x.is_nullable() != y.is_nullable() {
            return format!("column `{}`: {} vs {}", x.name(), nullable(y), nullable(x));
        }
        if x != y {
            return format!(
                "column `{}`: field metadata {:?} vs {:?}",
                x.name(),
                y.metadata(),
                x.metadata()
            );
        }
    }
    let names = |fields: &[FieldRef]| {
        fields
            .iter()
            .map(|f| format!("`{}`", f.name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if b.len() > a.len() {
        format!("{} only in this part", names(&b[a.len()..]))
    } else if a.len() > b.len() {
        format!("{} missing from this part", names(&a[b.len()..]))
    } else {
        "the schemas' metadata".into()
    }
}

/// Each set's block is the shard's (whole batches, [`Shard::blocks`]), and its rows and skipped
/// files fill it.
fn check_blocks(file: &ResultsFile) -> Result<(), String> {
    let shard = file.meta.shard;
    let lens: Vec<usize> = file.meta.sets.iter().map(|s| s.len as usize).collect();
    for (set, range) in file.meta.sets.iter().zip(shard.blocks(&lens, file.meta.batch_size)) {
        if (set.start, set.end) != (range.start as u64, range.end as u64) {
            return Err(format!(
                "{}: set `{}` covers images {}..{}, not shard {shard}'s {}..{}",
                file.path.display(),
                set.name,
                set.start,
                set.end,
                range.start,
                range.end
            ));
        }
        let skipped = file.meta.skipped.iter().filter(|k| k.set == set.name).count() as u64;
        if set.rows + skipped != set.block_len() {
            return Err(format!(
                "{}: set `{}` has {} rows and {skipped} skipped files for {} images: a gap",
                file.path.display(),
                set.name,
                set.rows,
                set.block_len()
            ));
        }
    }
    Ok(())
}

/// The whole run's metadata from its parts (in shard order).
fn merged_metadata(files: &[ResultsFile], order: &[usize]) -> Metadata {
    let mut merged = files[order[0]].meta.clone();
    merged.shard = Shard::WHOLE;
    merged.skipped.clear();
    merged.unreadable.clear();
    for (s, set) in merged.sets.iter_mut().enumerate() {
        set.start = 0;
        set.end = set.len;
        set.rows = order.iter().map(|&p| files[p].meta.sets[s].rows).sum();
        for &p in order {
            let part = &files[p].meta;
            merged
                .skipped
                .extend(part.skipped.iter().filter(|k| k.set == set.name).cloned());
        }
    }
    for &p in order {
        merged.unreadable.extend(files[p].meta.unreadable.iter().cloned());
    }
    merged
}

/// Copies one part's rows of set `s`, checking every index of its block is a row or skipped, once.
fn copy_set(
    file: &ResultsFile,
    s: usize,
    set: &SetMeta,
    schema: &SchemaRef,
    writer: &mut TableWriter,
    cancel: &AtomicBool,
) -> Result<(), Error> {
    let at = file.path.display();
    let block = &file.meta.sets[s];
    let mut skipped = file
        .meta
        .skipped
        .iter()
        .filter(|k| k.set == set.name)
        .map(|k| k.index)
        .peekable();
    let mut next = block.start;
    let gap = |i: u64| {
        format!(
            "{at}: set `{}` lacks image #{i} (neither a row nor a skipped file): a gap",
            set.name
        )
    };
    for batch in file.set_batches(s, None).map_err(Error::Invalid)? {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let batch = batch.map_err(|e| Error::Invalid(format!("{at}: cannot read (truncated or corrupt?): {e}")))?;
        let index = batch
            .column_by_name(INDEX)
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .ok_or_else(|| Error::Invalid(format!("{at}: its `{INDEX}` column is missing or mistyped")))?;
        if index.null_count() > 0 {
            return Err(Error::Invalid(format!("{at}: its `{INDEX}` column has nulls")));
        }
        for &i in index.values() {
            if i < next || i >= block.end {
                return Err(Error::Invalid(format!(
                    "{at}: set `{}` has image #{i} twice or outside shard {}'s block: a duplicate",
                    set.name, file.meta.shard
                )));
            }
            while next < i {
                if skipped.next_if(|&k| k == next).is_none() {
                    return Err(Error::Invalid(gap(next)));
                }
                next += 1;
            }
            next = i + 1;
        }
        let batch = batch
            .with_schema(schema.clone())
            .map_err(|e| Error::Invalid(format!("{at}: its columns differ from the first part's: {e}")))?;
        writer.write(s, &batch).map_err(Error::Invalid)?;
    }
    while next < block.end {
        if skipped.next_if(|&k| k == next).is_none() {
            return Err(Error::Invalid(gap(next)));
        }
        next += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::plan::BatchScores;
    use crate::pipeline::stream::Item;
    use crate::results::ResultsWriter;
    use crate::results::schema::tests::sample;
    use crate::score::run::{BatchSink, ScoreRun};
    use oodscope_data::{ImageSet, Role};

    /// Writes shard `shard` of a 10-image noise set with made-up scores (image i scores i / 10).
    fn write_part(dir: &Path, name: &str, shard: Shard, temperature: f64) -> PathBuf {
        let whole = ImageSet::open("uniform:10", Role::Id, &[]).unwrap();
        let mut meta = sample();
        let block = shard.blocks(&[10], meta.batch_size).remove(0);
        let set = whole.block(block.clone(), shard.index == 0);
        meta.shard = shard;
        meta.logits = None;
        meta.methods[0].params.set("temperature", temperature);
        meta.sets = vec![SetMeta::of(&whole, block, None)];
        let path = dir.join(name);
        let mut writer = ResultsWriter::create(&path, meta).unwrap();
        let first = shard.blocks(&[10], 2).remove(0).start;
        let items: Vec<Item> = (0..set.len()).map(|index| Item { set: 0, index }).collect();
        let scores = BatchScores {
            scores: vec![items.iter().map(|i| (first + i.index) as f32 / 10.0).collect()],
            pred: vec![1; items.len()],
            pred_prob: vec![0.5; items.len()],
            ..BatchScores::default()
        };
        writer.batch(std::slice::from_ref(&set), &items, &scores).unwrap();
        writer.finish(&ScoreRun::default(), std::slice::from_ref(&set)).unwrap();
        path
    }

    #[test]
    fn parts_merge_in_shard_order_and_bad_sets_of_parts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let parts: Vec<PathBuf> = (0..3)
            .map(|i| write_part(dir.path(), &format!("p{i}.parquet"), Shard::new(i, 3).unwrap(), 1.0))
            .collect();
        let out = dir.path().join("all.parquet");
        let go = AtomicBool::new(false);
        let meta = merge(&[parts[2].clone(), parts[0].clone(), parts[1].clone()], &out, &go).unwrap();
        assert_eq!(meta.shard, Shard::WHOLE);
        assert_eq!((meta.sets[0].start, meta.sets[0].end, meta.sets[0].rows), (0, 10, 10));
        let all = crate::results::open(&out).unwrap();
        let expected: Vec<f32> = (0..10).map(|i| i as f32 / 10.0).collect();
        assert_eq!(all.run.columns[0], expected);
        assert_eq!(all.sets[0].item_name(7), "uniform#7");

        let fail = |parts: &[&PathBuf]| {
            let parts: Vec<PathBuf> = parts.iter().map(|p| (*p).clone()).collect();
            let out = dir.path().join("refused.parquet");
            let err = merge(&parts, &out, &go).unwrap_err().to_string();
            assert!(!out.exists());
            err
        };
        assert!(fail(&[&parts[0], &parts[2]]).contains("shard 1/3 missing"));
        assert!(fail(&[&parts[0], &parts[1], &parts[1], &parts[2]]).contains("shard 1/3 again"));
        let other = write_part(dir.path(), "t2.parquet", Shard::new(1, 3).unwrap(), 2.0);
        let err = fail(&[&parts[0], &other, &parts[2]]);
        assert!(
            err.contains("t2.parquet: the methods and their parameters differ"),
            "{err}"
        );
    }

    /// Part `from` rewritten at `to` with column `name` nullable (its rows and metadata unchanged).
    fn with_nullable_column(from: &Path, to: &Path, name: &str) {
        let file = ResultsFile::read(from).unwrap();
        let fields: Vec<Field> = file
            .schema()
            .fields()
            .iter()
            .map(|f| {
                let f = f.as_ref().clone();
                if f.name() == name { f.with_nullable(true) } else { f }
            })
            .collect();
        let schema = std::sync::Arc::new(Schema::new(fields));
        let mut writer = TableWriter::create(to, schema.clone()).unwrap();
        for s in 0..file.meta.sets.len() {
            for batch in file.set_batches(s, None).unwrap() {
                writer
                    .write(s, &batch.unwrap().with_schema(schema.clone()).unwrap())
                    .unwrap();
            }
        }
        writer.finish(&file.meta).unwrap();
    }

    #[test]
    fn a_column_whose_nullability_differs_is_named_with_the_difference() {
        let dir = tempfile::tempdir().unwrap();
        let parts: Vec<PathBuf> = (0..2)
            .map(|i| write_part(dir.path(), &format!("p{i}.parquet"), Shard::new(i, 2).unwrap(), 1.0))
            .collect();
        let odd = dir.path().join("odd.parquet");
        with_nullable_column(&parts[1], &odd, "pred");
        let out = dir.path().join("all.parquet");
        let err = merge(&[parts[0].clone(), odd.clone()], &out, &AtomicBool::new(false)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: the columns differ from {}'s (column `pred`: nullable vs not nullable): parts of different runs cannot be merged",
                odd.display(),
                parts[0].display()
            )
        );
        assert!(!out.exists());
    }

    #[test]
    fn column_differences_say_what_differs() {
        use arrow_schema::DataType;
        let list = |nullable| DataType::List(std::sync::Arc::new(Field::new_list_field(DataType::Float32, nullable)));
        let schema = |fields: Vec<Field>| Schema::new(fields);
        let a = schema(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("l", list(true), false),
        ]);
        let renamed = schema(vec![
            Field::new("b", DataType::Int64, false),
            Field::new("l", list(true), false),
        ]);
        let retyped = schema(vec![
            Field::new("a", DataType::Float64, false),
            Field::new("l", list(true), false),
        ]);
        let inner = schema(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("l", list(false), false),
        ]);
        let more = schema(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("l", list(true), false),
            Field::new("x", DataType::Float32, false),
        ]);
        assert_eq!(column_difference(&a, &renamed), "column 1: `b` vs `a`");
        assert_eq!(column_difference(&a, &retyped), "column `a`: type Float64 vs Int64");
        assert_eq!(
            column_difference(&a, &inner),
            "column `l`: type List(non-null Float32) vs List(Float32)"
        );
        assert_eq!(column_difference(&a, &more), "`x` only in this part");
        assert_eq!(column_difference(&more, &a), "`x` missing from this part");
    }

    #[test]
    fn a_cancelled_merge_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let parts: Vec<PathBuf> = (0..2)
            .map(|i| write_part(dir.path(), &format!("p{i}.parquet"), Shard::new(i, 2).unwrap(), 1.0))
            .collect();
        let out = dir.path().join("all.parquet");
        let err = merge(&parts, &out, &AtomicBool::new(true)).unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err}");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["p0.parquet", "p1.parquet"]);
    }
}
