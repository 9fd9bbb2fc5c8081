//! The `s2r-pipe` command line, one file per command group: `run`, `plan`/`graph`/`cat`/`path`
//! (inspect), `kinds`, `cache …`.

pub mod args;
mod cache;
mod inspect;
mod kinds;
mod report;
mod run;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use s2r_pipe::graph::{load, Built, Graph};
use s2r_pipe::key::Machine;
use s2r_pipe::store::remote::Remote;
use s2r_pipe::store::Store;
use s2r_stages::Registry;

use args::{Cli, Command, PipelineArgs, Targets};

/// Exit code 2 (usage/config errors).
#[derive(Debug)]
pub struct ConfigError(pub String);
impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ConfigError {}

pub fn load_graph(p: &PipelineArgs, registry: &Registry) -> Result<Graph<Built>> {
    Ok(load(&p.pipeline, &p.set, registry)?)
}

/// The pipeline's graph restricted to `t`'s targets (an unknown target is a usage error).
pub fn load_targets(p: &PipelineArgs, t: &Targets, registry: &Registry) -> Result<Graph<Built>> {
    Ok(load_graph(p, registry)?.select(&t.targets, t.downstream).map_err(ConfigError)?)
}

/// The store at `--cache-dir`; a directory that cannot be used is a usage error (exit 2).
pub fn open_store(dir: &Path) -> Result<Store> {
    Store::open(dir)
        .map_err(|e| ConfigError(format!("cannot use `{}` as the cache directory: {e}", dir.display())).into())
}

/// The remote from `--remote`/S2R_REMOTE, else the pipeline's `cache: {remote: …}`.
pub fn remote_for(flag: Option<&str>, graph: Option<&Graph<Built>>) -> Result<Option<Arc<Remote>>> {
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

pub fn need_remote(r: Option<Arc<Remote>>) -> Result<Arc<Remote>> {
    r.ok_or_else(|| {
        ConfigError("no remote: give `--remote URL`, set S2R_REMOTE, or `cache: {remote: URL}` in the pipeline".into())
            .into()
    })
}

/// Runs the command; config errors come back as [`ConfigError`] or diagnostics (exit code 2).
pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    let registry = Registry::builtin();
    // One machine for every key this invocation computes (run, plan, cat, path, cache …).
    let machine = Machine::detect();
    match cli.command {
        Command::Run { p, t, jobs, report, push, executor, slurm } => run::run(
            &cli.cache_dir,
            cli.remote.as_deref(),
            cli.quiet,
            &p,
            &t,
            run::RunOptions { jobs, report, push, executor, slurm },
            &registry,
            machine,
        ),
        Command::Worker { request, response } => run::worker(&request, &response, &registry),
        Command::Plan { p, t, json } => inspect::plan(&cli.cache_dir, &p, &t, json, &registry, machine),
        Command::Graph { p, t, format } => inspect::graph(&p, &t, format, &registry),
        Command::Report { p, out } => report::report(&cli.cache_dir, &p, out, &registry, machine),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "s2r-pipe", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Cat { p, output, format, limit } => {
            inspect::cat(&cli.cache_dir, &p, &output, format, limit, &registry, machine)
        }
        Command::Path { p, output } => inspect::path(&cli.cache_dir, &p, &output, &registry, machine),
        Command::Kinds { kind, files } => kinds::kinds(&registry, kind.as_deref(), files),
        Command::Cache { command } => {
            cache::cache_command(&cli.cache_dir, cli.remote.as_deref(), command, &registry, machine)
        }
    }
}
