//! The [`Stage`] trait: the executor drives, a stage is a pure function of inputs + params.

use std::path::PathBuf;

use serde_json::Value;

use crate::api::artifact::{Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{InputDoc, OutputDoc, ParamDoc};
use crate::api::error::StageError;

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

    /// Source files/directories the stage reads, resolved from its params. The engine hashes
    /// their content into the cache key in place of the path strings.
    fn sources(&self, _params: &Value) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Runs the stage.
    fn run(&self, ctx: &Context, inputs: &Inputs, params: &Value) -> Result<Outputs, StageError>;
}
