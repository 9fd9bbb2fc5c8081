//! Manifests: what a completed stage run produced, and from what.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::key::Fingerprint;

/// A stored artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// blake3 of the object's bytes.
    pub hash: String,
    /// `parquet` or `safetensors`.
    pub ext: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Rows, for tables.
    pub rows: Option<u64>,
}

/// A completed stage run (`entries/<key>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The cache key.
    pub key: String,
    /// Stage instance id that produced it.
    pub stage_id: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Stage kind.
    pub kind: String,
    /// Everything the key was computed from.
    pub fingerprint: Fingerprint,
    /// Output name → object.
    pub outputs: BTreeMap<String, ObjectRef>,
    /// Run time in seconds.
    pub seconds: f64,
    /// When it finished (Unix seconds).
    pub created_unix: u64,
    /// Tool versions.
    pub versions: BTreeMap<String, String>,
}
