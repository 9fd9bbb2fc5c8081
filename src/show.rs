//! Rendering tables for `cat`: CSV, JSON (an array of row objects) and Markdown.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// `batch` with every list column rendered as text, items joined by `|` (CSV has no lists).
fn lists_as_text(batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    let opts = FormatOptions::default().with_null("");
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        let rows: Option<Vec<Option<String>>> = match c.data_type() {
            DataType::List(_) | DataType::LargeList(_) => {
                let item = |v: ArrayRef| -> Result<String, arrow::error::ArrowError> {
                    let fmt = ArrayFormatter::try_new(v.as_ref(), &opts)?;
                    Ok((0..v.len()).map(|i| fmt.value(i).to_string()).collect::<Vec<_>>().join("|"))
                };
                let mut out = Vec::with_capacity(c.len());
                for r in 0..c.len() {
                    if c.is_null(r) {
                        out.push(None);
                    } else if let Some(l) = c.as_list_opt::<i32>() {
                        out.push(Some(item(l.value(r))?));
                    } else {
                        out.push(Some(item(c.as_list::<i64>().value(r))?));
                    }
                }
                Some(out)
            }
            _ => None,
        };
        match rows {
            Some(rows) => {
                fields.push(Field::new(f.name(), DataType::Utf8, true));
                columns.push(Arc::new(StringArray::from(rows)));
            }
            None => {
                fields.push(f.as_ref().clone());
                columns.push(c.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// Output formats of `cat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header.
    Csv,
    /// An array of row objects.
    Json,
    /// A Markdown table.
    Markdown,
}

/// Every cell of `batch` as text (nulls empty), row by row.
pub fn cells(batch: &RecordBatch) -> Result<Vec<Vec<String>>, arrow::error::ArrowError> {
    let opts = FormatOptions::default().with_null("");
    let fmts: Vec<ArrayFormatter> =
        batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &opts)).collect::<Result<_, _>>()?;
    Ok((0..batch.num_rows()).map(|r| fmts.iter().map(|f| f.value(r).to_string()).collect()).collect())
}

/// Renders the first `limit` rows of `batch`.
pub fn render(batch: &RecordBatch, format: Format, limit: Option<usize>) -> Result<String, arrow::error::ArrowError> {
    let batch = match limit {
        Some(n) if n < batch.num_rows() => batch.slice(0, n),
        _ => batch.clone(),
    };
    let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
    match format {
        Format::Csv => {
            let batch = lists_as_text(&batch)?;
            let mut buf = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut buf);
                w.write(&batch)?;
            }
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        Format::Json => {
            let mut buf = Vec::new();
            {
                let mut w = arrow::json::ArrayWriter::new(&mut buf);
                w.write(&batch)?;
                w.finish()?;
            }
            let mut s = String::from_utf8_lossy(&buf).into_owned();
            if s.is_empty() {
                s = "[]".into();
            }
            s.push('\n');
            Ok(s)
        }
        Format::Markdown => {
            let rows = cells(&batch)?;
            let numeric: Vec<bool> = batch.schema().fields().iter().map(|f| f.data_type().is_numeric()).collect();
            let mut out = format!("| {} |\n", names.join(" | "));
            out.push_str(&format!(
                "|{}|\n",
                numeric.iter().map(|n| if *n { "---:" } else { "---" }).collect::<Vec<_>>().join("|")
            ));
            for r in rows {
                let r: Vec<String> = r.into_iter().map(|c| c.replace('|', "\\|")).collect();
                out.push_str(&format!("| {} |\n", r.join(" | ")));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, ListBuilder, StringBuilder};

    #[test]
    fn csv_renders_list_columns_joined_by_bars() {
        let mut genres = ListBuilder::new(StringBuilder::new());
        genres.values().append_value("Crime");
        genres.values().append_value("Drama");
        genres.append(true);
        genres.append(true);
        genres.append(false);
        let batch = RecordBatch::try_from_iter([
            ("item", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            ("genres", Arc::new(genres.finish()) as ArrayRef),
        ])
        .unwrap();
        assert_eq!(render(&batch, Format::Csv, None).unwrap(), "item,genres\n1,Crime|Drama\n2,\n3,\n");
    }
}
