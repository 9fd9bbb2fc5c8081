//! The local content-addressed store.
//!
//! ```text
//! <root>/objects/ab/<blake3>.parquet|.safetensors   artifacts, verified against their hash on read
//! <root>/entries/<key>.json                         manifests, written last (a complete run)
//! <root>/index/<pipeline>/<stage-id>.json           the last manifest per stage id (for `plan`)
//! <root>/locks/<key>.lock                           per-key locks (two runs on one store)
//! <root>/tmp/                                       temp files, renamed into place
//! <root>/stat-cache.json                            (size, mtime, inode) → hash of source files
//! ```
//!
//! A crash at any instant leaves either no entry or a complete one: objects and manifests are
//! written to a temp file, fsynced, and renamed; the manifest is renamed only after every object
//! it names is in place.

pub mod gc;
mod manifest;
mod object;
pub mod remote;
mod stat_cache;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub use manifest::{Manifest, ObjectRef};
pub use object::{decode, encode};
use stat_cache::StatCache;

use s2r_stages::Artifact;

/// Store failures. A miss is `Ok(None)`, never an error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Filesystem failure.
    #[error("cache i/o on `{path}`: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An object's content does not match its name.
    #[error("corrupt object `{path}`: content hash is {actual}, expected {expected}")]
    Corrupt {
        /// The object file.
        path: PathBuf,
        /// Hash in its name.
        expected: String,
        /// Hash of its bytes.
        actual: String,
    },
    /// A missing object that a manifest names.
    #[error("object `{0}` is missing from the cache")]
    Missing(PathBuf),
    /// Parquet/Arrow encoding or decoding failed.
    #[error("cannot encode or decode `{what}`: {message}")]
    Codec {
        /// Which artifact.
        what: String,
        /// The library's message.
        message: String,
    },
    /// A manifest is unreadable.
    #[error("bad manifest `{path}`: {message}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// The local store.
pub struct Store {
    root: PathBuf,
    stats: Mutex<StatCache>,
    bytes_read: AtomicU64,
    objects_read: AtomicU64,
}

/// Holds a per-key lock until dropped.
pub struct KeyLock {
    _file: File,
}

impl Store {
    /// Opens (creating) a store at `root`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        for d in ["objects", "entries", "index", "locks", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io(&p))?;
        }
        let stats = StatCache::load(&root.join("stat-cache.json"));
        Ok(Self {
            root: root.to_path_buf(),
            stats: Mutex::new(stats),
            bytes_read: AtomicU64::new(0),
            objects_read: AtomicU64::new(0),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of an object.
    pub fn object_path(&self, hash: &str, ext: &str) -> PathBuf {
        self.root.join("objects").join(&hash[..2]).join(format!("{hash}.{ext}"))
    }

    fn entry_path(&self, key: &str) -> PathBuf {
        self.root.join("entries").join(format!("{key}.json"))
    }

    fn index_path(&self, pipeline: &str, id: &str) -> PathBuf {
        self.root.join("index").join(pipeline).join(format!("{id}.json"))
    }

    /// Bytes and objects read (and verified) so far.
    pub fn read_stats(&self) -> (u64, u64) {
        (self.objects_read.load(Ordering::Relaxed), self.bytes_read.load(Ordering::Relaxed))
    }

    /// Writes `bytes` to `dest` atomically: temp file in `tmp/`, fsync, rename.
    pub fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp_dir = self.root.join("tmp");
        let mut tmp = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io(&tmp_dir))?;
        tmp.write_all(bytes).map_err(io(tmp.path()))?;
        // fsync before rename: a manifest must never name an object whose bytes are not durable.
        tmp.as_file().sync_all().map_err(io(dest))?;
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        tmp.persist(dest).map_err(|e| StoreError::Io { path: dest.to_path_buf(), source: e.error })?;
        Ok(())
    }

    /// Stores an artifact (deduplicated by content) and returns its reference.
    pub fn put(&self, name: &str, artifact: &Artifact) -> Result<ObjectRef, StoreError> {
        let (bytes, rows) = encode(name, artifact)?;
        let hash = blake3::hash(&bytes).to_hex().to_string();
        let ext = artifact.extension();
        let path = self.object_path(&hash, ext);
        if !path.is_file() {
            self.write_atomic(&path, &bytes)?;
        }
        Ok(ObjectRef { hash, ext: ext.to_string(), bytes: bytes.len() as u64, rows })
    }

    /// Reads an object, verifying its content against its hash.
    pub fn read_verified(&self, hash: &str, ext: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.object_path(hash, ext);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::Missing(path)),
            Err(e) => return Err(io(&path)(e)),
        };
        self.bytes_read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.objects_read.fetch_add(1, Ordering::Relaxed);
        let actual = blake3::hash(&bytes).to_hex().to_string();
        if actual != hash {
            return Err(StoreError::Corrupt { path, expected: hash.to_string(), actual });
        }
        Ok(bytes)
    }

    /// Loads an artifact (verified).
    pub fn get(&self, r: &ObjectRef) -> Result<Artifact, StoreError> {
        let bytes = self.read_verified(&r.hash, &r.ext)?;
        decode(&r.hash, &r.ext, bytes)
    }

    /// Whether every object of `m` exists (a cheap stat, no read).
    pub fn objects_present(&self, m: &Manifest) -> bool {
        m.outputs.values().all(|o| self.object_path(&o.hash, &o.ext).metadata().is_ok_and(|md| md.len() == o.bytes))
    }

    /// The manifest for `key`, if any. Unreadable manifests count as a miss and are removed.
    pub fn entry(&self, key: &str) -> Result<Option<Manifest>, StoreError> {
        let path = self.entry_path(key);
        match fs::read(&path) {
            Ok(b) => match serde_json::from_slice::<Manifest>(&b) {
                Ok(m) => Ok(Some(m)),
                Err(e) => {
                    tracing::warn!("removing unreadable manifest {}: {e}", path.display());
                    let _ = fs::remove_file(&path);
                    Ok(None)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Writes a manifest (after its objects) and records it as the stage id's last run.
    pub fn put_entry(&self, m: &Manifest) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(m).expect("manifests serialize");
        self.write_atomic(&self.entry_path(&m.key), &bytes)?;
        self.set_last(m)
    }

    /// Writes a manifest without touching the last-run index (entries pulled from a remote).
    pub fn put_entry_only(&self, m: &Manifest) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(m).expect("manifests serialize");
        self.write_atomic(&self.entry_path(&m.key), &bytes)
    }

    /// Records `m` as the last manifest of its stage id (for `plan`).
    pub fn set_last(&self, m: &Manifest) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(m).expect("manifests serialize");
        self.write_atomic(&self.index_path(&m.pipeline, &m.stage_id), &bytes)
    }

    /// The last manifest recorded for `id` of `pipeline`.
    pub fn last(&self, pipeline: &str, id: &str) -> Option<Manifest> {
        fs::read(self.index_path(pipeline, id)).ok().and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Removes the entry `key` (its objects stay until `gc`).
    pub fn remove_entry(&self, key: &str) -> Result<(), StoreError> {
        let p = self.entry_path(key);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&p)(e)),
            _ => Ok(()),
        }
    }

    /// Moves a corrupt object aside so it is neither trusted nor reused.
    pub fn quarantine(&self, hash: &str, ext: &str) {
        let p = self.object_path(hash, ext);
        let _ = fs::remove_file(p);
    }

    /// Takes the exclusive lock of `key` (blocks while another process holds it).
    pub fn lock(&self, key: &str) -> Result<KeyLock, StoreError> {
        let path = self.root.join("locks").join(format!("{key}.lock"));
        let f = File::options().create(true).truncate(false).write(true).open(&path).map_err(io(&path))?;
        f.lock().map_err(io(&path))?;
        Ok(KeyLock { _file: f })
    }

    /// Content hash of a source file or directory (stat-cached).
    pub fn hash_source(&self, path: &Path) -> Result<String, StoreError> {
        let md = fs::metadata(path).map_err(io(path))?;
        if md.is_file() {
            return self.hash_file(path);
        }
        let mut files = Vec::new();
        walk(path, &mut files).map_err(io(path))?;
        files.sort();
        let mut h = blake3::Hasher::new();
        for f in files {
            let rel = f.strip_prefix(path).unwrap_or(&f).to_string_lossy().replace('\\', "/");
            h.update(rel.as_bytes());
            h.update(b"\0");
            h.update(self.hash_file(&f)?.as_bytes());
            h.update(b"\n");
        }
        Ok(h.finalize().to_hex().to_string())
    }

    fn hash_file(&self, path: &Path) -> Result<String, StoreError> {
        let md = fs::metadata(path).map_err(io(path))?;
        let canon = fs::canonicalize(path).map_err(io(path))?;
        if let Some(h) = self.stats.lock().expect("stat cache lock").get(&canon, &md) {
            return Ok(h);
        }
        let h = hash_file_uncached(path).map_err(io(path))?;
        self.stats.lock().expect("stat cache lock").insert(&canon, &md, h.clone());
        Ok(h)
    }

    /// Saves the stat cache (merged with what other processes saved meanwhile).
    pub fn save_stat_cache(&self) -> Result<(), StoreError> {
        let path = self.root.join("stat-cache.json");
        let bytes = self.stats.lock().expect("stat cache lock").merged_bytes(&path);
        match bytes {
            Some(b) => self.write_atomic(&path, &b),
            None => Ok(()),
        }
    }

    /// Every manifest in the store.
    pub fn entries(&self) -> Result<Vec<Manifest>, StoreError> {
        let dir = self.root.join("entries");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            if e.path().extension().is_some_and(|x| x == "json") {
                if let Ok(m) = fs::read(e.path())
                    .map_err(|_| ())
                    .and_then(|b| serde_json::from_slice::<Manifest>(&b).map_err(|_| ()))
                {
                    out.push(m);
                }
            }
        }
        out.sort_by(|a, b| a.created_unix.cmp(&b.created_unix).then(a.key.cmp(&b.key)));
        Ok(out)
    }

    /// Every object file: (hash, ext, size).
    pub fn objects(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        let dir = self.root.join("objects");
        let mut out = Vec::new();
        for shard in fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            for e in fs::read_dir(shard.path()).map_err(io(&shard.path()))?.flatten() {
                let p = e.path();
                if let (Some(stem), Some(ext)) = (p.file_stem(), p.extension()) {
                    out.push((
                        stem.to_string_lossy().into_owned(),
                        ext.to_string_lossy().into_owned(),
                        e.metadata().map(|m| m.len()).unwrap_or(0),
                    ));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes temp files left by killed runs (older than `min_age`).
    pub fn clean_tmp(&self, min_age: std::time::Duration, dry_run: bool) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        if let Ok(rd) = fs::read_dir(self.root.join("tmp")) {
            for e in rd.flatten() {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= min_age);
                if old {
                    if !dry_run {
                        let _ = fs::remove_file(e.path());
                    }
                    removed.push(e.path());
                }
            }
        }
        removed
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(&e.path(), out)?;
        } else if ft.is_file() || ft.is_symlink() {
            out.push(e.path());
        }
    }
    Ok(())
}

/// blake3 of a file: memory-mapped and multi-threaded for large files.
pub fn hash_file_uncached(path: &Path) -> std::io::Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_mmap_rayon(path)?;
    Ok(h.finalize().to_hex().to_string())
}
