//! The garbage-collection policy of a store: which entries to evict (kept keys are never evicted;
//! `max_age` and `max_size` bound the rest, oldest first), then every object no remaining entry
//! names, and stale temp files.

use std::collections::HashSet;
use std::time::Duration;

use super::{Manifest, Store, StoreError};

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
    /// Temp files older than an hour.
    pub tmp: usize,
}

/// Bytes of an entry's objects.
pub fn entry_bytes(m: &Manifest) -> u64 {
    m.outputs.values().map(|o| o.bytes).sum()
}

/// Collects `store` under `policy`.
pub fn collect(store: &Store, policy: &GcPolicy) -> Result<GcReport, StoreError> {
    let tmp = store.clean_tmp(Duration::from_secs(3600), policy.dry_run);
    let entries = store.entries()?;
    let bounded = policy.max_age.is_some() || policy.max_size.is_some();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    // Oldest first (entries() is sorted so); kept entries are never evicted.
    let mut evict: Vec<Manifest> = Vec::new();
    let mut total: u64 = store.objects()?.iter().map(|o| o.2).sum();
    for m in &entries {
        if policy.keep.contains(&m.key) {
            continue;
        }
        let too_old = policy.max_age.is_some_and(|a| now.saturating_sub(m.created_unix) > a.as_secs());
        let too_big = policy.max_size.is_some_and(|limit| total > limit);
        let unkept = policy.pipelines_given && !bounded;
        if too_old || too_big || unkept {
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
    let mut report = GcReport { tmp: tmp.len(), ..Default::default() };
    for (hash, ext, size) in store.objects()? {
        if !referenced.contains(&hash) {
            report.objects += 1;
            report.freed += size;
            if !policy.dry_run {
                let path = store.object_path(&hash, &ext);
                std::fs::remove_file(&path).map_err(|source| StoreError::Io { path, source })?;
            }
        }
    }
    report.evicted = evict;
    Ok(report)
}
