//! Rendering tables for `cat`: CSV, JSON (an array of row objects) and Markdown.

use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

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

fn cells(batch: &RecordBatch) -> Result<Vec<Vec<String>>, arrow::error::ArrowError> {
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
