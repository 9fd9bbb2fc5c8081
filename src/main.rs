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
    /// Remove temp files, unreferenced objects, and (given pipelines) entries they do not use.
    Gc {
        /// Keep only entries these pipelines currently use.
        pipelines: Vec<PathBuf>,
        /// Print what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
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
        Command::Run { p, jobs, report: report_path } => {
            let graph = load_graph(&p, &registry)?;
            let store = open_store(&cli.cache_dir)?;
            let mut opts = ExecOptions::default();
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
            }
            if summary.interrupted {
                return Ok(ExitCode::from(130));
            }
            Ok(if summary.failed() { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Plan { p, json } => {
            let graph = load_graph(&p, &registry)?;
            let store = open_store(&cli.cache_dir)?;
            let pl = plan(&graph, &registry, &store, s2r_stages::device::cuda_device_count());
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
        Command::Cache { command } => cache_command(&cli.cache_dir, command, &registry),
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
    let pl = plan(&graph, registry, &store, s2r_stages::device::cuda_device_count());
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

fn cache_command(dir: &Path, command: CacheCommand, registry: &Registry) -> Result<ExitCode> {
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
        CacheCommand::Gc { pipelines, dry_run } => {
            let verb = if dry_run { "would remove" } else { "removed" };
            let tmp = store.clean_tmp(std::time::Duration::from_secs(3600), dry_run);
            let mut entries = store.entries()?;
            if !pipelines.is_empty() {
                let mut keep = std::collections::HashSet::new();
                for p in &pipelines {
                    let graph = load(p, &[], registry)?;
                    for item in plan(&graph, registry, &store, 0).stages {
                        if let Some(k) = item.key {
                            keep.insert(k);
                        }
                    }
                }
                let (kept, gone): (Vec<_>, Vec<_>) = entries.into_iter().partition(|m| keep.contains(&m.key));
                for m in &gone {
                    println!("{verb} entry {} ({}/{})", &m.key[..16], m.pipeline, m.stage_id);
                    if !dry_run {
                        store.remove_entry(&m.key)?;
                    }
                }
                entries = kept;
            }
            let referenced: std::collections::HashSet<String> =
                entries.iter().flat_map(|m| m.outputs.values().map(|o| o.hash.clone())).collect();
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
            println!("{verb} {n} unreferenced objects ({freed} bytes) and {} temp files", tmp.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}
