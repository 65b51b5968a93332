//! Where each set's rows are in a results file: from its metadata (oodscope writes each set's rows
//! together, in set order), or, for a file without it, from its `set` and `role` columns (sets in
//! order of first appearance, their rows wherever they are); and the row groups and row selection
//! that read one set's rows.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;

use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector};

use super::columns::Text;
use super::schema::{ROLE, SET, SetMeta};

/// Each set's rows: ranges of the file's rows, in order.
pub type SetRanges = Vec<Vec<Range<u64>>>;

/// The rows of each set in a file written by oodscope: one range each, in set order.
pub fn ranges_in_order(sets: &[SetMeta]) -> SetRanges {
    let mut first = 0u64;
    sets.iter()
        .map(|set| {
            let range = first..first + set.rows;
            first = range.end;
            vec![range]
        })
        .collect()
}

/// The sets of a file without oodscope's metadata, from its `set` and `role` columns (read whole),
/// and each set's rows. A set's rows need not be together; each set has one role, `id` or `ood`.
pub fn sets_from_columns(
    file: &File,
    arrow: &ArrowReaderMetadata,
    at: &str,
) -> Result<(Vec<SetMeta>, SetRanges), String> {
    let schema = arrow.schema();
    let roots = [SET, ROLE]
        .iter()
        .map(|n| schema.index_of(n).map_err(|_| format!("{at}: it has no `{n}` column")))
        .collect::<Result<Vec<_>, _>>()?;
    let file = file.try_clone().map_err(|e| format!("{at}: cannot read: {e}"))?;
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, arrow.clone())
        .with_projection(ProjectionMask::roots(arrow.parquet_schema(), roots))
        .with_batch_size(65_536)
        .build()
        .map_err(|e| format!("{at}: cannot read: {e}"))?;
    let mut sets: Vec<SetMeta> = Vec::new();
    let mut ranges: SetRanges = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut row = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| format!("{at}: cannot read (truncated or corrupt?): {e}"))?;
        let (names, roles) = (batch.column(0), batch.column(1));
        let names = Text::of(names.as_ref(), SET).map_err(|e| format!("{at}: {e}"))?;
        let roles = Text::of(roles.as_ref(), ROLE).map_err(|e| format!("{at}: {e}"))?;
        for k in 0..batch.num_rows() {
            let name = names.value(k);
            let role = match roles.value(k).trim().to_ascii_lowercase().as_str() {
                "id" => "id",
                "ood" => "ood",
                other => {
                    return Err(format!(
                        "{at}: row {row} has role `{other}`: every row's `{ROLE}` must be `id` or `ood`"
                    ));
                }
            };
            let s = match by_name.get(name) {
                Some(&s) => s,
                None => {
                    by_name.insert(name.to_string(), sets.len());
                    sets.push(SetMeta {
                        name: name.to_string(),
                        role: role.into(),
                        kind: "rows".into(),
                        ..SetMeta::default()
                    });
                    ranges.push(Vec::new());
                    sets.len() - 1
                }
            };
            if sets[s].role != role {
                return Err(format!(
                    "{at}: set `{name}` has rows of role `{}` and of role `{role}`: give each set one role",
                    sets[s].role
                ));
            }
            sets[s].rows += 1;
            match ranges[s].last_mut() {
                Some(last) if last.end == row => last.end += 1,
                _ => ranges[s].push(row..row + 1),
            }
            row += 1;
        }
    }
    if sets.is_empty() {
        return Err(format!("{at}: it has no rows"));
    }
    for set in &mut sets {
        set.len = set.rows;
        set.end = set.rows;
    }
    Ok((sets, ranges))
}

/// For each set, the row groups that hold its rows (`ranges`, in order) and the selection of those
/// rows within them. The row groups' counts and the sets' are checked first: they add up to the
/// same total.
pub fn rows_by_set(arrow: &ArrowReaderMetadata, ranges: &[Vec<Range<u64>>]) -> Vec<(Vec<usize>, RowSelection)> {
    let groups = arrow.metadata().row_groups();
    let mut starts = Vec::with_capacity(groups.len() + 1);
    let mut total = 0u64;
    for g in groups {
        starts.push(total);
        total += g.num_rows() as u64;
    }
    starts.push(total);
    ranges
        .iter()
        .map(|ranges| {
            let mut chosen = Vec::new();
            let mut selectors = Vec::new();
            let mut r = 0;
            for g in 0..groups.len() {
                let (gs, ge) = (starts[g], starts[g + 1]);
                while r < ranges.len() && ranges[r].end <= gs {
                    r += 1;
                }
                let mut pos = gs;
                let mut i = r;
                while i < ranges.len() && ranges[i].start < ge {
                    let (a, b) = (ranges[i].start.max(gs), ranges[i].end.min(ge));
                    if a > pos {
                        selectors.push(RowSelector::skip((a - pos) as usize));
                    }
                    selectors.push(RowSelector::select((b - a) as usize));
                    pos = b;
                    i += 1;
                }
                if pos == gs {
                    continue;
                }
                if pos < ge {
                    selectors.push(RowSelector::skip((ge - pos) as usize));
                }
                chosen.push(g);
            }
            (chosen, RowSelection::from(selectors))
        })
        .collect()
}
