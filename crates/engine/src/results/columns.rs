//! A results file's columns as plain values, whatever Arrow type the writer chose: text as
//! `Utf8`, `LargeUtf8`, `Utf8View` or a dictionary (pandas' categoricals); numbers as any integer
//! or float type; lists as `List`, `LargeList` or `FixedSizeList` of any numeric type (pyarrow's
//! and polars' defaults). Written by hand over `arrow-array`'s accessors: `arrow-cast` is not in the
//! build, and these few conversions are all a reader needs.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;

/// Whether a column of this type holds one number per row (a candidate score column).
pub fn is_numeric(data_type: &DataType) -> bool {
    data_type.is_integer() || data_type.is_floating()
}

/// Whether a column of this type holds text.
pub fn is_text(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_text(values),
        _ => false,
    }
}

/// Whether a column of this type holds a list of numbers per row.
pub fn is_numeric_list(data_type: &DataType) -> bool {
    match data_type {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => is_numeric(f.data_type()),
        _ => false,
    }
}

/// A text column, read in place.
pub enum Text<'a> {
    Plain(&'a arrow_array::StringArray),
    Large(&'a arrow_array::LargeStringArray),
    View(&'a arrow_array::StringViewArray),
    /// A dictionary: each row's key into its values (read once as text).
    Dictionary(Vec<usize>, Box<Text<'a>>),
}

impl<'a> Text<'a> {
    /// The column `name` as text; one line if it is not text or has an empty value.
    pub fn of(array: &'a dyn Array, name: &str) -> Result<Text<'a>, String> {
        if array.null_count() > 0 {
            return Err(format!("its `{name}` column has empty values: give every row one"));
        }
        Text::any(array).ok_or_else(|| format!("its `{name}` column is {}, not text", array.data_type()))
    }

    fn any(array: &'a dyn Array) -> Option<Text<'a>> {
        if let Some(a) = array.as_string_opt::<i32>() {
            Some(Text::Plain(a))
        } else if let Some(a) = array.as_string_opt::<i64>() {
            Some(Text::Large(a))
        } else if let Some(a) = array.as_string_view_opt() {
            Some(Text::View(a))
        } else {
            let dictionary = array.as_any_dictionary_opt()?;
            let keys = dictionary.normalized_keys();
            Some(Text::Dictionary(
                keys,
                Box::new(Text::any(dictionary.values().as_ref())?),
            ))
        }
    }

    /// Row `k`'s text.
    pub fn value(&self, k: usize) -> &str {
        match self {
            Text::Plain(a) => a.value(k),
            Text::Large(a) => a.value(k),
            Text::View(a) => a.value(k),
            Text::Dictionary(keys, values) => values.value(keys[k]),
        }
    }
}

/// Every row's number of any Arrow number type as `f64` (`None` where empty); `None` for a column
/// that is not numeric.
fn numbers(array: &dyn Array) -> Option<Vec<Option<f64>>> {
    macro_rules! widened {
        ($($t:ty),*) => {
            $(
                if let Some(a) = array.as_primitive_opt::<$t>() {
                    return Some(a.iter().map(|v| v.map(|v| v as f64)).collect());
                }
            )*
        };
    }
    widened!(
        Float32Type,
        Float64Type,
        Int8Type,
        Int16Type,
        Int32Type,
        Int64Type,
        UInt8Type,
        UInt16Type,
        UInt32Type,
        UInt64Type
    );
    if let Some(a) = array.as_primitive_opt::<Float16Type>() {
        return Some(a.iter().map(|v| v.map(|v| f64::from(f32::from(v)))).collect());
    }
    None
}

/// Every row's number as `f32` (`None` where empty); `None` for a column that is not numeric.
pub fn f32_values(array: &dyn Array) -> Option<Vec<Option<f32>>> {
    if let Some(a) = array.as_primitive_opt::<Float32Type>() {
        return Some(a.iter().collect());
    }
    Some(numbers(array)?.into_iter().map(|v| v.map(|v| v as f32)).collect())
}

/// Every row's number as `f64` (`None` where empty, or NaN: pandas writes an integer column with
/// gaps as float64 with NaN).
fn f64_values(array: &dyn Array) -> Option<Vec<Option<f64>>> {
    Some(numbers(array)?.into_iter().map(|v| v.filter(|v| !v.is_nan())).collect())
}

/// A score column: one finite-or-not `f32` per row, none empty.
pub fn scores(array: &dyn Array, name: &str) -> Result<Vec<f32>, String> {
    let values =
        f32_values(array).ok_or_else(|| format!("its `{name}` column is {}, not numbers", array.data_type()))?;
    values
        .into_iter()
        .enumerate()
        .map(|(k, v)| v.ok_or_else(|| format!("its `{name}` column is empty at row {k}: give every row a score")))
        .collect()
}

/// A column of whole numbers (a class index, an image's place), `None` where empty.
pub fn whole_numbers(array: &dyn Array, name: &str) -> Result<Vec<Option<i64>>, String> {
    let values =
        f64_values(array).ok_or_else(|| format!("its `{name}` column is {}, not whole numbers", array.data_type()))?;
    values
        .into_iter()
        .enumerate()
        .map(|(k, v)| match v {
            Some(v) if v.fract() != 0.0 || v.abs() > 9.0e15 => {
                Err(format!("its `{name}` column holds {v} at row {k}: give whole numbers"))
            }
            v => Ok(v.map(|v| v as i64)),
        })
        .collect()
}

/// A list column whose every row has the same number of values: the values in row order and
/// that width (`known`: the width the file says, if any).
pub fn list_values(array: &ArrayRef, name: &str, known: Option<usize>) -> Result<(Vec<f32>, usize), String> {
    if array.null_count() > 0 {
        return Err(format!("its `{name}` column has empty rows: give every row its values"));
    }
    let rows = array.len();
    let (offsets, values): (Vec<usize>, ArrayRef) = if let Some(l) = array.as_list_opt::<i32>() {
        (
            l.value_offsets().iter().map(|&o| o as usize).collect(),
            l.values().clone(),
        )
    } else if let Some(l) = array.as_list_opt::<i64>() {
        (
            l.value_offsets().iter().map(|&o| o as usize).collect(),
            l.values().clone(),
        )
    } else if let Some(l) = array.as_fixed_size_list_opt() {
        let width = l.value_length() as usize;
        let first = l.offset() * width;
        ((0..=rows).map(|k| first + k * width).collect(), l.values().clone())
    } else {
        return Err(format!(
            "its `{name}` column is {}, not a list of numbers per row",
            array.data_type()
        ));
    };
    let width = known
        .filter(|&w| w > 0)
        .unwrap_or_else(|| offsets.get(1).zip(offsets.first()).map_or(0, |(b, a)| b - a));
    if width == 0 && rows > 0 {
        return Err(format!(
            "its `{name}` column has empty lists: give every row its values"
        ));
    }
    if let Some(k) = offsets.windows(2).position(|w| w[1] - w[0] != width) {
        return Err(format!(
            "its `{name}` column has {} values in row {k} but {width} elsewhere: every row needs the same number",
            offsets[k + 1] - offsets[k]
        ));
    }
    let (first, last) = (offsets[0], offsets[rows]);
    let slice = values.slice(first, last - first);
    if slice.null_count() > 0 {
        return Err(format!("its `{name}` column has empty values inside a row"));
    }
    let numbers = if let Some(a) = slice.as_primitive_opt::<Float32Type>() {
        a.values().to_vec()
    } else {
        f32_values(slice.as_ref())
            .ok_or_else(|| format!("its `{name}` column's values are {}, not numbers", slice.data_type()))?
            .into_iter()
            .map(|v| v.unwrap_or(f32::NAN))
            .collect()
    };
    Ok((numbers, width))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{FixedSizeListBuilder, Float64Builder, LargeListBuilder};
    use arrow_array::{DictionaryArray, Float64Array, Int64Array, StringArray, types::Int32Type};

    use super::*;

    #[test]
    fn lists_of_every_layout_read_the_same() {
        let mut large = LargeListBuilder::new(Float64Builder::new());
        let mut fixed = FixedSizeListBuilder::new(Float64Builder::new(), 2);
        for row in [[1.0, 2.0], [3.0, 4.5]] {
            large.values().append_slice(&row);
            large.append(true);
            fixed.values().append_slice(&row);
            fixed.append(true);
        }
        let expected = (vec![1.0f32, 2.0, 3.0, 4.5], 2);
        let large: ArrayRef = Arc::new(large.finish());
        let fixed: ArrayRef = Arc::new(fixed.finish());
        assert_eq!(list_values(&large, "logits", None).unwrap(), expected);
        assert_eq!(list_values(&fixed, "logits", None).unwrap(), expected);
        assert_eq!(
            list_values(&fixed.slice(1, 1), "logits", None).unwrap(),
            (vec![3.0, 4.5], 2)
        );
        let mut ragged = LargeListBuilder::new(Float64Builder::new());
        ragged.values().append_slice(&[1.0, 2.0]);
        ragged.append(true);
        ragged.values().append_slice(&[1.0]);
        ragged.append(true);
        let ragged: ArrayRef = Arc::new(ragged.finish());
        assert!(
            list_values(&ragged, "logits", None)
                .unwrap_err()
                .contains("1 values in row 1 but 2 elsewhere")
        );
    }

    #[test]
    fn numbers_and_text_of_any_type_read() {
        assert_eq!(scores(&Float64Array::from(vec![0.5, 2.0]), "mine").unwrap(), [0.5, 2.0]);
        assert!(
            scores(&Float64Array::from(vec![Some(0.5), None]), "mine")
                .unwrap_err()
                .contains("empty at row 1")
        );
        assert_eq!(
            whole_numbers(&Float64Array::from(vec![1.0, f64::NAN]), "label").unwrap(),
            [Some(1), None]
        );
        assert_eq!(whole_numbers(&Int64Array::from(vec![7]), "label").unwrap(), [Some(7)]);
        let dictionary: DictionaryArray<Int32Type> = vec!["id", "ood", "id"].into_iter().collect();
        let text = Text::of(&dictionary, "role").unwrap();
        assert_eq!((text.value(0), text.value(1), text.value(2)), ("id", "ood", "id"));
        assert!(
            Text::of(&Int64Array::from(vec![1]), "set")
                .err()
                .unwrap()
                .contains("not text")
        );
        let plain = StringArray::from(vec!["a"]);
        assert_eq!(Text::of(&plain, "set").unwrap().value(0), "a");
    }
}
