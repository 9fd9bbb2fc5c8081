//! The Slurm executor (docs/design.md §8): each stage that misses the cache becomes one `sbatch`
//! job running the worker (`s2r-pipe worker REQUEST RESPONSE`) on a node that shares the store.
//!
//! - `resources` map to `--cpus-per-task`, `--gres=gpu:N`, `--mem` and `--time`; partition,
//!   account and extra `sbatch` arguments come from the CLI or the pipeline's `executor:` section.
//! - One poller thread asks `squeue` about every job of the run in one call per poll (not one per
//!   job); each stage waits on it, and shows PENDING (with Slurm's reason) or RUNNING as progress,
//!   then the worker's own progress lines (tailed from the job's log).
//! - A job that ends FAILED, TIMEOUT, CANCELLED (by someone else), OUT_OF_MEMORY fails its stage
//!   with the state, the exit code or signal and the tail of its log; NODE_FAIL, PREEMPTED and
//!   BOOT_FAIL are resubmitted up to `retries` times. The scheduler writes an entry only for outputs
//!   a finished worker returned, so a job that did not finish never has one.
//! - Cancel (Ctrl-C): every job of the run is `scancel`led; the stages come back aborted.
//! - The controller unreachable (restarting): submissions and polls are retried until
//!   `unreachable` has passed, then the stage fails with the controller's error.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use s2r_stages::api::context::ProgressFn;
use s2r_stages::api::device::Device;
use s2r_stages::Registry;
use serde_json::Value;

use crate::event::STATE_CHANGE;
use crate::exec::{Executed, Executor, Failure, Request};
use crate::spec::slurm_time;
use crate::store::Store;
use crate::worker::{forward_progress_line, outputs_in, request_of, signal_name, tail, torch_worker, WorkerResponse};

/// How jobs are submitted and watched.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// More `sbatch` arguments, as given.
    pub args: Vec<String>,
    /// Resubmissions after NODE_FAIL, PREEMPTED or BOOT_FAIL.
    pub retries: u32,
    /// Time between polls.
    pub poll: Duration,
    /// How long the controller may be unreachable before a stage fails.
    pub unreachable: Duration,
    /// GPU jobs at once (the cluster's GPUs this run may hold; 0: stages asking for a GPU run on
    /// CPU, as on a machine without one). It decides the device class in keys, as a machine's
    /// GPUs do.
    pub gpus: usize,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        Self {
            partition: None,
            account: None,
            args: Vec::new(),
            retries: 2,
            poll: Duration::from_millis(500),
            unreachable: Duration::from_secs(300),
            gpus: 0,
        }
    }
}

impl SlurmOptions {
    /// The pipeline's `executor: {kind: slurm, partition, account, args, retries, poll, unreachable,
    /// gpus}`
    /// over the defaults (the CLI's flags go over these).
    pub fn from_section(section: Option<&Value>) -> Result<Self, String> {
        let mut o = Self::default();
        let Some(Value::Object(m)) = section else { return Ok(o) };
        let text = |k: &str| -> Result<Option<String>, String> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v) => Err(format!("`executor.{k}` must be a string, not `{v}`")),
            }
        };
        let secs = |k: &str| -> Result<Option<Duration>, String> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e7)
                    .map(|s| Some(Duration::from_secs_f64(s)))
                    .ok_or_else(|| format!("`executor.{k}` must be a positive number of seconds, not `{v}`")),
            }
        };
        for k in m.keys() {
            if !["kind", "partition", "account", "args", "retries", "poll", "unreachable", "gpus"].contains(&k.as_str())
            {
                return Err(format!(
                    "unknown field `executor.{k}` (slurm takes partition, account, args, retries, poll, unreachable, gpus)"
                ));
            }
        }
        o.partition = text("partition")?;
        o.account = text("account")?;
        if let Some(a) = m.get("args") {
            o.args = match a {
                Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
                Value::Array(xs) => xs
                    .iter()
                    .map(|x| {
                        x.as_str().map(str::to_string).ok_or_else(|| format!("`executor.args`: `{x}` is not a string"))
                    })
                    .collect::<Result<_, _>>()?,
                v => return Err(format!("`executor.args` must be a list of strings, not `{v}`")),
            };
        }
        if let Some(r) = m.get("retries") {
            o.retries = r
                .as_u64()
                .filter(|r| *r <= 100)
                .ok_or_else(|| format!("`executor.retries` must be 0–100, not `{r}`"))? as u32;
        }
        if let Some(g) = m.get("gpus") {
            o.gpus = g
                .as_u64()
                .filter(|g| *g <= 10_000)
                .ok_or_else(|| format!("`executor.gpus` must be a number of GPUs, not `{g}`"))?
                as usize;
        }
        if let Some(p) = secs("poll")? {
            o.poll = p;
        }
        if let Some(u) = secs("unreachable")? {
            o.unreachable = u;
        }
        Ok(o)
    }
}

/// A job's state as the last poll saw it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    state: String,
    reason: String,
}

#[derive(Default)]
struct PollState {
    /// Jobs being waited for.
    watched: Vec<String>,
    /// What the last successful poll said (a watched job absent from it is `None`).
    seen: HashMap<String, Option<Seen>>,
    /// The controller's last error and since when it has been failing.
    failing: Option<(Instant, String)>,
    /// Successful polls so far.
    generation: u64,
}

/// One thread, one `squeue` per poll for every watched job.
struct Poller {
    state: Mutex<PollState>,
    cv: Condvar,
    interval: Duration,
}

impl Poller {
    fn start(interval: Duration) -> Arc<Self> {
        let p = Arc::new(Self { state: Mutex::new(PollState::default()), cv: Condvar::new(), interval });
        let weak: Weak<Self> = Arc::downgrade(&p);
        std::thread::Builder::new()
            .name("s2r-slurm-poll".into())
            .spawn(move || loop {
                let Some(p) = weak.upgrade() else { return };
                let ids = p.state.lock().expect("poll state").watched.clone();
                if !ids.is_empty() {
                    let answer = squeue(&ids);
                    let mut st = p.state.lock().expect("poll state");
                    match answer {
                        Ok(listed) => {
                            for id in &ids {
                                st.seen.insert(id.clone(), listed.get(id).cloned());
                            }
                            st.failing = None;
                            st.generation += 1;
                        }
                        Err(e) => {
                            let since = st.failing.as_ref().map_or_else(Instant::now, |f| f.0);
                            st.failing = Some((since, e));
                        }
                    }
                    p.cv.notify_all();
                }
                let interval = p.interval;
                drop(p);
                std::thread::sleep(interval);
            })
            .expect("poll thread");
        p
    }

    fn watch(&self, id: &str) {
        let mut st = self.state.lock().expect("poll state");
        st.watched.push(id.to_string());
    }

    fn unwatch(&self, id: &str) {
        let mut st = self.state.lock().expect("poll state");
        st.watched.retain(|w| w != id);
        st.seen.remove(id);
    }
}

/// `squeue` for `ids` in one call: id → state and reason, for the jobs Slurm still knows.
fn squeue(ids: &[String]) -> Result<HashMap<String, Seen>, String> {
    let out = Command::new("squeue")
        .args(["-h", "-t", "all", "-o", "%i|%T|%r", "-j", &ids.join(",")])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run squeue: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // Every id unknown (finished long ago, or a lost state): an empty answer, not an outage.
        if stderr.contains("Invalid job id") {
            return Ok(HashMap::new());
        }
        return Err(format!("squeue: {}", stderr.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.trim().splitn(3, '|');
            let (id, state, reason) = (f.next()?, f.next()?, f.next().unwrap_or(""));
            Some((id.to_string(), Seen { state: state.to_string(), reason: reason.to_string() }))
        })
        .collect())
}

/// The job's exit code and signal, from `scontrol show job` (once, for a failed job).
fn exit_of(job: &str) -> Option<(i32, i32)> {
    let out = Command::new("scontrol").args(["show", "job", "-o", job]).stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = text.split_whitespace().find_map(|f| f.strip_prefix("ExitCode="))?;
    let (code, sig) = field.split_once(':')?;
    Some((code.parse().ok()?, sig.parse().ok()?))
}

fn scancel(jobs: &[String]) {
    if !jobs.is_empty() {
        let _ = Command::new("scancel").args(jobs).stdin(Stdio::null()).stderr(Stdio::null()).status();
    }
}

const TERMINAL: &[&str] = &[
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "OUT_OF_MEMORY",
    "REVOKED",
    "SPECIAL_EXIT",
];

/// States that say nothing about the stage: the job is resubmitted (up to `retries`).
const RETRIED: &[&str] = &["NODE_FAIL", "PREEMPTED", "BOOT_FAIL"];

/// Runs each stage as a Slurm batch job.
pub struct Slurm {
    opts: SlurmOptions,
    /// The worker for stages without libtorch (default: this executable; `S2R_WORKER` overrides).
    lean: PathBuf,
    /// The worker for libtorch stages (this executable in a torch build, else the torch worker).
    torch: Option<PathBuf>,
    poller: Arc<Poller>,
    /// Jobs of this run not yet finished (for cancel).
    live: Mutex<Vec<String>>,
}

impl Slurm {
    /// A Slurm executor: `sbatch` must be on PATH.
    pub fn new(opts: SlurmOptions) -> Result<Self, String> {
        let ok = Command::new("sbatch").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if !ok.is_ok_and(|s| s.success()) {
            return Err("`--executor slurm` needs Slurm's `sbatch` on PATH (scripts/setup-slurm.sh starts a \
                        single-node Slurm on this machine)"
                .into());
        }
        let this = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
        let lean = std::env::var_os("S2R_WORKER").map(PathBuf::from).unwrap_or_else(|| this.clone());
        let torch = if cfg!(feature = "torch") { Some(lean.clone()) } else { torch_worker() };
        let poller = Poller::start(opts.poll);
        Ok(Self { opts, lean, torch, poller, live: Mutex::new(Vec::new()) })
    }

    fn sbatch(&self, req: &Request<'_>, script: &Path, log: &Path, cancel: &AtomicBool) -> Result<String, Failure> {
        let r = &req.spec.resources;
        let mut cmd = Command::new("sbatch");
        cmd.arg("--parsable")
            .arg(format!("--job-name=s2r:{}", req.spec.id))
            .arg(format!("--output={}", log.display()))
            .arg(format!("--chdir={}", script.parent().expect("in a dir").display()))
            .arg(format!("--cpus-per-task={}", req.threads.max(1)))
            .arg("--ntasks=1")
            .arg("--no-requeue");
        if r.gpu > 0 {
            cmd.arg(format!("--gres=gpu:{}", r.gpu));
        }
        if let Some(mb) = r.mem_mb {
            cmd.arg(format!("--mem={mb}M"));
        }
        if let Some(s) = r.time_s {
            cmd.arg(format!("--time={}", slurm_time(s)));
        }
        if let Some(p) = &self.opts.partition {
            cmd.arg(format!("--partition={p}"));
        }
        if let Some(a) = &self.opts.account {
            cmd.arg(format!("--account={a}"));
        }
        cmd.args(&self.opts.args).arg(script).stdin(Stdio::null());
        let start = Instant::now();
        let mut wait = Duration::from_millis(200);
        loop {
            let out = cmd.output().map_err(|e| Failure::Failed(format!("cannot run sbatch: {e}")))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if out.status.success() {
                let id = stdout.trim().split(';').next().unwrap_or("").to_string();
                if id.is_empty() {
                    return Err(Failure::Failed(format!("sbatch printed no job id: {stdout} {stderr}")));
                }
                return Ok(id);
            }
            // The controller down or busy: try again; a rejected job (bad partition, resources
            // that no node has) fails at once.
            let transient = ["Unable to contact", "Socket timed out", "Connection refused", "Zero Bytes", "try again"]
                .iter()
                .any(|t| stderr.contains(t));
            if !transient || start.elapsed() > self.opts.unreachable {
                return Err(Failure::Failed(format!("sbatch refused the job: {stderr}")));
            }
            if cancel.load(Ordering::Relaxed) {
                return Err(Failure::Cancelled);
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }
}

/// Forwards the worker's new progress lines in the job log, from `offset` on.
fn forward_progress(log: &Path, offset: &mut u64, progress: &ProgressFn) {
    let Ok(mut f) = std::fs::File::open(log) else { return };
    if f.seek(SeekFrom::Start(*offset)).is_err() {
        return;
    }
    let mut s = String::new();
    if f.read_to_string(&mut s).is_err() {
        return;
    }
    // Only whole lines.
    let Some(end) = s.rfind('\n') else { return };
    for line in s[..end].lines() {
        forward_progress_line(line, progress);
    }
    *offset += end as u64 + 1;
}

fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

impl Executor for Slurm {
    fn execute(
        &self,
        req: &Request<'_>,
        registry: &Registry,
        store: &Store,
        progress: ProgressFn,
        cancel: &Arc<AtomicBool>,
    ) -> Result<Executed, Failure> {
        let failed = |m: String| Failure::Failed(m);
        let worker = if registry.get(&req.spec.kind).is_some_and(|r| r.stage.needs_torch()) {
            self.torch.clone().ok_or_else(|| {
                failed(format!(
                    "`{}` needs libtorch and there is no torch worker (build it with `scripts/quickstart.sh`, or set \
                     S2R_TORCH_WORKER)",
                    req.spec.kind
                ))
            })?
        } else {
            self.lean.clone()
        };
        let dir = tempfile::Builder::new()
            .prefix("slurm-")
            .tempdir_in(store.root().join("tmp"))
            .map_err(|e| failed(format!("cannot create the job's directory: {e}")))?;
        // Locked while the job runs, so a `cache gc` beside this run leaves the directory alone.
        let _lock = std::fs::File::create(dir.path().join(".lock"))
            .and_then(|f| f.lock().map(|()| f))
            .map_err(|e| failed(format!("cannot lock the job's directory: {e}")))?;
        let (req_path, resp_path, script, log) = (
            dir.path().join("request.json"),
            dir.path().join("response.json"),
            dir.path().join("job.sh"),
            dir.path().join("job.log"),
        );
        let mut request = request_of(req, store);
        // On the node, the job's GPUs are numbered from 0 (CUDA_VISIBLE_DEVICES).
        if matches!(req.device, Device::Cuda(_)) {
            request.device = "cuda:0".into();
        }
        let body = serde_json::to_vec_pretty(&request).expect("requests serialize");
        std::fs::write(&req_path, body).map_err(|e| failed(format!("cannot write the request: {e}")))?;
        let sh = format!(
            "#!/bin/sh\n# {} ({}), key {}\nunset S2R_CACHE_DIR\nexec {} worker {} {}\n",
            req.spec.id,
            req.spec.kind,
            req.key,
            quote(&worker),
            quote(&req_path),
            quote(&resp_path)
        );
        std::fs::write(&script, sh).map_err(|e| failed(format!("cannot write the job script: {e}")))?;
        let mut attempt = 0u32;
        loop {
            let _ = std::fs::remove_file(&resp_path);
            let job = self.sbatch(req, &script, &log, cancel)?;
            self.live.lock().expect("live jobs").push(job.clone());
            self.poller.watch(&job);
            let outcome = self.wait(&job, &log, &progress, cancel);
            self.poller.unwatch(&job);
            self.live.lock().expect("live jobs").retain(|j| j != &job);
            let (state, reason) = match outcome {
                Waited::Ended(state, reason) => (state, reason),
                Waited::Cancelled => return Err(Failure::Cancelled),
                Waited::Unreachable(e) => {
                    scancel(std::slice::from_ref(&job));
                    return Err(failed(format!(
                        "the Slurm controller has not answered for {:.0} s (job {job} cancelled): {e}",
                        self.opts.unreachable.as_secs_f64()
                    )));
                }
            };
            let read =
                || std::fs::read(&resp_path).ok().and_then(|b| serde_json::from_slice::<WorkerResponse>(&b).ok());
            let mut response = read();
            // A shared filesystem may show the worker's response a little after the job ended.
            let until = Instant::now() + Duration::from_secs(30);
            while response.is_none() && state == "COMPLETED" && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(200));
                response = read();
            }
            if RETRIED.contains(&state.as_str()) && attempt < self.opts.retries {
                attempt += 1;
                tracing::warn!(
                    "`{}`: Slurm job {job} {state}; resubmitting ({attempt}/{})",
                    req.spec.id,
                    self.opts.retries
                );
                progress(
                    0.0,
                    &format!("{STATE_CHANGE}Slurm job {job} {state}: resubmitted ({attempt}/{})", self.opts.retries),
                );
                continue;
            }
            let what = |extra: String| {
                let t = tail(&log, 8);
                let reason = if reason.is_empty() || reason == "None" { String::new() } else { format!(" ({reason})") };
                failed(format!(
                    "Slurm job {job} {state}{reason}{extra}{}",
                    if t.is_empty() { String::new() } else { format!("; the end of its log:\n{t}") }
                ))
            };
            return match (state.as_str(), response) {
                ("COMPLETED", Some(WorkerResponse::Outputs { outputs, peak_rss_bytes })) => {
                    outputs_in(store, outputs).map(|outputs| Executed { outputs, peak_rss_bytes })
                }
                (_, Some(WorkerResponse::BadInput { producer, error })) => Err(Failure::BadInput { producer, error }),
                (_, Some(WorkerResponse::Failed(e))) => Err(failed(e)),
                (_, Some(WorkerResponse::Cancelled)) if cancel.load(Ordering::Relaxed) => Err(Failure::Cancelled),
                ("TIMEOUT", _) => Err(what(
                    req.spec
                        .resources
                        .time_s
                        .map(|s| format!(": over its time limit of {}", slurm_time(s)))
                        .unwrap_or_default(),
                )),
                ("GONE", _) => Err(what(": Slurm no longer knows the job and it left no response".into())),
                (_, r) => {
                    let exit = exit_of(&job).map_or(String::new(), |(code, sig)| match (code, sig) {
                        (_, s) if s > 0 => format!(", killed by {} (signal {s})", signal_name(s)),
                        (c, _) => format!(", exit code {c}"),
                    });
                    let retried = if attempt > 0 { format!(" after {attempt} resubmissions") } else { String::new() };
                    let norep = if r.is_none() { ", no response from the worker" } else { "" };
                    Err(what(format!("{exit}{norep}{retried}")))
                }
            };
        }
    }
}

enum Waited {
    /// A terminal state (or `GONE`: Slurm forgot the job) and its reason.
    Ended(String, String),
    /// Asked to stop: the job was cancelled.
    Cancelled,
    /// The controller did not answer for too long.
    Unreachable(String),
}

impl Slurm {
    fn wait(&self, job: &str, log: &Path, progress: &ProgressFn, cancel: &AtomicBool) -> Waited {
        let mut shown: Option<Seen> = None;
        let mut offset = 0u64;
        let mut missing = 0u32;
        let mut gen = 0u64;
        loop {
            if cancel.load(Ordering::Relaxed) {
                // Cancel every job of the run at once, then wait (bounded) for this one to end.
                let live = self.live.lock().expect("live jobs").clone();
                scancel(&live);
                let until = Instant::now() + Duration::from_secs(30);
                while Instant::now() < until {
                    let st = self.poller.state.lock().expect("poll state");
                    match st.seen.get(job) {
                        Some(Some(s)) if TERMINAL.contains(&s.state.as_str()) => break,
                        Some(None) => break,
                        _ => {}
                    }
                    let _ = self.poller.cv.wait_timeout(st, Duration::from_millis(200));
                }
                return Waited::Cancelled;
            }
            let seen = {
                let st = self.poller.state.lock().expect("poll state");
                let (st, _) = self.poller.cv.wait_timeout(st, Duration::from_millis(100)).expect("poll state");
                if let Some((since, e)) = &st.failing {
                    if since.elapsed() > self.opts.unreachable {
                        return Waited::Unreachable(e.clone());
                    }
                }
                if st.generation == gen {
                    continue;
                }
                gen = st.generation;
                st.seen.get(job).cloned()
            };
            forward_progress(log, &mut offset, progress);
            match seen {
                // Not yet in a poll's answer.
                None => {}
                // Absent from an answer: a job just submitted may not be listed yet; after a few
                // polls, Slurm has forgotten it.
                Some(None) => {
                    missing += 1;
                    if missing >= 5 {
                        return Waited::Ended("GONE".into(), String::new());
                    }
                }
                Some(Some(s)) => {
                    missing = 0;
                    if TERMINAL.contains(&s.state.as_str()) {
                        forward_progress(log, &mut offset, progress);
                        return Waited::Ended(s.state, s.reason);
                    }
                    if shown.as_ref() != Some(&s) {
                        let msg = match (s.state.as_str(), s.reason.as_str()) {
                            ("PENDING", r) if !r.is_empty() && r != "None" => {
                                format!("{STATE_CHANGE}Slurm job {job} PENDING ({r})")
                            }
                            (st, _) => format!("{STATE_CHANGE}Slurm job {job} {st}"),
                        };
                        progress(0.0, &msg);
                        shown = Some(s);
                    }
                }
            }
        }
    }
}
