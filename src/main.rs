//! The `s2r-pipe` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};
use s2r_pipe::event::{Fanout, Sink};
use s2r_pipe::exec::{execute, ExecOptions};
use s2r_pipe::graph::{load, Built, Graph};
use s2r_pipe::plan::{plan, Action};
use s2r_pipe::show::{render, Format};
use s2r_pipe::store::remote::Remote;
use s2r_pipe::store::Store;
use s2r_pipe::{progress, report, Diagnostics};
use s2r_stages::{Artifact, Registry};

/// Declarative, cached pipelines for sim-to-real interactive recommendation experiments.
#[derive(Parser)]
#[command(name = "s2r-pipe", version, about, long_about = None)]
struct Cli {
    /// The cache directory.
    #[arg(long, global = true, env = "S2R_CACHE_DIR", default_value = "cache")]
    cache_dir: PathBuf,
    /// A shared cache: `s3://bucket/prefix` (AWS_* variables for endpoint, region, credentials),
    /// `file:///dir` or a directory. Default: the pipeline's `cache: {remote: …}`.
    #[arg(long, global = true, env = "S2R_REMOTE")]
    remote: Option<String>,
    /// Print only failures.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct PipelineArgs {
    /// The pipeline file (YAML).
    pipeline: PathBuf,
    /// Override a var (`name=value`) or a stage param (`stage.param=value`); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run what is missing, in parallel, and print a summary.
    Run {
        #[command(flatten)]
        p: PipelineArgs,
        /// Parallel CPU slots (default: the number of cores).
        #[arg(short, long)]
        jobs: Option<usize>,
        /// Write a JSON run report here.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Upload what the run produced to the remote cache.
        #[arg(long)]
        push: bool,
    },
    /// Show what would run and why.
    Plan {
        #[command(flatten)]
        p: PipelineArgs,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the stage graph.
    Graph {
        #[command(flatten)]
        p: PipelineArgs,
        /// Output format.
        #[arg(long, value_enum, default_value = "dot")]
        format: GraphFormat,
    },
    /// Print a cached output table.
    Cat {
        #[command(flatten)]
        p: PipelineArgs,
        /// `stage.output`, e.g. `stats.table1`.
        output: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "markdown")]
        format: Format,
        /// Print at most this many rows.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Print the path of a cached output's object (Parquet: open with pandas or duckdb).
    Path {
        #[command(flatten)]
        p: PipelineArgs,
        /// `stage.output`.
        output: String,
    },
    /// List the stage kinds and their params.
    Kinds,
    /// Inspect and maintain the cache.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum GraphFormat {
    Dot,
    Mermaid,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// List cache entries.
    Ls,
    /// Re-hash every object; remove corrupt ones and the entries that name them.
    Verify,
    /// Evict entries (keep rules and bounds), then remove unreferenced objects and temp files.
    ///
    /// With pipelines, the entries they currently use are always kept and, without bounds, every
    /// other entry goes. `--max-age` evicts unkept entries older than the age; `--max-size`
    /// evicts the oldest unkept entries until the store fits.
    Gc {
        /// Keep the entries these pipelines currently use.
        pipelines: Vec<PathBuf>,
        /// Evict unkept entries older than this (`30m`, `12h`, `7d`).
        #[arg(long, value_parser = parse_age)]
        max_age: Option<std::time::Duration>,
        /// Evict the oldest unkept entries until objects take at most this (`500M`, `10G`).
        #[arg(long, value_parser = parse_size)]
        max_size: Option<u64>,
        /// Print what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Upload entries to the remote: those the pipeline currently uses, or every local entry.
    Push {
        /// The pipeline (default: every local entry).
        pipeline: Option<PathBuf>,
        /// Overrides for the pipeline.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Download what the pipeline needs from the remote (verified), or every remote entry.
    Pull {
        /// The pipeline (default: every remote entry).
        pipeline: Option<PathBuf>,
        /// Overrides for the pipeline.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    let (n, unit) = s.trim().split_at(s.trim().find(|c: char| !c.is_ascii_digit()).unwrap_or(s.trim().len()));
    let n: u64 = n.parse().map_err(|_| format!("`{s}` is not an age like `30m`, `12h`, `7d`"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" | "" => 86_400,
        _ => return Err(format!("unknown unit in `{s}` (use s, m, h, d)")),
    };
    Ok(std::time::Duration::from_secs(n * secs))
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_end_matches(['B', 'b']);
    let (n, unit) = t.split_at(t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len()));
    let n: f64 = n.parse().map_err(|_| format!("`{s}` is not a size like `500M`, `10G`"))?;
    let mult = match unit.to_ascii_uppercase().as_str() {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0f64.powi(4),
        _ => return Err(format!("unknown unit in `{s}` (use K, M, G, T)")),
    };
    Ok((n * mult) as u64)
}

/// Exit code 2 (usage/config errors).
#[derive(Debug)]
struct ConfigError(String);
impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ConfigError {}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("S2R_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(d) = e.downcast_ref::<Diagnostics>() {
                eprintln!("{d}");
                return ExitCode::from(2);
            }
            if e.downcast_ref::<ConfigError>().is_some() {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load_graph(p: &PipelineArgs, registry: &Registry) -> Result<Graph<Built>> {
    Ok(load(&p.pipeline, &p.set, registry)?)
}

fn open_store(dir: &Path) -> Result<Store> {
    Store::open(dir).with_context(|| format!("cannot open the cache at `{}`", dir.display()))
}

fn real_main(cli: Cli) -> Result<ExitCode> {
    let registry = Registry::builtin();
    match cli.command {
        Command::Run { p, jobs, report: report_path, push } => {
            let graph = load_graph(&p, &registry)?;
            let store = open_store(&cli.cache_dir)?;
            let mut opts =
                ExecOptions { remote: remote_for(cli.remote.as_deref(), Some(&graph))?, push, ..Default::default() };
            if push && opts.remote.is_none() {
                return Err(ConfigError(
                    "`--push` needs a remote: `--remote URL`, S2R_REMOTE or `cache: {remote: URL}`".into(),
                )
                .into());
            }
            if let Some(j) = jobs {
                if j == 0 {
                    return Err(ConfigError("`--jobs` must be ≥ 1".into()).into());
                }
                opts.jobs = j;
            }
            let cancel = opts.cancel.clone();
            let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let h = hits.clone();
            let _ = ctrlc::set_handler(move || {
                if h.fetch_add(1, Ordering::SeqCst) >= 1 {
                    eprintln!("interrupted twice: exiting now");
                    std::process::exit(130);
                }
                cancel.store(true, Ordering::SeqCst);
            });
            let summary = {
                let mut console = progress::Progress::new(cli.quiet);
                let mut sinks: Vec<&mut dyn Sink> = vec![&mut console];
                let mut fan = Fanout(std::mem::take(&mut sinks));
                execute(&graph, &registry, &store, &opts, &mut fan)
            };
            if let Some(path) = report_path {
                report::write(&summary, &path)
                    .with_context(|| format!("cannot write the report `{}`", path.display()))?;
            }
            if !cli.quiet {
                print!("{}", report::table(&summary));
                print_reports(&summary, &store);
            }
            if summary.interrupted {
                return Ok(ExitCode::from(130));
            }
            Ok(if summary.failed() { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Plan { p, json } => {
            let graph = load_graph(&p, &registry)?;
            let store = open_store(&cli.cache_dir)?;
            let pl = plan(&graph, &registry, &store, s2r_stages::api::device::cuda_device_count());
            if json {
                println!("{}", serde_json::to_string_pretty(&pl)?);
            } else {
                print!("{}", pl.render());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Graph { p, format } => {
            let graph = load_graph(&p, &registry)?;
            print!(
                "{}",
                match format {
                    GraphFormat::Dot => graph.to_dot(),
                    GraphFormat::Mermaid => graph.to_mermaid(),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Cat { p, output, format, limit } => {
            let (store, obj) = resolve_output(&cli.cache_dir, &p, &output, &registry)?;
            match store.get(&obj)? {
                Artifact::Table(t) => print!("{}", render(&t, format, limit)?),
                Artifact::Weights(_) => {
                    bail!("`{output}` is a weights file; use `s2r-pipe path` to locate it")
                }
                Artifact::File { ext, .. } => {
                    bail!(
                        "`{output}` is a .{ext} file; `s2r-pipe path` prints where it is (copy or open it from there)"
                    )
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Path { p, output } => {
            let (store, obj) = resolve_output(&cli.cache_dir, &p, &output, &registry)?;
            println!("{}", store.object_path(&obj.hash, &obj.ext).display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Kinds => {
            for kind in registry.kinds() {
                let r = registry.get(kind).expect("listed");
                println!("{kind}: {}", r.stage.about());
                for p in r.stage.params() {
                    println!(
                        "    param  {:<18} {} ({}) — {}",
                        p.name,
                        p.ty,
                        p.default.map(|d| format!("default {d}")).unwrap_or_else(|| "required".into()),
                        p.help
                    );
                }
                for i in r.stage.inputs() {
                    println!("    input  {:<18} {}{}", i.name, if i.required { "" } else { "(optional) " }, i.help);
                }
                for o in r.stage.outputs() {
                    println!("    output {:<18} {}", o.name, o.help);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cache { command } => cache_command(&cli.cache_dir, cli.remote.as_deref(), command, &registry),
    }
}

/// Prints the `table` of every `report.table` stage that produced (or found cached) one, as
/// Markdown — from the run's own results, without planning again.
fn print_reports(summary: &s2r_pipe::exec::RunSummary, store: &Store) {
    for r in summary.results.iter().filter(|r| r.kind == "report.table") {
        let Some(obj) = r.objects.get("table") else { continue };
        if let Ok(Artifact::Table(t)) = store.get(obj) {
            if let Ok(md) = render(&t, Format::Markdown, None) {
                println!("\n{}\n\n{md}", r.id);
            }
        }
    }
}

fn resolve_output(
    cache: &Path,
    p: &PipelineArgs,
    output: &str,
    registry: &Registry,
) -> Result<(Store, s2r_pipe::store::ObjectRef)> {
    let graph = load_graph(p, registry)?;
    let Some((stage, out)) = output.rsplit_once('.') else {
        return Err(ConfigError(format!("`{output}` is not `stage.output`")).into());
    };
    let Some(i) = graph.index_of(stage) else {
        let ids: Vec<&str> = graph.pipeline().stages.iter().map(|s| s.id.as_str()).collect();
        return Err(ConfigError(format!(
            "no stage `{stage}` in `{}`; {}",
            p.pipeline.display(),
            s2r_pipe::diagnostic::suggest(stage, ids)
        ))
        .into());
    };
    let kind = &graph.stage(i).kind;
    let outputs: Vec<&str> = registry.get(kind).expect("validated").stage.outputs().iter().map(|o| o.name).collect();
    if !outputs.contains(&out) {
        return Err(ConfigError(format!(
            "`{stage}` ({kind}) has no output `{out}`; its outputs are {}",
            outputs.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
        ))
        .into());
    }
    let store = open_store(cache)?;
    let pl = plan(&graph, registry, &store, s2r_stages::api::device::cuda_device_count());
    let item = &pl.stages[i];
    if item.action != Action::Cached {
        bail!(
            "`{stage}` is not cached ({}); run `s2r-pipe run {}` first",
            item.reasons.join("; "),
            p.pipeline.display()
        );
    }
    let obj = item.outputs.get(out).cloned().with_context(|| format!("the cache entry of `{stage}` lacks `{out}`"))?;
    Ok((store, obj))
}

/// The remote from `--remote`/S2R_REMOTE, else the pipeline's `cache: {remote: …}`.
fn remote_for(flag: Option<&str>, graph: Option<&Graph<Built>>) -> Result<Option<Arc<Remote>>> {
    let from_pipeline = graph
        .and_then(|g| g.pipeline().cache.as_ref())
        .and_then(|c| c.get("remote"))
        .and_then(|r| r.as_str())
        .map(str::to_string);
    match flag.map(str::to_string).or(from_pipeline) {
        None => Ok(None),
        Some(url) => Ok(Some(Arc::new(Remote::open(&url).map_err(|e| ConfigError(e.to_string()))?))),
    }
}

fn need_remote(r: Option<Arc<Remote>>) -> Result<Arc<Remote>> {
    r.ok_or_else(|| {
        ConfigError("no remote: give `--remote URL`, set S2R_REMOTE, or `cache: {remote: URL}` in the pipeline".into())
            .into()
    })
}

fn cache_command(
    dir: &Path,
    remote_flag: Option<&str>,
    command: CacheCommand,
    registry: &Registry,
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
            let tmp = store.clean_tmp(std::time::Duration::from_secs(3600), dry_run);
            let entries = store.entries()?;
            let mut keep = std::collections::HashSet::new();
            for p in &pipelines {
                let graph = load(p, &[], registry)?;
                for item in plan(&graph, registry, &store, 0).stages {
                    if let Some(k) = item.key {
                        keep.insert(k);
                    }
                }
            }
            let bounded = max_age.is_some() || max_size.is_some();
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let size_of = |m: &s2r_pipe::store::Manifest| m.outputs.values().map(|o| o.bytes).sum::<u64>();
            // Oldest first; kept entries are never evicted.
            let mut evict: Vec<&s2r_pipe::store::Manifest> = Vec::new();
            let mut total: u64 = store.objects()?.iter().map(|o| o.2).sum();
            for m in &entries {
                if keep.contains(&m.key) {
                    continue;
                }
                let too_old = max_age.is_some_and(|a| now.saturating_sub(m.created_unix) > a.as_secs());
                let too_big = max_size.is_some_and(|limit| total > limit);
                let unkept = !pipelines.is_empty() && !bounded;
                if too_old || too_big || unkept {
                    evict.push(m);
                    total = total.saturating_sub(size_of(m));
                }
            }
            for m in &evict {
                println!("{verb} entry {} ({}/{}, {} bytes)", &m.key[..16], m.pipeline, m.stage_id, size_of(m));
                if !dry_run {
                    store.remove_entry(&m.key)?;
                }
            }
            let gone: std::collections::HashSet<&str> = evict.iter().map(|m| m.key.as_str()).collect();
            let referenced: std::collections::HashSet<String> = entries
                .iter()
                .filter(|m| !gone.contains(m.key.as_str()))
                .flat_map(|m| m.outputs.values().map(|o| o.hash.clone()))
                .collect();
            let mut freed = 0u64;
            let mut n = 0;
            for (hash, ext, size) in store.objects()? {
                if !referenced.contains(&hash) {
                    n += 1;
                    freed += size;
                    if !dry_run {
                        std::fs::remove_file(store.object_path(&hash, &ext))?;
                    }
                }
            }
            println!(
                "{verb} {} entries, {n} unreferenced objects ({freed} bytes) and {} temp files",
                evict.len(),
                tmp.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Push { pipeline, set } => {
            let graph = pipeline.as_ref().map(|p| load(p, &set, registry)).transpose()?;
            let remote = need_remote(remote_for(remote_flag, graph.as_ref())?)?;
            let entries = match &graph {
                None => store.entries()?,
                Some(g) => plan(g, registry, &store, 0)
                    .stages
                    .into_iter()
                    .filter_map(|i| i.key)
                    .filter_map(|k| store.entry(&k).ok().flatten())
                    .collect(),
            };
            let mut total = s2r_pipe::store::remote::Transfer::default();
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
            let mut total = s2r_pipe::store::remote::Transfer::default();
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
                    for item in plan(g, registry, &store, 0).stages {
                        if let (s2r_pipe::plan::Action::Run, Some(k)) = (item.action, item.key) {
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
