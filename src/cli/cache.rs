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
        CacheCommand::Verify => {
            let objects = store.objects()?;
            let mut bad = Vec::new();
            for (hash, ext, _) in &objects {
                match store.read_verified(hash, ext) {
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("{e}");
                        store.quarantine(hash, ext);
                        bad.push(hash.clone());
                    }
                }
            }
            let mut dropped = 0;
            for m in store.entries()? {
                if m.outputs.values().any(|o| bad.contains(&o.hash) || !store.object_path(&o.hash, &o.ext).exists()) {
                    store.remove_entry(&m.key)?;
                    dropped += 1;
                }
            }
            println!("{} objects verified, {} corrupt removed, {} entries dropped", objects.len(), bad.len(), dropped);
            Ok(if bad.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        CacheCommand::Gc { pipelines, max_age, max_size, dry_run } => {
            let verb = if dry_run { "would remove" } else { "removed" };
            let mut policy =
                GcPolicy { pipelines_given: !pipelines.is_empty(), max_age, max_size, dry_run, ..Default::default() };
            for p in &pipelines {
                let graph = load(p, &[], registry)?;
                policy.keep.extend(plan(&graph, registry, &store, machine).stages.into_iter().filter_map(|i| i.key));
            }
            let report = gc::collect(&store, &policy)?;
            for m in &report.evicted {
                println!("{verb} entry {} ({}/{}, {} bytes)", &m.key[..16], m.pipeline, m.stage_id, gc::entry_bytes(m));
            }
            println!(
                "{verb} {} entries, {} unreferenced objects ({} bytes) and {} temp files",
                report.evicted.len(),
                report.objects,
                report.freed,
                report.tmp
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
