//! The [`Stage`] trait: the executor drives, a stage is a pure function of inputs + params.

use std::path::PathBuf;

use serde_json::Value;

use crate::api::artifact::{Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{InputDoc, OutputDoc, ParamDoc};
use crate::api::error::StageError;

/// A source a stage reads: the path as its params spell it (a file or a directory) and the files
/// the stage reads (the path itself for a file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The path as written in the params.
    pub path: PathBuf,
    /// The files read: `[path]` for a file source, files under `path` for a directory.
    pub files: Vec<PathBuf>,
}

impl Source {
    /// A source that is one file.
    pub fn file(path: PathBuf) -> Self {
        Self { files: vec![path.clone()], path }
    }

    /// Files read from the directory `dir`.
    pub fn dir(dir: PathBuf, files: Vec<PathBuf>) -> Self {
        Self { path: dir, files }
    }
}

/// A kind of pipeline stage.
pub trait Stage: Send + Sync {
    /// The kind name used in pipeline files, e.g. `data.movielens`.
    fn kind(&self) -> &'static str;

    /// One line saying what the stage does.
    fn about(&self) -> &'static str;

    /// The stage's source file (`file!()`), used to look up its build-time code fingerprint.
    fn source(&self) -> &'static str;

    /// The params the stage accepts.
    fn params(&self) -> &'static [ParamDoc];

    /// The inputs the stage accepts.
    fn inputs(&self) -> &'static [InputDoc] {
        &[]
    }

    /// The outputs the stage produces.
    fn outputs(&self) -> &'static [OutputDoc];

    /// Checks params without running (called when the pipeline is loaded).
    fn validate(&self, params: &Value) -> Result<(), StageError>;

    /// The params with every default filled in (what the cache key holds). Stages with typed
    /// params return them parsed and written back ([`crate::api::params::normalized`]).
    fn normalize(&self, params: &Value) -> Result<Value, StageError> {
        Ok(if params.is_null() { Value::Object(Default::default()) } else { params.clone() })
    }

    /// What the stage reads from outside the store, resolved from its params: each source path
    /// as its params spell it, with the regular files under it that the stage reads. The engine
    /// hashes exactly those files (never a whole directory) into the cache key in place of the
    /// path strings. An error (a missing dataset file) is reported before the stage runs.
    fn sources(&self, _params: &Value) -> Result<Vec<Source>, StageError> {
        Ok(Vec::new())
    }

    /// Whether the stage runs libtorch (its key then holds libtorch's version; only a process
    /// built with the `torch` feature can run it).
    fn needs_torch(&self) -> bool {
        false
    }

    /// Runs the stage.
    fn run(&self, ctx: &Context, inputs: &Inputs, params: &Value) -> Result<Outputs, StageError>;
}
