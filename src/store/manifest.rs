//! Manifests: what a completed stage run produced, and from what.
//!
//! A manifest carries a checksum of its own content (blake3 of its JSON with the checksum field
//! empty), so an edited, truncated or bit-flipped manifest is detected when it is read and counts
//! as a miss instead of being trusted.

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
    /// blake3 of this manifest's JSON with this field empty (filled in by [`Manifest::encode`]).
    #[serde(default)]
    pub checksum: String,
}

impl Manifest {
    /// The checksum of this manifest's content (every field but `checksum`).
    pub fn content_checksum(&self) -> String {
        let mut bare = self.clone();
        bare.checksum = String::new();
        let bytes = serde_json::to_vec(&bare).expect("manifests serialize");
        blake3::hash(&bytes).to_hex().to_string()
    }

    /// The manifest as stored: pretty JSON with its checksum filled in.
    pub fn encode(&self) -> Vec<u8> {
        let mut m = self.clone();
        m.checksum = self.content_checksum();
        serde_json::to_vec_pretty(&m).expect("manifests serialize")
    }

    /// Parses stored bytes and checks the checksum: an unparsable, edited or checksum-less
    /// manifest is an error (the caller treats it as a miss).
    pub fn decode(bytes: &[u8]) -> Result<Manifest, String> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if m.checksum.is_empty() {
            return Err("it has no checksum (written by an older s2r-pipe, or edited)".into());
        }
        let actual = m.content_checksum();
        if actual != m.checksum {
            return Err(format!("its checksum is {}, its content hashes to {actual} (edited or corrupt)", m.checksum));
        }
        Ok(m)
    }
}
