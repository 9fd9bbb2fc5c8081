//! Arrow helpers shared by stages: typed column access with clear errors, one-row tables.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use crate::api::error::StageError;

/// Column `name` of `batch` downcast to `T`, or an error naming the table and the column.
pub fn column<'a, T: Array + 'static>(batch: &'a RecordBatch, table: &str, name: &str) -> Result<&'a T, StageError> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| StageError::Input(format!("table `{table}` has no column `{name}`")))?;
    col.as_any().downcast_ref::<T>().ok_or_else(|| {
        StageError::Input(format!("column `{name}` of table `{table}` has type {}, unexpected", col.data_type()))
    })
}

/// Builds a table from named columns.
pub fn batch(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch, StageError> {
    let fields: Vec<Field> =
        columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), a.null_count() > 0)).collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// A two-column `(key, value)` table of integer counters, e.g. a loader's report.
pub fn counters(rows: &[(&str, i64)]) -> Result<RecordBatch, StageError> {
    let keys = StringArray::from(rows.iter().map(|(k, _)| *k).collect::<Vec<_>>());
    let vals = Int64Array::from(rows.iter().map(|(_, v)| *v).collect::<Vec<_>>());
    batch(vec![("key", Arc::new(keys)), ("value", Arc::new(vals))])
}

/// Reads a counter written by [`counters`].
pub fn counter(batch: &RecordBatch, table: &str, key: &str) -> Result<Option<i64>, StageError> {
    let keys = column::<StringArray>(batch, table, "key")?;
    let vals = column::<Int64Array>(batch, table, "value")?;
    Ok((0..batch.num_rows()).find(|&i| keys.value(i) == key).map(|i| vals.value(i)))
}

/// A float column as a `Vec<f64>` (accepts Float32/Float64/Int columns).
pub fn f64_column(batch: &RecordBatch, table: &str, name: &str) -> Result<Vec<f64>, StageError> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| StageError::Input(format!("table `{table}` has no column `{name}`")))?;
    let cast = arrow::compute::cast(col, &DataType::Float64)?;
    let arr = cast.as_any().downcast_ref::<Float64Array>().expect("cast to Float64 yields Float64Array");
    Ok(arr.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

/// An `(id, vector)` table: `id: u32`, `vector: fixed_size_list<f32>[d]` from row-major `flat`.
pub fn vectors(ids: Vec<u32>, flat: Vec<f32>, d: usize) -> Result<RecordBatch, StageError> {
    use arrow::array::{FixedSizeListArray, Float32Array, UInt32Array};
    let values = Arc::new(Float32Array::from(flat));
    let list =
        FixedSizeListArray::try_new(Arc::new(Field::new("item", DataType::Float32, false)), d as i32, values, None)?;
    batch(vec![("id", Arc::new(UInt32Array::from(ids))), ("vector", Arc::new(list))])
}

/// Reads an `(id, vector)` table: ids, row-major values, dimension.
pub fn read_vectors(b: &RecordBatch, table: &str) -> Result<(Vec<u32>, Vec<f32>, usize), StageError> {
    use arrow::array::{FixedSizeListArray, Float32Array, UInt32Array};
    let ids = column::<UInt32Array>(b, table, "id")?.values().to_vec();
    let list = column::<FixedSizeListArray>(b, table, "vector")?;
    let d = list.value_length() as usize;
    let vals = list
        .values()
        .as_any()
        .downcast_ref::<Float32Array>()
        .ok_or_else(|| StageError::Input(format!("`{table}.vector` is not a list of f32")))?;
    Ok((ids, vals.values().to_vec(), d))
}
