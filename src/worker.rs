//! Stages out of process (docs/design.md §8): the `process` executor runs each stage in a worker
//! subprocess (`s2r-pipe worker REQUEST RESPONSE`), so a libtorch abort, a segfault or an
//! out-of-memory kill fails that stage only, with the signal named.
//!
//! The worker reads a [`WorkerRequest`] (kind, params, input object refs with their producers'
//! matrix values, device, threads, key, the store's root), loads and verifies its inputs from the
//! store, runs the stage, puts its outputs content-addressed and atomically, and writes a
//! [`WorkerResponse`] (output refs or a typed failure). Progress goes to its stdout as JSON lines
//! (`{"progress": 0.4, "message": "…"}`), which the orchestrator forwards as progress events.
//! SIGTERM or SIGINT cancels: the stage stops at its next check and nothing is committed — the
//! orchestrator keeps keys, locks, the manifest (written last) and push.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use s2r_stages::api::context::ProgressFn;
use s2r_stages::api::device::Device;
use s2r_stages::Registry;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::exec::{peak_rss_bytes, Executed, Executor, Failure, InProcess, Request};
use crate::spec::{Resources, StageSpec};
use crate::store::{ObjectRef, Store};

/// One input of a [`WorkerRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerInput {
    /// The consumer's input name.
    pub name: String,
    /// The producing instance.
    pub from: String,
    /// The producer's matrix values.
    pub matrix: BTreeMap<String, Value>,
    /// The object.
    pub object: ObjectRef,
}

/// What a worker is asked to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerRequest {
    /// The store's root directory (shared with the orchestrator).
    pub store: PathBuf,
    /// The stage instance id.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Its params.
    pub params: Value,
    /// Its inputs, in binding order.
    pub inputs: Vec<WorkerInput>,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// CPU slots (libtorch's intra-op threads are capped at this).
    pub threads: usize,
    /// The cache key (for messages; the worker writes no manifest).
    pub key: String,
}

/// What a worker answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WorkerResponse {
    /// The outputs, in the store, and the worker's peak resident memory (bytes) when it answered.
    Outputs {
        /// Output name → object.
        outputs: BTreeMap<String, ObjectRef>,
        /// `getrusage`'s peak RSS of the worker process.
        #[serde(default)]
        peak_rss_bytes: Option<u64>,
    },
    /// Cancelled (SIGTERM/SIGINT): nothing stored that a manifest names.
    Cancelled,
    /// An input was corrupt or missing (quarantined): rerun its producer.
    BadInput {
        /// The producing instance.
        producer: String,
        /// What was wrong.
        error: String,
    },
    /// The stage failed.
    Failed(String),
}

fn device_text(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
    }
}

fn parse_device(s: &str) -> Device {
    s.strip_prefix("cuda:").and_then(|i| i.parse().ok()).map(Device::Cuda).unwrap_or(Device::Cpu)
}

/// The request for `req` on `store`.
pub fn request_of(req: &Request<'_>, store: &Store) -> WorkerRequest {
    WorkerRequest {
        // Absolute: a worker may start elsewhere (a Slurm job runs in its own directory).
        store: std::path::absolute(store.root()).unwrap_or_else(|_| store.root().to_path_buf()),
        id: req.spec.id.to_string(),
        kind: req.spec.kind.clone(),
        params: req.spec.params.clone(),
        inputs: req
            .inputs
            .iter()
            .map(|(name, from, matrix, object)| WorkerInput {
                name: name.clone(),
                from: from.clone(),
                matrix: matrix.clone(),
                object: object.clone(),
            })
            .collect(),
        device: device_text(req.device),
        threads: req.threads,
        key: req.key.to_string(),
    }
}

/// The worker's side: runs `request` and returns the response (the `worker` subcommand writes it).
pub fn serve(request: &WorkerRequest, registry: &Registry, cancel: &Arc<AtomicBool>) -> WorkerResponse {
    let store = match Store::open(&request.store) {
        Ok(s) => s,
        Err(e) => return WorkerResponse::Failed(format!("worker: cannot open the store: {e}")),
    };
    store.set_cancel(cancel.clone());
    let id = match request.id.parse() {
        Ok(id) => id,
        Err(e) => return WorkerResponse::Failed(format!("worker: bad stage id `{}`: {e}", request.id)),
    };
    if registry.get(&request.kind).is_none() {
        return WorkerResponse::Failed(format!("worker: unknown kind `{}`", request.kind));
    }
    let spec = StageSpec {
        id,
        kind: request.kind.clone(),
        params: request.params.clone(),
        inputs: Vec::new(),
        resources: Resources { cpu: request.threads, ..Default::default() },
        matrix: BTreeMap::new(),
        location: None,
    };
    let req = Request {
        spec: &spec,
        inputs: request
            .inputs
            .iter()
            .map(|i| (i.name.clone(), i.from.clone(), i.matrix.clone(), i.object.clone()))
            .collect(),
        device: parse_device(&request.device),
        threads: request.threads,
        key: &request.key,
    };
    let progress: ProgressFn = Arc::new(|f, m: &str| {
        println!("{}", serde_json::json!({"progress": f, "message": m}));
    });
    match InProcess.execute(&req, registry, &store, progress, cancel) {
        Ok(e) => WorkerResponse::Outputs { outputs: e.outputs, peak_rss_bytes: peak_rss_bytes() },
        Err(Failure::Cancelled) => WorkerResponse::Cancelled,
        Err(Failure::BadInput { producer, error }) => WorkerResponse::BadInput { producer, error },
        Err(Failure::Failed(e)) => WorkerResponse::Failed(e),
    }
}

/// A signal's name, for messages.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "a signal",
    }
}

/// Runs each stage in a worker subprocess.
pub struct Process {
    /// The worker binary (default: this executable; `S2R_WORKER` overrides).
    pub worker: PathBuf,
}

impl Process {
    /// A process executor using this executable (or `S2R_WORKER`) as the worker.
    pub fn new() -> Self {
        let worker = std::env::var_os("S2R_WORKER")
            .map(PathBuf::from)
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("s2r-pipe"));
        Self { worker }
    }
}

impl Default for Process {
    fn default() -> Self {
        Self::new()
    }
}

/// A worker's progress line (`{"progress": 0.4, "message": "…"}`) passed on to `progress`; whether
/// `line` was one.
pub fn forward_progress_line(line: &str, progress: &ProgressFn) -> bool {
    match serde_json::from_str::<Value>(line).ok().and_then(|v| Some((v["progress"].as_f64()?, v))) {
        Some((f, v)) => {
            progress(f, v["message"].as_str().unwrap_or(""));
            true
        }
        None => false,
    }
}

/// The last `n` non-empty lines of a worker's output that are not progress lines.
pub fn tail(path: &Path, n: usize) -> String {
    let mut s = String::new();
    let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut s));
    let lines: Vec<&str> = s
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("{\"message\"") && !l.starts_with("{\"progress\""))
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Executor for Process {
    fn execute(
        &self,
        req: &Request<'_>,
        _registry: &Registry,
        store: &Store,
        progress: ProgressFn,
        cancel: &Arc<AtomicBool>,
    ) -> Result<Executed, Failure> {
        let failed = |m: String| Failure::Failed(m);
        let dir = tempfile::Builder::new()
            .prefix("worker-")
            .tempdir_in(store.root().join("tmp"))
            .map_err(|e| failed(format!("cannot create the worker's directory: {e}")))?;
        // Locked while the worker runs, so a `cache gc` beside this run leaves the directory alone.
        let _lock = std::fs::File::create(dir.path().join(".lock"))
            .and_then(|f| f.lock().map(|()| f))
            .map_err(|e| failed(format!("cannot lock the worker's directory: {e}")))?;
        let (req_path, resp_path, err_path) =
            (dir.path().join("request.json"), dir.path().join("response.json"), dir.path().join("stderr"));
        let body = serde_json::to_vec_pretty(&request_of(req, store)).expect("requests serialize");
        std::fs::write(&req_path, body).map_err(|e| failed(format!("cannot write the worker's request: {e}")))?;
        let stderr = std::fs::File::create(&err_path).map_err(|e| failed(format!("cannot capture stderr: {e}")))?;
        let mut child = Command::new(&self.worker)
            .arg("worker")
            .arg(&req_path)
            .arg(&resp_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .env_remove("S2R_CACHE_DIR")
            .spawn()
            .map_err(|e| failed(format!("cannot start the worker `{}`: {e}", self.worker.display())))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                forward_progress_line(&line, &progress);
            }
        });
        let mut asked_to_stop = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {}
                Err(e) => return Err(failed(format!("cannot wait for the worker: {e}"))),
            }
            if cancel.load(Ordering::Relaxed) && !asked_to_stop {
                // SIGTERM: the worker cancels the stage and exits without committing anything.
                // SAFETY: kill(2) on our own child's pid.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                asked_to_stop = true;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = reader.join();
        if let Some(sig) = status.signal() {
            if asked_to_stop {
                return Err(Failure::Cancelled);
            }
            let hint = if sig == 9 { " (out of memory, or killed)" } else { "" };
            let t = tail(&err_path, 5);
            return Err(failed(format!(
                "the worker was killed by {} (signal {sig}){hint}{}",
                signal_name(sig),
                if t.is_empty() { String::new() } else { format!("; its last output:\n{t}") }
            )));
        }
        let response = std::fs::read(&resp_path).ok().and_then(|b| serde_json::from_slice::<WorkerResponse>(&b).ok());
        match response {
            Some(WorkerResponse::Outputs { outputs, peak_rss_bytes }) => {
                outputs_in(store, outputs).map(|outputs| Executed { outputs, peak_rss_bytes })
            }
            Some(WorkerResponse::Cancelled) => Err(Failure::Cancelled),
            Some(WorkerResponse::BadInput { producer, error }) => Err(Failure::BadInput { producer, error }),
            Some(WorkerResponse::Failed(e)) => Err(failed(e)),
            None => Err(failed(format!(
                "the worker exited with {} and no response; its last output:\n{}",
                status.code().map_or("no code".to_string(), |c| format!("code {c}")),
                tail(&err_path, 8)
            ))),
        }
    }
}

/// A worker's outputs, checked to be in this store before the scheduler records an entry naming
/// them (a worker that opened another store, or a filesystem that lost them, is a failure).
pub fn outputs_in(store: &Store, outputs: BTreeMap<String, ObjectRef>) -> Result<BTreeMap<String, ObjectRef>, Failure> {
    match outputs.iter().find(|(_, o)| !store.object_present(o)) {
        None => Ok(outputs),
        Some((name, o)) => Err(Failure::Failed(format!(
            "the worker returned output `{name}` ({}) but it is not in the cache `{}` (does the worker see the \
             same cache directory?)",
            o.hash,
            store.root().display()
        ))),
    }
}

/// The worker that runs libtorch stages for a build without libtorch: `S2R_TORCH_WORKER`, else
/// `s2r-pipe-worker` beside this executable (`scripts/quickstart.sh` builds it with the `torch`
/// feature). `None` in a torch build (it runs them itself) or when there is none.
pub fn torch_worker() -> Option<PathBuf> {
    if cfg!(feature = "torch") {
        return None;
    }
    if let Some(p) = std::env::var_os("S2R_TORCH_WORKER") {
        return Some(PathBuf::from(p));
    }
    let beside = std::env::current_exe().ok()?.parent()?.join("s2r-pipe-worker");
    beside.is_file().then_some(beside)
}

/// Sends the stages that run libtorch to a torch-built worker process and every other stage to
/// `inner`: the orchestrator then never loads libtorch (planning, validation, cache hits and the
/// non-torch stages all run without it).
pub struct Routed {
    /// Where the other stages run.
    pub inner: Arc<dyn Executor>,
    /// The torch worker.
    pub torch: Process,
}

impl Executor for Routed {
    fn execute(
        &self,
        req: &Request<'_>,
        registry: &Registry,
        store: &Store,
        progress: ProgressFn,
        cancel: &Arc<AtomicBool>,
    ) -> Result<Executed, Failure> {
        if registry.get(&req.spec.kind).is_some_and(|r| r.stage.needs_torch()) {
            self.torch.execute(req, registry, store, progress, cancel)
        } else {
            self.inner.execute(req, registry, store, progress, cancel)
        }
    }
}
