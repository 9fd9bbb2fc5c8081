//! The stat cache: (size, mtime, inode) of a source file → its content hash, so a 700 MB
//! ratings.csv is hashed once, not on every run.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stat {
    size: u64,
    mtime_ns: i128,
    ino: u64,
    hash: String,
}

fn stat_of(md: &Metadata, hash: String) -> Stat {
    Stat {
        size: md.len(),
        mtime_ns: i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
        ino: md.ino(),
        hash,
    }
}

/// The in-memory stat cache.
#[derive(Debug, Default)]
pub struct StatCache {
    map: BTreeMap<String, Stat>,
    dirty: bool,
}

impl StatCache {
    /// Loads from `path` (missing or unreadable → empty).
    pub fn load(path: &Path) -> Self {
        let map = std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Self { map, dirty: false }
    }

    /// The cached hash if the file's stat is unchanged.
    pub fn get(&self, path: &Path, md: &Metadata) -> Option<String> {
        let s = self.map.get(&path.to_string_lossy().into_owned())?;
        let now = stat_of(md, String::new());
        (s.size == now.size && s.mtime_ns == now.mtime_ns && s.ino == now.ino).then(|| s.hash.clone())
    }

    /// Records a hash.
    pub fn insert(&mut self, path: &Path, md: &Metadata, hash: String) {
        self.map.insert(path.to_string_lossy().into_owned(), stat_of(md, hash));
        self.dirty = true;
    }

    /// This cache merged over the one on disk, serialized; `None` when nothing changed.
    pub fn merged_bytes(&mut self, path: &Path) -> Option<Vec<u8>> {
        if !self.dirty {
            return None;
        }
        let mut on_disk = Self::load(path).map;
        on_disk.extend(self.map.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.dirty = false;
        Some(serde_json::to_vec(&on_disk).expect("stat cache serializes"))
    }
}
