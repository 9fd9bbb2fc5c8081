//! The command line's arguments (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use s2r_pipe::show::Format;

/// Declarative, cached pipelines for sim-to-real interactive recommendation experiments.
#[derive(Parser)]
#[command(name = "s2r-pipe", version, about, long_about = None)]
pub struct Cli {
    /// The cache directory.
    #[arg(long, global = true, env = "S2R_CACHE_DIR", default_value = "cache")]
    pub cache_dir: PathBuf,
    /// A shared cache: `s3://bucket/prefix` (AWS_* variables for endpoint, region, credentials),
    /// `file:///dir` or a directory. Default: the pipeline's `cache: {remote: …}`.
    #[arg(long, global = true, env = "S2R_REMOTE")]
    pub remote: Option<String>,
    /// Print only failures.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args)]
pub struct PipelineArgs {
    /// The pipeline file (YAML).
    pub pipeline: PathBuf,
    /// Override a var (`name=value`) or a stage param (`stage.param=value`); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Stage targets of `run`, `plan` and `graph`.
#[derive(clap::Args)]
pub struct Targets {
    /// Only these stages — ids or globs (`'test_dqn_r[*]'`; a name without `[` matches every
    /// instance) — and what they need upstream.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Also every stage that depends on the targets (and what that needs).
    #[arg(long)]
    pub downstream: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run what is missing, in parallel, and print a summary.
    Run {
        #[command(flatten)]
        p: PipelineArgs,
        #[command(flatten)]
        t: Targets,
        /// Parallel CPU slots (default: the number of cores).
        #[arg(short, long)]
        jobs: Option<usize>,
        /// Write a JSON run report here.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Upload what the run produced to the remote cache.
        #[arg(long)]
        push: bool,
        /// Where stages run: in this process (default), each in a worker subprocess (a crash
        /// or out-of-memory kill then fails that stage only), or each as a Slurm batch job.
        /// Overrides the pipeline's `executor:`.
        #[arg(long, value_enum)]
        executor: Option<ExecutorKind>,
        #[command(flatten)]
        slurm: SlurmArgs,
    },
    /// Show what would run and why.
    Plan {
        #[command(flatten)]
        p: PipelineArgs,
        #[command(flatten)]
        t: Targets,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the stage graph.
    Graph {
        #[command(flatten)]
        p: PipelineArgs,
        #[command(flatten)]
        t: Targets,
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
    /// List the stage kinds and their params (`--files`: the source files a kind's code
    /// fingerprint covers, i.e. whose edits rerun it).
    Kinds {
        /// Only this kind.
        kind: Option<String>,
        /// List the source files of each kind's code fingerprint.
        #[arg(long)]
        files: bool,
    },
    /// Write a report of the pipeline's cached results: `DIR/index.html` (one self-contained
    /// page: inline SVG and CSS, no network, no JavaScript) and `DIR/report.md`. Nothing is run;
    /// stages not cached are listed as missing.
    Report {
        #[command(flatten)]
        p: PipelineArgs,
        /// The output directory (default: `report/<pipeline name>`).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Run one stage for a `process` executor: read REQUEST (JSON), write RESPONSE (internal).
    #[command(hide = true)]
    Worker {
        /// The request file.
        request: PathBuf,
        /// Where to write the response.
        response: PathBuf,
    },
    /// Print a shell completion script (`source <(s2r-pipe completions bash)`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Inspect and maintain the cache.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum ExecutorKind {
    /// Stages run on this process's thread pool.
    InProcess,
    /// Each stage runs in a worker subprocess (`s2r-pipe worker`).
    Process,
    /// Each stage runs as a Slurm batch job (the worker, on a node sharing the cache).
    Slurm,
}

/// `run`'s Slurm flags (over the pipeline's `executor:` section).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SlurmArgs {
    /// Slurm partition for the jobs.
    #[arg(long, help_heading = "Slurm")]
    pub partition: Option<String>,
    /// Slurm account for the jobs.
    #[arg(long, help_heading = "Slurm")]
    pub account: Option<String>,
    /// One more `sbatch` argument (repeatable), e.g. `--slurm-arg=--qos=short`.
    #[arg(long = "slurm-arg", value_name = "ARG", allow_hyphen_values = true, help_heading = "Slurm")]
    pub slurm_args: Vec<String>,
    /// Resubmissions of a job that ends NODE_FAIL, PREEMPTED or BOOT_FAIL (default 2).
    #[arg(long, help_heading = "Slurm")]
    pub retries: Option<u32>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

#[derive(Subcommand)]
pub enum CacheCommand {
    /// List cache entries.
    Ls,
    /// Re-hash every object; remove corrupt ones and the entries that name them.
    Verify,
    /// Evict entries (keep rules and bounds), then remove unreferenced objects and temp files.
    ///
    /// With pipelines, the entries they currently use are always kept and, without bounds, every
    /// other entry goes. `--max-age` evicts unkept entries older than the age; `--max-size`
    /// evicts the oldest unkept entries until the store fits. Safe beside running `run`s: while
    /// one is live, nothing younger than `--grace` is removed, nor a live stage's scratch dir.
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
        /// While a run is live, keep unreferenced objects and entries younger than this (default 1h).
        #[arg(long, value_parser = parse_age)]
        grace: Option<std::time::Duration>,
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

pub fn parse_age(s: &str) -> Result<std::time::Duration, String> {
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

pub fn parse_size(s: &str) -> Result<u64, String> {
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
