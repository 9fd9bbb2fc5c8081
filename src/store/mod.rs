//! The local content-addressed store.
//!
//! ```text
//! <root>/objects/ab/<blake3>.parquet|.safetensors   artifacts, verified against their hash on read
//! <root>/entries/<key>.json                         manifests, written last (a complete run)
//! <root>/index/<pipeline>/<stage-id>.json           the last manifest per stage id (for `plan`)
//! <root>/locks/<key>.lock                           per-key locks (two runs on one store)
//! <root>/tmp/                                       temp files and stage scratch dirs
//! <root>/stat-cache.json                            (size, mtime, inode) → hash of source files
//! <root>/lease.lock                                 shared by runs, exclusive for `gc`
//! ```
//!
//! A crash at any instant leaves either no entry or a complete one: objects and manifests are
//! written to a temp file, fsynced, and renamed; the manifest is renamed only after every object
//! it names is in place. Manifests carry a checksum of their own content.
//!
//! Runs (and pulls) hold a shared lease on the store; `gc` tries for it exclusively. With no run
//! live it may remove anything unreferenced; while a run is live it leaves alone what is younger
//! than its grace age (a run's fresh objects are not yet named by a manifest) and every scratch
//! dir a live stage holds.

pub mod gc;
mod manifest;
mod object;
pub mod remote;
mod stat_cache;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use manifest::{Manifest, ObjectRef};
pub use object::{decode, encode, parquet_rows};
use stat_cache::StatCache;

use s2r_stages::{Artifact, Source};

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
    /// A source file cannot be hashed (not a regular file, or hashing was interrupted).
    #[error("source `{path}`: {message}")]
    Source {
        /// The file.
        path: PathBuf,
        /// Why.
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
    cancel: Mutex<Option<Arc<AtomicBool>>>,
}

/// Holds a per-key lock until dropped.
pub struct KeyLock {
    _file: File,
}

/// A run's shared lease on the store (or `gc`'s exclusive one), held until dropped.
pub struct Lease {
    _file: File,
}

/// A stage's scratch directory under `tmp/`, locked while the stage runs (so `gc` leaves it
/// alone) and removed when dropped.
pub struct Scratch {
    _lock: File,
    dir: tempfile::TempDir,
}

impl Scratch {
    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// What `objects/` holds: valid objects, and what does not belong there.
#[derive(Debug, Default)]
pub struct ObjectScan {
    /// (hash, ext, size) of every well-named object file.
    pub objects: Vec<(String, String, u64)>,
    /// Files that are not objects (wrong name, wrong shard, at the top level): left alone.
    pub foreign: Vec<PathBuf>,
    /// Directories where an object file should be (removed by `cache verify`).
    pub dirs: Vec<PathBuf>,
}

/// Object extensions the store writes.
fn known_ext(ext: &str) -> bool {
    ext == "parquet" || ext == "safetensors" || s2r_stages::api::artifact::FILE_EXTENSIONS.contains(&ext)
}

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Store {
    /// Opens (creating) a store at `root`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        match fs::metadata(root) {
            Ok(md) if !md.is_dir() => {
                return Err(StoreError::Io {
                    path: root.to_path_buf(),
                    source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
                })
            }
            _ => {}
        }
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
            cancel: Mutex::new(None),
        })
    }

    /// The flag that interrupts source hashing (a run's cancel flag).
    pub fn set_cancel(&self, cancel: Arc<AtomicBool>) {
        *self.cancel.lock().expect("cancel lock") = Some(cancel);
    }

    fn cancelled(&self) -> bool {
        self.cancel.lock().expect("cancel lock").as_ref().is_some_and(|c| c.load(Ordering::Relaxed))
    }

    fn lease_file(&self) -> Result<File, StoreError> {
        let path = self.root.join("lease.lock");
        File::options().create(true).truncate(false).write(true).open(&path).map_err(io(&path))
    }

    /// A run's shared lease: held while the run may write objects no manifest names yet.
    /// Blocks only while a `gc` holds the exclusive lease (a moment).
    pub fn lease(&self) -> Result<Lease, StoreError> {
        let f = self.lease_file()?;
        f.lock_shared().map_err(io(&self.root.join("lease.lock")))?;
        Ok(Lease { _file: f })
    }

    /// `gc`'s exclusive lease, if no run holds a shared one now (`None`: a run is live).
    pub fn try_exclusive_lease(&self) -> Result<Option<Lease>, StoreError> {
        let f = self.lease_file()?;
        match f.try_lock() {
            Ok(()) => Ok(Some(Lease { _file: f })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(io(&self.root.join("lease.lock"))(e)),
        }
    }

    /// A fresh scratch directory for a stage, locked until dropped.
    pub fn scratch(&self) -> Result<Scratch, StoreError> {
        let tmp = self.root.join("tmp");
        let dir = tempfile::Builder::new().prefix("scratch-").tempdir_in(&tmp).map_err(io(&tmp))?;
        let lock_path = dir.path().join(".lock");
        let f = File::create(&lock_path).map_err(io(&lock_path))?;
        f.lock().map_err(io(&lock_path))?;
        Ok(Scratch { _lock: f, dir })
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
        // An object already there is trusted only once verified (a truncated or flipped one is
        // replaced); reusing it refreshes its age, so a concurrent `gc` leaves it alone.
        if self.existing_object_ok(&path, &hash, bytes.len() as u64) {
            let _ = File::options().append(true).open(&path).and_then(|f| f.set_modified(std::time::SystemTime::now()));
        } else {
            if path.is_dir() {
                fs::remove_dir_all(&path).map_err(io(&path))?;
            }
            self.write_atomic(&path, &bytes)?;
        }
        Ok(ObjectRef { hash, ext: ext.to_string(), bytes: bytes.len() as u64, rows })
    }

    /// Whether the object `hash.ext` is in the store, `len` bytes, with content hashing to its name.
    pub fn object_ok(&self, hash: &str, ext: &str, len: u64) -> bool {
        self.existing_object_ok(&self.object_path(hash, ext), hash, len)
    }

    /// Whether `path` is a regular file of `len` bytes hashing to `hash`.
    fn existing_object_ok(&self, path: &Path, hash: &str, len: u64) -> bool {
        match fs::symlink_metadata(path) {
            Ok(md) if md.is_file() && md.len() == len => {
                fs::read(path).is_ok_and(|b| blake3::hash(&b).to_hex().as_str() == hash)
            }
            _ => false,
        }
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

    /// Whether every object of `m` exists with its size (a cheap stat, no read: what `run`
    /// checks of a hit; contents are verified whenever an object is read, and by `cache verify`).
    pub fn objects_present(&self, m: &Manifest) -> bool {
        m.outputs.values().all(|o| self.object_present(o))
    }

    /// Whether `o` is in the store with its size (a stat, no hashing).
    pub fn object_present(&self, o: &ObjectRef) -> bool {
        fs::symlink_metadata(self.object_path(&o.hash, &o.ext)).is_ok_and(|md| md.is_file() && md.len() == o.bytes)
    }

    /// The manifest for `key`, if any. A manifest that is unreadable, fails its checksum or
    /// names another key counts as a miss and is removed.
    pub fn entry(&self, key: &str) -> Result<Option<Manifest>, StoreError> {
        let path = self.entry_path(key);
        match fs::read(&path) {
            Ok(b) => match Manifest::decode(&b).and_then(|m| {
                if m.key == key {
                    Ok(m)
                } else {
                    Err(format!("it names key `{}`", m.key))
                }
            }) {
                Ok(m) => Ok(Some(m)),
                Err(e) => {
                    tracing::warn!("removing bad manifest {}: {e}", path.display());
                    let _ = fs::remove_file(&path);
                    Ok(None)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
                tracing::warn!("removing directory {} where a manifest should be", path.display());
                let _ = fs::remove_dir_all(&path);
                Ok(None)
            }
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Writes a manifest (after its objects) and records it as the stage id's last run. The
    /// entry is the result: a failure to update the last-run index (it only feeds `plan`'s
    /// reasons) is a warning, not a failed stage.
    pub fn put_entry(&self, m: &Manifest) -> Result<(), StoreError> {
        self.write_atomic(&self.entry_path(&m.key), &m.encode())?;
        if let Err(e) = self.set_last(m) {
            tracing::warn!("`{}` is cached, but its last-run record was not updated: {e}", m.stage_id);
        }
        Ok(())
    }

    /// Writes a manifest without touching the last-run index (entries pulled from a remote).
    pub fn put_entry_only(&self, m: &Manifest) -> Result<(), StoreError> {
        self.write_atomic(&self.entry_path(&m.key), &m.encode())
    }

    /// Records `m` as the last manifest of its stage id (for `plan`).
    pub fn set_last(&self, m: &Manifest) -> Result<(), StoreError> {
        self.write_atomic(&self.index_path(&m.pipeline, &m.stage_id), &m.encode())
    }

    /// The last manifest recorded for `id` of `pipeline`.
    pub fn last(&self, pipeline: &str, id: &str) -> Option<Manifest> {
        fs::read(self.index_path(pipeline, id)).ok().and_then(|b| Manifest::decode(&b).ok())
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

    /// Takes the exclusive lock of `key` (blocks while another process holds it). `gc` may
    /// unlink an unheld lock file, so a lock taken on a file that is no longer at its path is
    /// dropped and taken again on the new one.
    pub fn lock(&self, key: &str) -> Result<KeyLock, StoreError> {
        use std::os::unix::fs::MetadataExt;
        let path = self.root.join("locks").join(format!("{key}.lock"));
        loop {
            let f = File::options().create(true).truncate(false).write(true).open(&path).map_err(io(&path))?;
            f.lock().map_err(io(&path))?;
            let held = f.metadata().map_err(io(&path))?;
            match fs::metadata(&path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(KeyLock { _file: f }),
                _ => continue,
            }
        }
    }

    /// Removes lock files no process holds (only called by `gc` under the exclusive lease, when
    /// no run can be waiting on one). Returns how many.
    pub fn clean_locks(&self, dry_run: bool) -> usize {
        let mut n = 0;
        let Ok(rd) = fs::read_dir(self.root.join("locks")) else { return 0 };
        for e in rd.flatten() {
            let Ok(f) = File::options().write(true).open(e.path()) else { continue };
            if f.try_lock().is_ok() {
                if !dry_run {
                    let _ = fs::remove_file(e.path());
                }
                n += 1;
            }
        }
        n
    }

    /// Content hash of a source: one file's blake3, or for a directory a hash over the names and
    /// hashes of exactly the files the stage reads (stat-cached). Only regular files are hashed
    /// (a symlink to `/dev/zero` is an error, not an endless read), and hashing stops when the
    /// run is cancelled.
    pub fn hash_source(&self, src: &Source) -> Result<String, StoreError> {
        if src.files.len() == 1 && src.files[0] == src.path {
            return self.hash_file(&src.path);
        }
        let mut files: Vec<&PathBuf> = src.files.iter().collect();
        files.sort();
        let mut h = blake3::Hasher::new();
        for f in files {
            let rel = f.strip_prefix(&src.path).unwrap_or(f).to_string_lossy().replace('\\', "/");
            h.update(rel.as_bytes());
            h.update(b"\0");
            h.update(self.hash_file(f)?.as_bytes());
            h.update(b"\n");
        }
        Ok(h.finalize().to_hex().to_string())
    }

    fn hash_file(&self, path: &Path) -> Result<String, StoreError> {
        let md = fs::metadata(path).map_err(io(path))?;
        if !md.is_file() {
            return Err(StoreError::Source { path: path.to_path_buf(), message: "not a regular file".into() });
        }
        let canon = fs::canonicalize(path).map_err(io(path))?;
        if let Some(h) = self.stats.lock().expect("stat cache lock").get(&canon, &md) {
            return Ok(h);
        }
        let h = hash_file_uncached(path, &|| self.cancelled()).map_err(|e| match e.kind() {
            std::io::ErrorKind::Interrupted => {
                StoreError::Source { path: path.to_path_buf(), message: "hashing interrupted".into() }
            }
            _ => io(path)(e),
        })?;
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

    /// Every readable manifest in the store (bad ones are skipped: see [`Store::scan_entries`]).
    pub fn entries(&self) -> Result<Vec<Manifest>, StoreError> {
        Ok(self.scan_entries()?.entries)
    }

    /// Every manifest file: the good ones (sorted oldest first), the bad ones with why, and
    /// what does not belong in `entries/`.
    pub fn scan_entries(&self) -> Result<EntryScan, StoreError> {
        let dir = self.root.join("entries");
        let mut out = EntryScan::default();
        for e in fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let key = name.strip_suffix(".json").filter(|k| is_hash(k));
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            match key {
                Some(_) if is_dir => out.dirs.push(p),
                Some(key) => match fs::read(&p).map_err(|e| e.to_string()).and_then(|b| Manifest::decode(&b)) {
                    Ok(m) if m.key == key => out.entries.push(m),
                    Ok(m) => out.bad.push((p, format!("it names key `{}`", m.key))),
                    Err(why) => out.bad.push((p, why)),
                },
                None => out.foreign.push(p),
            }
        }
        out.entries.sort_by(|a, b| a.created_unix.cmp(&b.created_unix).then(a.key.cmp(&b.key)));
        Ok(out)
    }

    /// Every object file: (hash, ext, size).
    pub fn objects(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        Ok(self.scan_objects()?.objects)
    }

    /// What `objects/` holds: well-named objects (`<2 hex>/<64 hex>.<ext>`, in their shard),
    /// foreign files, and directories where an object should be.
    pub fn scan_objects(&self) -> Result<ObjectScan, StoreError> {
        let dir = self.root.join("objects");
        let mut out = ObjectScan::default();
        for shard in fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            let shard_name = shard.file_name().to_string_lossy().into_owned();
            let hex2 =
                shard_name.len() == 2 && shard_name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex2 || !shard.file_type().is_ok_and(|t| t.is_dir()) {
                out.foreign.push(shard.path());
                continue;
            }
            let Ok(rd) = fs::read_dir(shard.path()) else {
                out.foreign.push(shard.path());
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                let parsed = name
                    .split_once('.')
                    .filter(|(stem, ext)| is_hash(stem) && stem.starts_with(&shard_name) && known_ext(ext));
                let Some((stem, ext)) = parsed else {
                    out.foreign.push(p);
                    continue;
                };
                match e.file_type() {
                    Ok(t) if t.is_dir() => out.dirs.push(p),
                    Ok(t) if t.is_file() => out.objects.push((
                        stem.to_string(),
                        ext.to_string(),
                        e.metadata().map(|m| m.len()).unwrap_or(0),
                    )),
                    _ => out.foreign.push(p),
                }
            }
        }
        out.objects.sort();
        out.foreign.sort();
        out.dirs.sort();
        Ok(out)
    }

    /// Removes what killed runs left in `tmp/`: temp files and scratch dirs older than
    /// `min_age` (every one when `min_age` is zero), never a scratch dir a live stage holds.
    pub fn clean_tmp(&self, min_age: std::time::Duration, dry_run: bool) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        if let Ok(rd) = fs::read_dir(self.root.join("tmp")) {
            for e in rd.flatten() {
                let p = e.path();
                let old = min_age.is_zero()
                    || e.metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age >= min_age);
                if !old {
                    continue;
                }
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                if is_dir {
                    // A live stage holds its scratch dir's lock.
                    let live = File::options()
                        .write(true)
                        .open(p.join(".lock"))
                        .is_ok_and(|f| matches!(f.try_lock(), Err(fs::TryLockError::WouldBlock)));
                    if live {
                        continue;
                    }
                    if !dry_run && fs::remove_dir_all(&p).is_err() {
                        continue;
                    }
                } else if !dry_run && fs::remove_file(&p).is_err() {
                    continue;
                }
                removed.push(p);
            }
        }
        removed
    }
}

/// What `entries/` holds.
#[derive(Debug, Default)]
pub struct EntryScan {
    /// Manifests that parse, pass their checksum and are named by their key.
    pub entries: Vec<Manifest>,
    /// Manifest files that do not, with why.
    pub bad: Vec<(PathBuf, String)>,
    /// Files that are not manifests: left alone.
    pub foreign: Vec<PathBuf>,
    /// Directories where a manifest should be.
    pub dirs: Vec<PathBuf>,
}

/// blake3 of a file, read in 16 MiB blocks hashed on all cores; `stop` is polled between blocks
/// (an interrupted hash is an `Interrupted` error). Read, not mapped: a file truncated meanwhile
/// is a short read, not a SIGBUS.
pub fn hash_file_uncached(path: &Path, stop: &dyn Fn() -> bool) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 16 << 20];
    loop {
        if stop() {
            return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted"));
        }
        let mut filled = 0;
        while filled < buf.len() {
            match f.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            break;
        }
        if filled >= 1 << 20 {
            h.update_rayon(&buf[..filled]);
        } else {
            h.update(&buf[..filled]);
        }
        if filled < buf.len() {
            break;
        }
    }
    Ok(h.finalize().to_hex().to_string())
}
