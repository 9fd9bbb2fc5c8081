//! The `per_user` and `summary` tables every evaluator (`eval.static`, `irs.eval`) produces.

use std::sync::Arc;

use arrow::array::{Float64Array, StringArray, UInt32Array};

use crate::api::artifact::{Artifact, Outputs};
use crate::api::docs::OutputDoc;
use crate::api::error::StageError;
use crate::data::table::batch;
use crate::eval::metrics::{summarize, SessionMetrics};

/// The outputs [`metric_tables`] produces (every evaluator declares these).
pub const METRIC_OUTPUTS: &[OutputDoc] = &[
    OutputDoc { name: "per_user", help: "user, reward, precision, recall, f1, relevant" },
    OutputDoc { name: "summary", help: "method, users, reward, precision, recall, f1" },
];

/// The `per_user` and `summary` outputs every evaluator produces.
pub fn metric_tables(method: &str, rows: &[(u32, SessionMetrics)]) -> Result<Outputs, StageError> {
    let sessions: Vec<SessionMetrics> = rows.iter().map(|r| r.1).collect();
    let s = summarize(&sessions);
    let per_user = batch(vec![
        ("user", Arc::new(UInt32Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>()))),
        ("reward", Arc::new(Float64Array::from(sessions.iter().map(|s| s.reward).collect::<Vec<_>>()))),
        ("precision", Arc::new(Float64Array::from(sessions.iter().map(|s| s.precision).collect::<Vec<_>>()))),
        ("recall", Arc::new(Float64Array::from(sessions.iter().map(|s| s.recall).collect::<Vec<_>>()))),
        ("f1", Arc::new(Float64Array::from(sessions.iter().map(|s| s.f1).collect::<Vec<_>>()))),
        ("relevant", Arc::new(UInt32Array::from(sessions.iter().map(|s| s.relevant as u32).collect::<Vec<_>>()))),
    ])?;
    let summary = batch(vec![
        ("method", Arc::new(StringArray::from(vec![method.to_string()]))),
        ("users", Arc::new(UInt32Array::from(vec![s.users as u32]))),
        ("reward", Arc::new(Float64Array::from(vec![s.reward]))),
        ("precision", Arc::new(Float64Array::from(vec![s.precision]))),
        ("recall", Arc::new(Float64Array::from(vec![s.recall]))),
        ("f1", Arc::new(Float64Array::from(vec![s.f1]))),
    ])?;
    Ok(Outputs::from([("per_user".into(), Artifact::Table(per_user)), ("summary".into(), Artifact::Table(summary))]))
}
