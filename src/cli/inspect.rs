//! `plan`, `graph`, `cat` and `path`: look at a pipeline and its cached results without running.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use s2r_pipe::diagnostic::suggest;
use s2r_pipe::key::Machine;
use s2r_pipe::plan::{plan as plan_of, Action};
use s2r_pipe::show::{render, Format};
use s2r_pipe::store::{ObjectRef, Store, StoreError};
use s2r_stages::{Artifact, Registry};

use super::args::{GraphFormat, PipelineArgs, Targets};
use super::{load_graph, load_targets, open_store, ConfigError};

/// `plan PIPELINE [--json]`: what would run and why.
pub fn plan(
    cache_dir: &Path,
    p: &PipelineArgs,
    t: &Targets,
    json: bool,
    registry: &Registry,
    machine: Machine,
) -> Result<ExitCode> {
    let graph = load_targets(p, t, registry)?;
    let store = open_store(cache_dir)?;
    let pl = plan_of(&graph, registry, &store, machine);
    if json {
        println!("{}", serde_json::to_string_pretty(&pl)?);
    } else {
        print!("{}", pl.render());
    }
    Ok(ExitCode::SUCCESS)
}

/// `graph PIPELINE [--format dot|mermaid]`.
pub fn graph(p: &PipelineArgs, t: &Targets, format: GraphFormat, registry: &Registry) -> Result<ExitCode> {
    let graph = load_targets(p, t, registry)?;
    print!(
        "{}",
        match format {
            GraphFormat::Dot => graph.to_dot(),
            GraphFormat::Mermaid => graph.to_mermaid(),
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `cat PIPELINE stage.output`: a cached table.
pub fn cat(
    cache_dir: &Path,
    p: &PipelineArgs,
    output: &str,
    format: Format,
    limit: Option<usize>,
    registry: &Registry,
    machine: Machine,
) -> Result<ExitCode> {
    let (store, obj) = resolve_output(cache_dir, p, output, registry, machine)?;
    let artifact = match store.get(&obj) {
        Ok(a) => a,
        Err(e @ (StoreError::Corrupt { .. } | StoreError::Missing(_))) => {
            store.quarantine(&obj.hash, &obj.ext);
            bail!("{e}; it was removed: `s2r-pipe run {}` rebuilds it", p.pipeline.display())
        }
        Err(e) => return Err(e.into()),
    };
    match artifact {
        Artifact::Table(t) => print!("{}", render(&t, format, limit)?),
        Artifact::Weights(_) => bail!("`{output}` is a weights file; use `s2r-pipe path` to locate it"),
        Artifact::File { ext, .. } => {
            bail!("`{output}` is a .{ext} file; `s2r-pipe path` prints where it is (copy or open it from there)")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `path PIPELINE stage.output`: where a cached output's object is.
pub fn path(
    cache_dir: &Path,
    p: &PipelineArgs,
    output: &str,
    registry: &Registry,
    machine: Machine,
) -> Result<ExitCode> {
    let (store, obj) = resolve_output(cache_dir, p, output, registry, machine)?;
    println!("{}", store.object_path(&obj.hash, &obj.ext).display());
    Ok(ExitCode::SUCCESS)
}

fn resolve_output(
    cache: &Path,
    p: &PipelineArgs,
    output: &str,
    registry: &Registry,
    machine: Machine,
) -> Result<(Store, ObjectRef)> {
    let graph = load_graph(p, registry)?;
    let Some((stage, out)) = output.rsplit_once('.') else {
        return Err(ConfigError(format!("`{output}` is not `stage.output`")).into());
    };
    let Some(i) = graph.index_of(stage) else {
        let ids: Vec<&str> = graph.pipeline().stages.iter().map(|s| s.id.as_str()).collect();
        return Err(
            ConfigError(format!("no stage `{stage}` in `{}`; {}", p.pipeline.display(), suggest(stage, ids))).into()
        );
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
    let pl = plan_of(&graph, registry, &store, machine);
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
