//! `cache ls|verify|gc|push|pull`: maintain the local store and move entries to and from a
//! remote. Keys come from the same [`Machine`] as `run`'s, so gc keeps and push/pull move exactly
//! what `run` would use.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use s2r_pipe::graph::load;
use s2r_pipe::key::Machine;
use s2r_pipe::plan::{plan, Action};
use s2r_pipe::store::gc::{self, GcPolicy};
use s2r_pipe::store::remote::Transfer;
use s2r_pipe::store::{parquet_rows, Store};
use s2r_stages::Registry;

use super::args::CacheCommand;
use super::{need_remote, open_store, remote_for};

pub fn cache_command(
    dir: &Path,
    remote_flag: Option<&str>,
    command: CacheCommand,
    registry: &Registry,
    machine: Machine,
) -> Result<ExitCode> {
    let store = open_store(dir)?;
    match command {
        CacheCommand::Ls => {
            let entries = store.entries()?;
            println!("{:<16}  {:<40}  {:<16}  {:>10}  {:>8}", "key", "stage", "kind", "bytes", "seconds");
            let mut total = 0;
            for m in &entries {
                let bytes: u64 = m.outputs.values().map(|o| o.bytes).sum();
                total += bytes;
                println!(
                    "{:<16}  {:<40}  {:<16}  {:>10}  {:>8.2}",
                    &m.key[..16],
                    format!("{}/{}", m.pipeline, m.stage_id),
                    m.kind,
                    bytes,
                    m.seconds
                );
            }
            println!("{} entries, {} bytes in their objects", entries.len(), total);
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Verify => verify(&store),
        CacheCommand::Gc { pipelines, max_age, max_size, dry_run, grace } => {
            let verb = if dry_run { "would remove" } else { "removed" };
            let mut policy = GcPolicy {
                pipelines_given: !pipelines.is_empty(),
                max_age,
                max_size,
                dry_run,
                grace,
                ..Default::default()
            };
            for p in &pipelines {
                let graph = load(p, &[], registry)?;
                policy.keep.extend(plan(&graph, registry, &store, machine).stages.into_iter().filter_map(|i| i.key));
            }
            let report = gc::collect(&store, &policy)?;
            for m in &report.evicted {
                println!("{verb} entry {} ({}/{}, {} bytes)", &m.key[..16], m.pipeline, m.stage_id, gc::entry_bytes(m));
            }
            for f in &report.foreign {
                eprintln!("warning: `{}` is not the store's: left alone", f.display());
            }
            if report.live_runs {
                println!(
                    "a run is live: kept {} unreferenced objects and entries younger than {} s, and live scratch dirs",
                    report.young,
                    policy.grace.unwrap_or(gc::DEFAULT_GRACE).as_secs()
                );
            }
            println!(
                "{verb} {} entries, {} unreferenced objects ({} bytes), {} temp files and scratch dirs, {} lock files",
                report.evicted.len(),
                report.objects,
                report.freed,
                report.tmp,
                report.locks
            );
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Push { pipeline, set } => {
            let graph = pipeline.as_ref().map(|p| load(p, &set, registry)).transpose()?;
            let remote = need_remote(remote_for(remote_flag, graph.as_ref())?)?;
            let entries = match &graph {
                None => store.entries()?,
                Some(g) => plan(g, registry, &store, machine)
                    .stages
                    .into_iter()
                    .filter_map(|i| i.key)
                    .filter_map(|k| store.entry(&k).ok().flatten())
                    .collect(),
            };
            let mut total = Transfer::default();
            for m in &entries {
                total += remote
                    .push_entry(&store, m)
                    .with_context(|| format!("pushing `{}` ({})", m.stage_id, &m.key[..16]))?;
            }
            println!(
                "pushed {} entries to {}: {} objects ({} bytes) uploaded, {} already there",
                total.entries,
                remote.url(),
                total.objects,
                total.bytes,
                total.skipped
            );
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Pull { pipeline, set } => {
            let graph = pipeline.as_ref().map(|p| load(p, &set, registry)).transpose()?;
            // Pulled objects land before their manifests: hold a run's lease against `gc`.
            let _lease = store.lease()?;
            let remote = need_remote(remote_for(remote_flag, graph.as_ref())?)?;
            let mut total = Transfer::default();
            match &graph {
                None => {
                    for k in remote.entry_keys()? {
                        if store.entry(&k)?.is_none() {
                            if let Some((_, t)) = remote.pull_entry(&store, &k)? {
                                total += t;
                            }
                        }
                    }
                }
                // Keys depend on upstream outputs: pull in rounds until nothing new arrives.
                Some(g) => loop {
                    let before = total.entries;
                    for item in plan(g, registry, &store, machine).stages {
                        if let (Action::Run, Some(k)) = (item.action, item.key) {
                            if let Some((_, t)) = remote.pull_entry(&store, &k)? {
                                total += t;
                            }
                        }
                    }
                    if total.entries == before {
                        break;
                    }
                },
            }
            println!(
                "pulled {} entries from {}: {} objects ({} bytes) downloaded and verified, {} already here",
                total.entries,
                remote.url(),
                total.objects,
                total.bytes,
                total.skipped
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `cache verify`: every object's content against its name, every manifest's checksum, and every
/// entry's outputs against what the entry says (present, size, rows). Corrupt objects, bad
/// manifests, entries whose outputs disagree and directories where a file should be are
/// removed; foreign files are reported and left alone. Exit 1 when anything was corrupt.
fn verify(store: &Store) -> Result<ExitCode> {
    let objects = store.scan_objects()?;
    let entries = store.scan_entries()?;
    let mut corrupt = 0usize;
    for d in objects.dirs.iter().chain(&entries.dirs) {
        eprintln!("removed the directory `{}` where a file should be", d.display());
        std::fs::remove_dir_all(d).with_context(|| format!("cannot remove `{}`", d.display()))?;
        corrupt += 1;
    }
    for f in objects.foreign.iter().chain(&entries.foreign) {
        eprintln!("warning: `{}` is not the store's: left alone", f.display());
    }
    // Good objects: name → (size, rows of a table).
    let mut good = std::collections::HashMap::new();
    for (hash, ext, size) in &objects.objects {
        match store.read_verified(hash, ext) {
            Ok(bytes) => {
                let rows = if ext == "parquet" { parquet_rows(bytes) } else { None };
                good.insert((hash.clone(), ext.clone()), (*size, rows));
            }
            Err(e) => {
                eprintln!("{e}");
                store.quarantine(hash, ext);
                corrupt += 1;
            }
        }
    }
    for (path, why) in &entries.bad {
        eprintln!("bad manifest `{}`: {why}; removed", path.display());
        let _ = std::fs::remove_file(path);
        corrupt += 1;
    }
    let mut dropped = 0;
    for m in &entries.entries {
        let wrong = m.outputs.iter().find_map(|(name, o)| match good.get(&(o.hash.clone(), o.ext.clone())) {
            None => Some(format!("output `{name}` ({}) is missing or corrupt", &o.hash[..16])),
            Some(&(size, _)) if size != o.bytes => {
                Some(format!("output `{name}` is {size} bytes, the entry says {}", o.bytes))
            }
            Some(&(_, rows)) if o.rows.is_some() && rows != o.rows => Some(format!(
                "output `{name}` has {} rows, the entry says {}",
                rows.map_or("no".to_string(), |r| r.to_string()),
                o.rows.unwrap_or_default()
            )),
            _ => None,
        });
        if let Some(why) = wrong {
            eprintln!("entry {} ({}/{}): {why}; dropped", &m.key[..16], m.pipeline, m.stage_id);
            store.remove_entry(&m.key)?;
            dropped += 1;
        }
    }
    println!(
        "{} objects verified, {} entries checked: {} corrupt removed, {} entries dropped, {} foreign files left alone",
        objects.objects.len(),
        entries.entries.len() + entries.bad.len(),
        corrupt,
        dropped,
        objects.foreign.len() + entries.foreign.len()
    );
    Ok(if corrupt == 0 && dropped == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
