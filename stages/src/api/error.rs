//! Errors a stage can fail with.

use std::path::PathBuf;

/// A stage failure. Messages are lowercase with user values in backticks.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// Params did not match what the stage expects.
    #[error("invalid params: {message}\n  expected: {expected}")]
    Params {
        /// What was wrong.
        message: String,
        /// What the stage expects (its params with types and defaults).
        expected: String,
    },
    /// An input was missing or had the wrong shape.
    #[error("{0}")]
    Input(String),
    /// A source file is missing or unreadable.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A malformed row in a source file.
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong with the row.
        message: String,
    },
    /// The data do not allow the requested operation (empty domain, unknown category, ...).
    #[error("{0}")]
    Data(String),
    /// Training diverged (NaN/inf in a loss).
    #[error("non-finite {loss} at iteration {iteration}")]
    NonFinite {
        /// Which loss.
        loss: String,
        /// When.
        iteration: usize,
    },
    /// Arrow or Parquet failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The stage was asked to stop.
    #[error("cancelled")]
    Cancelled,
    /// A deliberate failure (the `util.fail` stage).
    #[error("{0}")]
    Failed(String),
}
