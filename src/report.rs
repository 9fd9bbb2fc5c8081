//! The run report (JSON) and the final summary table.

use std::path::Path;

use serde::Serialize;

use crate::event::{StageResult, Status};
use crate::exec::RunSummary;

#[derive(Serialize)]
struct Report<'a> {
    pipeline: &'a str,
    seconds: f64,
    interrupted: bool,
    objects_read: u64,
    bytes_read: u64,
    counts: std::collections::BTreeMap<&'static str, usize>,
    stages: &'a [StageResult],
}

/// The JSON run report: `{"pipeline", "seconds", "counts", "stages": [{"id", "kind", "status",
/// "seconds", "key", "outputs": {"name": "hash"}, "error"?}], "objects_read", "bytes_read"}`.
pub fn json(summary: &RunSummary) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for s in [Status::Cached, Status::Ran, Status::Failed, Status::Skipped, Status::Aborted] {
        counts.insert(s.as_str(), summary.results.iter().filter(|r| r.status == s).count());
    }
    let r = Report {
        pipeline: &summary.pipeline,
        seconds: summary.seconds,
        interrupted: summary.interrupted,
        objects_read: summary.objects_read,
        bytes_read: summary.bytes_read,
        counts,
        stages: &summary.results,
    };
    serde_json::to_string_pretty(&r).expect("reports serialize")
}

/// Writes the JSON report to `path` (atomically).
pub fn write(summary: &RunSummary, path: &Path) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json(summary))?;
    std::fs::rename(tmp, path)
}

/// The summary table printed after a run.
pub fn table(summary: &RunSummary) -> String {
    let w = summary.results.iter().map(|r| r.id.len()).max().unwrap_or(5).max(5);
    let kw = summary.results.iter().map(|r| r.kind.len()).max().unwrap_or(4).max(4);
    let mut out = format!("{:<w$}  {:<kw$}  {:<7}  {:>8}\n", "stage", "kind", "status", "seconds");
    out.push_str(&format!("{}  {}  {}  {}\n", "-".repeat(w), "-".repeat(kw), "-".repeat(7), "-".repeat(8)));
    for r in &summary.results {
        out.push_str(&format!("{:<w$}  {:<kw$}  {:<7}  {:>8.2}\n", r.id, r.kind, r.status.as_str(), r.seconds));
    }
    let count = |s: Status| summary.results.iter().filter(|r| r.status == s).count();
    out.push_str(&format!(
        "{} stages: {} ran, {} cached, {} failed, {} skipped{} in {:.2}s\n",
        summary.results.len(),
        count(Status::Ran),
        count(Status::Cached),
        count(Status::Failed),
        count(Status::Skipped),
        match count(Status::Aborted) {
            0 => String::new(),
            a => format!(", {a} aborted"),
        },
        summary.seconds
    ));
    for r in summary.results.iter().filter(|r| r.status == Status::Failed) {
        out.push_str(&format!("\nerror: stage `{}` failed: {}\n", r.id, r.error.as_deref().unwrap_or("")));
    }
    out
}
