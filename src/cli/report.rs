//! `s2r-pipe report PIPELINE [--out DIR]`: the cached results as a page (see `s2r_pipe::page`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result};
use s2r_pipe::key::Machine;
use s2r_pipe::page;
use s2r_stages::Registry;

use super::args::PipelineArgs;
use super::{load_graph, open_store};

pub fn report(
    cache_dir: &Path,
    p: &PipelineArgs,
    out: Option<PathBuf>,
    registry: &Registry,
    machine: Machine,
) -> Result<ExitCode> {
    let start = Instant::now();
    let graph = load_graph(p, registry)?;
    let store = open_store(cache_dir)?;
    let dir = out.unwrap_or_else(|| PathBuf::from("report").join(&graph.pipeline().name));
    let pg = page::build(&graph, registry, &store, machine);
    page::write(&pg, &dir).with_context(|| format!("cannot write the report into `{}`", dir.display()))?;
    if !pg.missing.is_empty() {
        let shown: Vec<&str> = pg.missing.iter().take(8).map(String::as_str).collect();
        eprintln!(
            "{} of {} stages are not cached (run `s2r-pipe run {}`): {}{}",
            pg.missing.len(),
            graph.len(),
            p.pipeline.display(),
            shown.join(", "),
            if pg.missing.len() > shown.len() { ", …" } else { "" }
        );
    }
    println!(
        "wrote {} and {} ({} charts) in {:.2} s",
        dir.join("index.html").display(),
        dir.join("report.md").display(),
        pg.svgs,
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
