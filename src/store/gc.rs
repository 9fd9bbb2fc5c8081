//! The garbage-collection policy of a store: which entries to evict (kept keys are never evicted;
//! `max_age` and `max_size` bound the rest, oldest first), then every object no remaining entry
//! names, stale temp files and scratch dirs, and unheld lock files.
//!
//! Safe beside live runs: `gc` first tries for the store's exclusive lease. If it gets it, no run
//! is live and everything unreferenced goes. If a run holds a shared lease, `gc` still runs but
//! leaves alone every object and entry younger than the grace age (a run's fresh objects are not
//! yet named by a manifest; a reused object's age is refreshed when it is reused), every scratch
//! dir a live stage holds, and every lock file.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::{Manifest, Store, StoreError};

/// The default grace age while a run is live.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

/// What to keep and what bounds the rest.
#[derive(Debug, Clone, Default)]
pub struct GcPolicy {
    /// Keys that are never evicted (the entries the given pipelines currently use).
    pub keep: HashSet<String>,
    /// Whether pipelines were given: then, without bounds, every unkept entry goes.
    pub pipelines_given: bool,
    /// Evict unkept entries older than this.
    pub max_age: Option<Duration>,
    /// Evict the oldest unkept entries until objects take at most this many bytes.
    pub max_size: Option<u64>,
    /// Only report what would be removed.
    pub dry_run: bool,
    /// While a run is live, nothing younger than this is removed (`None`: [`DEFAULT_GRACE`]).
    pub grace: Option<Duration>,
}

/// What a collection removed (or would remove, on a dry run).
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Evicted entries.
    pub evicted: Vec<Manifest>,
    /// Objects no remaining entry names.
    pub objects: usize,
    /// Their bytes.
    pub freed: u64,
    /// Temp files and scratch dirs left by killed runs.
    pub tmp: usize,
    /// Unheld lock files.
    pub locks: usize,
    /// Whether a run was live (then the grace age applied).
    pub live_runs: bool,
    /// Unreferenced objects and unkept entries left because they are younger than the grace age.
    pub young: usize,
    /// Files in `objects/` or `entries/` that are not the store's: left alone.
    pub foreign: Vec<PathBuf>,
}

/// Bytes of an entry's objects.
pub fn entry_bytes(m: &Manifest) -> u64 {
    m.outputs.values().map(|o| o.bytes).sum()
}

/// Collects `store` under `policy`.
pub fn collect(store: &Store, policy: &GcPolicy) -> Result<GcReport, StoreError> {
    // Held to the end: no run starts while an exclusive collection runs.
    let exclusive = store.try_exclusive_lease()?;
    let grace = if exclusive.is_some() { Duration::ZERO } else { policy.grace.unwrap_or(DEFAULT_GRACE) };
    let mut report = GcReport { live_runs: exclusive.is_none(), ..Default::default() };
    report.tmp = store
        .clean_tmp(
            if exclusive.is_some() { Duration::ZERO } else { grace.max(Duration::from_secs(3600)) },
            policy.dry_run,
        )
        .len();
    if exclusive.is_some() {
        report.locks = store.clean_locks(policy.dry_run);
    }
    let scan = store.scan_entries()?;
    report.foreign.extend(scan.foreign.iter().cloned());
    let entries = scan.entries;
    let bounded = policy.max_age.is_some() || policy.max_size.is_some();
    let now_unix = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    // Oldest first (entries are sorted so); kept entries are never evicted.
    let mut evict: Vec<Manifest> = Vec::new();
    let objects = store.scan_objects()?;
    report.foreign.extend(objects.foreign.iter().cloned());
    let mut total: u64 = objects.objects.iter().map(|o| o.2).sum();
    for m in &entries {
        if policy.keep.contains(&m.key) {
            continue;
        }
        let age = now_unix.saturating_sub(m.created_unix);
        let too_old = policy.max_age.is_some_and(|a| age > a.as_secs());
        let too_big = policy.max_size.is_some_and(|limit| total > limit);
        let unkept = policy.pipelines_given && !bounded;
        if too_old || too_big || unkept {
            if age < grace.as_secs() {
                report.young += 1;
                continue;
            }
            evict.push(m.clone());
            total = total.saturating_sub(entry_bytes(m));
        }
    }
    if !policy.dry_run {
        for m in &evict {
            store.remove_entry(&m.key)?;
        }
    }
    let gone: HashSet<&str> = evict.iter().map(|m| m.key.as_str()).collect();
    let referenced: HashSet<String> = entries
        .iter()
        .filter(|m| !gone.contains(m.key.as_str()))
        .flat_map(|m| m.outputs.values().map(|o| o.hash.clone()))
        .collect();
    for (hash, ext, size) in objects.objects {
        if referenced.contains(&hash) {
            continue;
        }
        let path = store.object_path(&hash, &ext);
        if !grace.is_zero() {
            let young = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_none_or(|age| age < grace);
            if young {
                report.young += 1;
                continue;
            }
        }
        report.objects += 1;
        report.freed += size;
        if !policy.dry_run {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(StoreError::Io { path, source: e }),
                _ => {}
            }
        }
    }
    report.evicted = evict;
    drop(exclusive);
    Ok(report)
}
