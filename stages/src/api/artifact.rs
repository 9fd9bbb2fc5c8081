//! Artifacts flowing between stages: Arrow tables and model weights.

use std::collections::BTreeMap;

use arrow::record_batch::RecordBatch;
use serde_json::Value;

use crate::api::error::StageError;

/// One output of a stage.
#[derive(Debug, Clone)]
pub enum Artifact {
    /// A table, stored as Parquet.
    Table(RecordBatch),
    /// Model weights, already serialized as safetensors bytes.
    Weights(Vec<u8>),
    /// A file for people (a figure): its extension (`svg`, `png`) and bytes.
    File {
        /// Extension, lowercase ASCII letters/digits (see [`FILE_EXTENSIONS`]).
        ext: String,
        /// Content.
        bytes: Vec<u8>,
    },
}

/// Extensions an [`Artifact::File`] may have.
pub const FILE_EXTENSIONS: &[&str] = &["svg", "png"];

impl Artifact {
    /// The table inside, or an error naming `what` when this is not a table.
    pub fn table(&self, what: &str) -> Result<&RecordBatch, StageError> {
        match self {
            Artifact::Table(t) => Ok(t),
            Artifact::Weights(_) => Err(StageError::Input(format!("input `{what}` is weights, expected a table"))),
            Artifact::File { ext, .. } => {
                Err(StageError::Input(format!("input `{what}` is a .{ext} file, expected a table")))
            }
        }
    }

    /// The file extension this artifact is stored under.
    pub fn extension(&self) -> &str {
        match self {
            Artifact::Table(_) => "parquet",
            Artifact::Weights(_) => "safetensors",
            Artifact::File { ext, .. } => ext,
        }
    }
}

/// A matrix value as it appears in instance ids and tables: strings as they are, numbers and
/// booleans as JSON writes them; `None` for lists, maps and null (not allowed as matrix values).
pub fn matrix_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Inputs of a stage run: input name → one or more artifacts, each tagged with the id of the
/// stage instance that produced it (a reference to a matrix stage binds all its instances) and,
/// per producer, its matrix values as the pipeline typed them.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    map: BTreeMap<String, Vec<(String, Artifact)>>,
    matrix: BTreeMap<String, BTreeMap<String, Value>>,
}

impl Inputs {
    /// Adds an artifact under `name`, produced by stage `from` (an instance without matrix values).
    pub fn push(&mut self, name: impl Into<String>, from: impl Into<String>, artifact: Artifact) {
        self.map.entry(name.into()).or_default().push((from.into(), artifact));
    }

    /// Adds an artifact under `name`, produced by the matrix instance `from` with `matrix` values.
    pub fn push_instance<K: Into<String>>(
        &mut self,
        name: impl Into<String>,
        from: impl Into<String>,
        matrix: impl IntoIterator<Item = (K, Value)>,
        artifact: Artifact,
    ) {
        let from = from.into();
        self.matrix.insert(from.clone(), matrix.into_iter().map(|(k, v)| (k.into(), v)).collect());
        self.push(name, from, artifact);
    }

    /// The matrix values of producer `from` as text ([`matrix_text`]), as in its id.
    pub fn matrix_text(&self, from: &str) -> BTreeMap<String, String> {
        self.matrix
            .get(from)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), matrix_text(v).unwrap_or_default())).collect())
            .unwrap_or_default()
    }

    /// Exactly one artifact bound to `name`.
    pub fn one(&self, name: &str) -> Result<&Artifact, StageError> {
        match self.map.get(name).map(Vec::as_slice) {
            Some([(_, a)]) => Ok(a),
            Some([]) | None => Err(StageError::Input(format!("missing input `{name}`"))),
            Some(many) => {
                Err(StageError::Input(format!("input `{name}` is bound to {} artifacts, expected one", many.len())))
            }
        }
    }

    /// The single table bound to `name`.
    pub fn table(&self, name: &str) -> Result<&RecordBatch, StageError> {
        self.one(name)?.table(name)
    }

    /// Every artifact bound to `name` (empty when unbound).
    pub fn all(&self, name: &str) -> &[(String, Artifact)] {
        self.map.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether anything is bound to `name`.
    pub fn has(&self, name: &str) -> bool {
        self.map.get(name).is_some_and(|v| !v.is_empty())
    }

    /// Bound input names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }
}

/// Outputs of a stage run: output name → artifact. A BTreeMap so iteration is deterministic.
pub type Outputs = BTreeMap<String, Artifact>;
