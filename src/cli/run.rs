//! `s2r-pipe run`: execute what is missing, with progress, a summary and the report tables.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use s2r_pipe::event::{Fanout, Sink};
use s2r_pipe::exec::{execute, ExecOptions, RunSummary};
use s2r_pipe::key::Machine;
use s2r_pipe::show::{render, Format};
use s2r_pipe::store::Store;
use s2r_pipe::{progress, report};
use s2r_stages::{Artifact, Registry};

use s2r_pipe::exec::{Executor, InProcess};
use s2r_pipe::graph::{Built, Graph};
use s2r_pipe::slurm::{Slurm, SlurmOptions};
use s2r_pipe::worker::{serve, torch_worker, Process, Routed, WorkerRequest, WorkerResponse};

use super::args::{ExecutorKind, PipelineArgs, SlurmArgs, Targets};
use super::{load_targets, open_store, remote_for, ConfigError};

/// `run`'s own flags.
pub struct RunOptions {
    /// `--jobs`.
    pub jobs: Option<usize>,
    /// `--report`.
    pub report: Option<PathBuf>,
    /// `--push`.
    pub push: bool,
    /// `--executor`.
    pub executor: Option<ExecutorKind>,
    /// The Slurm flags.
    pub slurm: SlurmArgs,
}

/// Stages in flight at once under Slurm unless `--jobs` says otherwise (the cluster, not this
/// machine's cores, decides what runs).
const SLURM_JOBS: usize = 100;

/// The executor: `--executor`, else the pipeline's `executor: {kind: …}`, else in-process; with
/// the GPUs a Slurm run may hold (`None` for the local executors).
fn executor_of(
    flag: Option<ExecutorKind>,
    slurm: &SlurmArgs,
    graph: &Graph<Built>,
) -> Result<(Arc<dyn Executor>, Option<usize>)> {
    let from_pipeline = graph
        .pipeline()
        .executor
        .as_ref()
        .map(|e| e.get("kind").and_then(|k| k.as_str()).map(str::to_string).unwrap_or_else(|| e.to_string()));
    let kind = match (flag, from_pipeline.as_deref()) {
        (Some(k), _) => k,
        (None, None | Some("in-process")) => ExecutorKind::InProcess,
        (None, Some("process")) => ExecutorKind::Process,
        (None, Some("slurm")) => ExecutorKind::Slurm,
        (None, Some(other)) => {
            return Err(ConfigError(format!(
                "`executor: {{kind: {other}}}` in `{}`: the executors are `in-process`, `process` and `slurm`",
                graph.pipeline().file.display()
            ))
            .into())
        }
    };
    let inner: Arc<dyn Executor> = match kind {
        ExecutorKind::InProcess => Arc::new(InProcess),
        ExecutorKind::Process => Arc::new(Process::new()),
        ExecutorKind::Slurm => {
            let section =
                graph.pipeline().executor.as_ref().filter(|e| e.get("kind").and_then(|k| k.as_str()) == Some("slurm"));
            let mut o = SlurmOptions::from_section(section)
                .map_err(|e| ConfigError(format!("{e} in `{}`", graph.pipeline().file.display())))?;
            if let Some(p) = &slurm.partition {
                o.partition = Some(p.clone());
            }
            if let Some(a) = &slurm.account {
                o.account = Some(a.clone());
            }
            o.args.extend(slurm.slurm_args.iter().cloned());
            if let Some(r) = slurm.retries {
                o.retries = r;
            }
            let gpus = o.gpus;
            // Slurm picks the worker for each stage itself (the torch one for libtorch stages).
            return Ok((Arc::new(Slurm::new(o).map_err(ConfigError)?), Some(gpus)));
        }
    };
    // A build without libtorch hands the torch stages to the torch-built worker beside it.
    Ok((
        match torch_worker() {
            Some(worker) => Arc::new(Routed { inner, torch: Process { worker } }),
            None => inner,
        },
        None,
    ))
}

/// `run PIPELINE [TARGET…] [--jobs N] [--report FILE] [--push] [--executor KIND]`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    cache_dir: &Path,
    remote: Option<&str>,
    quiet: bool,
    p: &PipelineArgs,
    t: &Targets,
    ro: RunOptions,
    registry: &Registry,
    machine: Machine,
) -> Result<ExitCode> {
    let RunOptions { jobs, report: report_path, push, executor, slurm } = ro;
    let graph = load_targets(p, t, registry)?;
    let store = open_store(cache_dir)?;
    let (executor, slurm_gpus) = executor_of(executor, &slurm, &graph)?;
    let mut opts = ExecOptions {
        remote: remote_for(remote, Some(&graph))?,
        push,
        machine: slurm_gpus.map_or(machine, Machine::with_gpus),
        executor,
        ..Default::default()
    };
    if slurm_gpus.is_some() {
        opts.jobs = SLURM_JOBS;
    }
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
        let mut console = progress::Progress::new(quiet);
        let mut sinks: Vec<&mut dyn Sink> = vec![&mut console];
        let mut fan = Fanout(std::mem::take(&mut sinks));
        execute(&graph, registry, &store, &opts, &mut fan)
    };
    if let Some(path) = report_path {
        report::write(&summary, &path).with_context(|| format!("cannot write the report `{}`", path.display()))?;
    }
    if !quiet {
        print!("{}", report::table(&summary));
        print_reports(&summary, &store);
    }
    if summary.interrupted {
        return Ok(ExitCode::from(130));
    }
    Ok(if summary.failed() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Prints the `table` of every `report.table` stage that produced (or found cached) one, as
/// Markdown — from the run's own results, without planning again.
fn print_reports(summary: &RunSummary, store: &Store) {
    for r in summary.results.iter().filter(|r| r.kind == "report.table") {
        let Some(obj) = r.objects.get("table") else { continue };
        if let Ok(Artifact::Table(t)) = store.get(obj) {
            if let Ok(md) = render(&t, Format::Markdown, None) {
                println!("\n{}\n\n{md}", r.id);
            }
        }
    }
}

/// `worker REQUEST RESPONSE`: one stage for a `process` executor. SIGTERM/SIGINT cancel it.
pub fn worker(request: &Path, response: &Path, registry: &Registry) -> Result<ExitCode> {
    let bytes = std::fs::read(request).with_context(|| format!("cannot read the request `{}`", request.display()))?;
    let req: WorkerRequest = serde_json::from_slice(&bytes).context("a bad worker request")?;
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c = cancel.clone();
    let _ = ctrlc::set_handler(move || c.store(true, Ordering::SeqCst));
    let resp = serve(&req, registry, &cancel);
    let tmp = response.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&resp).expect("responses serialize"))
        .and_then(|()| std::fs::rename(&tmp, response))
        .with_context(|| format!("cannot write the response `{}`", response.display()))?;
    Ok(match resp {
        WorkerResponse::Outputs { .. } => ExitCode::SUCCESS,
        WorkerResponse::Cancelled => ExitCode::from(130),
        _ => ExitCode::from(1),
    })
}
