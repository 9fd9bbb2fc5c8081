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
    /// The orchestrating process's own peak RSS (in-process stages count here).
    #[serde(skip_serializing_if = "Option::is_none")]
    peak_rss_bytes: Option<u64>,
    counts: std::collections::BTreeMap<&'static str, usize>,
    stages: &'a [StageResult],
}

/// The JSON run report: `{"pipeline", "seconds", "counts", "stages": [{"id", "kind", "status",
/// "seconds", "key", "outputs": {"name": "hash"}, "error"?, "peak_rss_bytes"?}], "objects_read",
/// "bytes_read", "peak_rss_bytes"?}`. A stage's `peak_rss_bytes` is its worker process's peak (the
/// `process` and `slurm` executors, and libtorch stages routed to the torch worker); the top-level
/// one is the orchestrator's, which in-process stages share.
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
        peak_rss_bytes: crate::exec::peak_rss_bytes(),
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
    // A peak-memory column when some stage ran in a worker of its own.
    let rss = summary.results.iter().any(|r| r.peak_rss_bytes.is_some());
    let mut out = format!("{:<w$}  {:<kw$}  {:<7}  {:>8}", "stage", "kind", "status", "seconds");
    out.push_str(if rss { "  peak MB\n" } else { "\n" });
    out.push_str(&format!("{}  {}  {}  {}", "-".repeat(w), "-".repeat(kw), "-".repeat(7), "-".repeat(8)));
    out.push_str(if rss { "  -------\n" } else { "\n" });
    for r in &summary.results {
        out.push_str(&format!("{:<w$}  {:<kw$}  {:<7}  {:>8.2}", r.id, r.kind, r.status.as_str(), r.seconds));
        match (rss, r.peak_rss_bytes) {
            (false, _) => out.push('\n'),
            (true, None) => out.push_str(&format!("  {:>7}\n", "-")),
            (true, Some(b)) => out.push_str(&format!("  {:>7.0}\n", b as f64 / 1e6)),
        }
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
