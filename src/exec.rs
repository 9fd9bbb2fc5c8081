//! The executor: runs a sealed graph on a rayon pool with CPU/GPU slots.
//!
//! A stage is started when all its dependencies are done. Its key is computed from the content
//! hashes of its inputs (early cutoff), a hit is `cached` without reading any input, a miss takes
//! the key's lock, runs, stores objects and then the manifest. A failure stops only its dependents.
//! An input object that fails verification is removed with its producer's entry, and the producer
//! reruns before the consumer tries again.

use std::collections::{BTreeMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{unbounded, Sender};
use s2r_stages::api::context::ProgressFn;
use s2r_stages::api::device::{cap_threads, Device};
use s2r_stages::{Context, Inputs, Registry};
use serde_json::Value;

use crate::event::{Event, Sink, StageResult, Status};
use crate::graph::{Built, Graph};
use crate::key::{fingerprint, Fingerprint, Machine};
use crate::spec::StageSpec;
use crate::store::remote::Remote;
use crate::store::{Manifest, ObjectRef, Store, StoreError};

/// How to execute.
#[derive(Clone)]
pub struct ExecOptions {
    /// CPU slots (threads in the pool).
    pub jobs: usize,
    /// The machine: its GPUs are the GPU slots (0 = stages asking for a GPU run on CPU) and
    /// decide the device class in keys.
    pub machine: Machine,
    /// Set to stop: running stages are abandoned and nothing partial is cached.
    pub cancel: Arc<AtomicBool>,
    /// A shared cache read through on local misses.
    pub remote: Option<Arc<Remote>>,
    /// Upload what the run produced to `remote`.
    pub push: bool,
    /// Where stages run (default: in this process).
    pub executor: Arc<dyn Executor>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        Self {
            jobs: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            machine: Machine::detect(),
            cancel: Arc::new(AtomicBool::new(false)),
            remote: None,
            push: false,
            executor: Arc::new(InProcess),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Pipeline name.
    pub pipeline: String,
    /// One result per stage, in pipeline order.
    pub results: Vec<StageResult>,
    /// Wall time.
    pub seconds: f64,
    /// Objects read (and verified) from the store.
    pub objects_read: u64,
    /// Bytes read from the store.
    pub bytes_read: u64,
    /// Whether the run was interrupted.
    pub interrupted: bool,
}

impl RunSummary {
    /// Whether any stage failed, was skipped or aborted.
    pub fn failed(&self) -> bool {
        self.interrupted
            || self.results.iter().any(|r| {
                matches!(r.status, Status::Failed | Status::Skipped | Status::Aborted) || r.push_error.is_some()
            })
    }

    /// Stages with a given status.
    pub fn with_status(&self, s: Status) -> Vec<&str> {
        self.results.iter().filter(|r| r.status == s).map(|r| r.id.as_str()).collect()
    }
}

enum Outcome {
    Done(StageResult),
    /// An input object was corrupt or missing: rerun its producer, then this stage.
    BadInput {
        producer: String,
        error: String,
        seconds: f64,
    },
}

enum Msg {
    Progress(usize, f64, String),
    Finished(usize, Box<Outcome>),
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// One stage run as the scheduler hands it to an [`Executor`]: the kind, params, input object
/// refs (with each producer's matrix values), device, threads and key. Everything an executor
/// needs to run the stage in this process, another process or another machine sharing the store.
pub struct Request<'a> {
    /// The instance (id, kind, params, bindings).
    pub spec: &'a StageSpec,
    /// Input name → the producer's id, matrix values and output object, in binding order.
    pub inputs: Vec<(String, String, BTreeMap<String, Value>, ObjectRef)>,
    /// Where it runs.
    pub device: Device,
    /// CPU slots it holds (libtorch's intra-op threads are capped at this).
    pub threads: usize,
    /// Its cache key.
    pub key: &'a str,
}

/// Why an executor did not return outputs.
pub enum Failure {
    /// The run was interrupted; nothing was stored.
    Cancelled,
    /// An input object was corrupt or missing (it has been quarantined): rerun its producer.
    BadInput {
        /// The producing stage instance.
        producer: String,
        /// What was wrong.
        error: String,
    },
    /// The stage (or storing its outputs) failed.
    Failed(String),
}

/// Carries out a [`Request`]: loads and verifies the inputs from the store, runs the stage, checks
/// its declared outputs and puts them content-addressed, returning their refs. The scheduler keeps
/// keys, locks, the manifest (written last), remote pull/push and events (docs/design.md §8).
pub trait Executor: Send + Sync {
    /// Runs `req`; progress goes to `progress`, `cancel` asks it to stop.
    fn execute(
        &self,
        req: &Request<'_>,
        registry: &Registry,
        store: &Store,
        progress: ProgressFn,
        cancel: &Arc<AtomicBool>,
    ) -> Result<Executed, Failure>;
}

/// What an [`Executor`] returns for a stage that ran: its outputs, in the store, and what it cost.
pub struct Executed {
    /// Output name → object.
    pub outputs: BTreeMap<String, ObjectRef>,
    /// The peak resident memory of the process that ran the stage and nothing else (a worker), in
    /// bytes; `None` in process, where stages share the peak.
    pub peak_rss_bytes: Option<u64>,
}

impl Executed {
    /// Outputs of a stage run in process (no memory of its own to report).
    pub fn in_process(outputs: BTreeMap<String, ObjectRef>) -> Self {
        Self { outputs, peak_rss_bytes: None }
    }
}

/// This process's peak resident set size so far (`getrusage`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    // SAFETY: getrusage fills the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return None;
    }
    // Linux reports kilobytes, macOS bytes.
    let unit = if cfg!(target_os = "macos") { 1 } else { 1024 };
    u64::try_from(u.ru_maxrss).ok().map(|v| v * unit)
}

/// Runs stages on this process's rayon pool (panics are caught and reported as failures).
pub struct InProcess;

impl Executor for InProcess {
    fn execute(
        &self,
        req: &Request<'_>,
        registry: &Registry,
        store: &Store,
        progress: ProgressFn,
        cancel: &Arc<AtomicBool>,
    ) -> Result<Executed, Failure> {
        let spec = req.spec;
        // Load inputs (verified).
        let mut inputs = Inputs::default();
        for (name, from, matrix, o) in &req.inputs {
            match store.get(o) {
                Ok(a) => inputs.push_instance(name.clone(), from.clone(), matrix.clone(), a),
                Err(e @ (StoreError::Corrupt { .. } | StoreError::Missing(_))) => {
                    store.quarantine(&o.hash, &o.ext);
                    return Err(Failure::BadInput { producer: from.clone(), error: e.to_string() });
                }
                Err(e) => return Err(Failure::Failed(e.to_string())),
            }
        }
        let reg = registry.get(&spec.kind).expect("kinds are validated at load");
        let scratch = store.scratch().map_err(|e| Failure::Failed(format!("cannot create a scratch dir: {e}")))?;
        let ctx = Context::new(scratch.path().to_path_buf(), req.threads, req.device, progress, cancel.clone());
        cap_threads(req.threads);
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| reg.stage.run(&ctx, &inputs, &spec.params)));
        drop(inputs);
        let outputs = match run {
            Ok(Ok(o)) => o,
            Ok(Err(s2r_stages::StageError::Cancelled)) => return Err(Failure::Cancelled),
            Ok(Err(e)) => return Err(Failure::Failed(e.to_string())),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return Err(Failure::Failed(format!("stage panicked: {msg}")));
            }
        };
        if cancel.load(Ordering::Relaxed) {
            return Err(Failure::Cancelled);
        }
        let declared: Vec<&str> = reg.stage.outputs().iter().map(|o| o.name).collect();
        for d in &declared {
            if !outputs.contains_key(*d) {
                return Err(Failure::Failed(format!("stage produced no output `{d}`")));
            }
        }
        if let Some(extra) = outputs.keys().find(|k| !declared.contains(&k.as_str())) {
            return Err(Failure::Failed(format!("stage produced an undeclared output `{extra}`")));
        }
        let mut objects = BTreeMap::new();
        for (name, artifact) in &outputs {
            let r = store.put(&format!("{}.{name}", spec.id), artifact).map_err(|e| Failure::Failed(e.to_string()))?;
            objects.insert(name.clone(), r);
        }
        Ok(Executed::in_process(objects))
    }
}

/// One stage's way through the scheduler: key → [`Job::lookup`] (local entry, lock, remote) →
/// the [`Executor`] → [`Job::commit`] (manifest last, push).
struct Job<'a> {
    graph: &'a Graph<Built>,
    registry: &'a Registry,
    store: &'a Store,
    opts: &'a ExecOptions,
}

/// A cache hit: the entry's outputs, recorded as this pipeline's last run of the stage.
fn hit(store: &Store, pipeline: &str, spec: &StageSpec, r: &mut StageResult, m: Manifest) {
    r.status = Status::Cached;
    r.outputs = m.outputs.iter().map(|(k, o)| (k.clone(), o.hash.clone())).collect();
    r.objects = m.outputs.clone();
    r.device = Some(m.fingerprint.device.clone());
    if store.last(pipeline, spec.id.as_str()).is_none_or(|l| l.key != m.key) {
        let mut mine = m;
        mine.stage_id = spec.id.to_string();
        mine.pipeline = pipeline.to_string();
        let _ = store.set_last(&mine);
    }
}

impl Job<'_> {
    fn run(
        &self,
        idx: usize,
        force: bool,
        upstream: BTreeMap<String, BTreeMap<String, ObjectRef>>,
        device: Device,
        threads: usize,
        tx: &Sender<Msg>,
    ) -> Outcome {
        let start = Instant::now();
        let spec = self.graph.stage(idx);
        let mut result = StageResult::empty(spec, Status::Failed, None);
        result.note = force.then(|| "rerun: an output of this stage was corrupt or missing".to_string());
        let fail = |mut r: StageResult, e: String| {
            r.error = Some(e);
            r.seconds = start.elapsed().as_secs_f64();
            Outcome::Done(r)
        };
        let fp = match fingerprint(
            self.graph,
            self.registry,
            self.store,
            idx,
            &|id| upstream.get(id).cloned(),
            self.opts.machine,
        ) {
            Ok(fp) => fp,
            Err(e) => return fail(result, e),
        };
        let key = fp.key();
        result.key = Some(key.clone());
        // Held until the manifest is written: one run of a key at a time, across processes.
        let _lock = match self.lookup(spec, &key, force, &mut result) {
            Ok(Lookup::Done) => {
                result.seconds = start.elapsed().as_secs_f64();
                return Outcome::Done(result);
            }
            Ok(Lookup::Run(lock)) => lock,
            Err(e) => return fail(result, e),
        };
        let request = Request {
            spec,
            inputs: spec
                .inputs
                .iter()
                .map(|b| {
                    let matrix = self.graph.index_of(b.from.as_str()).map(|p| self.graph.stage(p).matrix.clone());
                    (
                        b.input.clone(),
                        b.from.to_string(),
                        matrix.unwrap_or_default(),
                        upstream[b.from.as_str()][&b.output].clone(),
                    )
                })
                .collect(),
            device,
            threads,
            key: &key,
        };
        let txp = tx.clone();
        let progress: ProgressFn = Arc::new(move |f, m: &str| {
            let _ = txp.send(Msg::Progress(idx, f, m.to_string()));
        });
        result.device = Some(device.class().to_string());
        let objects = match self.opts.executor.execute(&request, self.registry, self.store, progress, &self.opts.cancel)
        {
            Ok(e) => {
                result.peak_rss_bytes = e.peak_rss_bytes;
                e.outputs
            }
            Err(Failure::Cancelled) => {
                result.status = Status::Aborted;
                return fail(result, "interrupted".into());
            }
            Err(Failure::BadInput { producer, error }) => {
                return Outcome::BadInput { producer, error, seconds: start.elapsed().as_secs_f64() }
            }
            Err(Failure::Failed(e)) => return fail(result, e),
        };
        let seconds = start.elapsed().as_secs_f64();
        match self.commit(spec, key, fp, objects, seconds, &mut result) {
            Ok(()) => Outcome::Done(result),
            Err(e) => fail(result, e),
        }
    }

    /// A local entry (before and after taking the key's lock: another process may have just
    /// finished it) or a verified pull from the remote is a hit; otherwise the lock to run under.
    fn lookup(&self, spec: &StageSpec, key: &str, force: bool, result: &mut StageResult) -> Result<Lookup, String> {
        let pipeline = &self.graph.pipeline().name;
        let local = |r: &mut StageResult| -> Result<bool, StoreError> {
            if let Some(m) = self.store.entry(key)? {
                if self.store.objects_present(&m) {
                    hit(self.store, pipeline, spec, r, m);
                    return Ok(true);
                }
                self.store.remove_entry(key)?;
            }
            Ok(false)
        };
        if force {
            self.store.remove_entry(key).map_err(|e| e.to_string())?;
        } else if local(result).map_err(|e| e.to_string())? {
            return Ok(Lookup::Done);
        }
        let lock = self.store.lock(key).map_err(|e| e.to_string())?;
        if local(result).map_err(|e| e.to_string())? {
            return Ok(Lookup::Done);
        }
        // Read through the shared cache: a verified pull counts as cached.
        if let (Some(remote), false) = (&self.opts.remote, force) {
            match remote.pull_entry(self.store, key) {
                Ok(Some((m, _))) => {
                    hit(self.store, pipeline, spec, result, m);
                    result.note = Some(format!("pulled from {}", remote.url()));
                    return Ok(Lookup::Done);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("{e}; running `{}` locally", spec.id);
                    result.note = Some(format!("remote: {e}; ran locally"));
                }
            }
        }
        Ok(Lookup::Run(lock))
    }

    /// Writes the manifest (after every object is in the store) and pushes it when asked.
    fn commit(
        &self,
        spec: &StageSpec,
        key: String,
        fp: Fingerprint,
        objects: BTreeMap<String, ObjectRef>,
        seconds: f64,
        result: &mut StageResult,
    ) -> Result<(), String> {
        let manifest = Manifest {
            key,
            stage_id: spec.id.to_string(),
            pipeline: self.graph.pipeline().name.clone(),
            kind: spec.kind.clone(),
            fingerprint: fp,
            outputs: objects.clone(),
            seconds,
            created_unix: now_unix(),
            versions: BTreeMap::from([("s2r-pipe".to_string(), env!("CARGO_PKG_VERSION").to_string())]),
            checksum: String::new(),
        };
        self.store.put_entry(&manifest).map_err(|e| e.to_string())?;
        if let (Some(remote), true) = (&self.opts.remote, self.opts.push) {
            if let Err(e) = remote.push_entry(self.store, &manifest) {
                tracing::warn!("push of `{}` failed: {e}", spec.id);
                result.push_error = Some(e.to_string());
            }
        }
        result.status = Status::Ran;
        result.outputs = objects.iter().map(|(k, o)| (k.clone(), o.hash.clone())).collect();
        result.objects = objects;
        result.seconds = seconds;
        Ok(())
    }
}

/// What [`Job::lookup`] found.
enum Lookup {
    /// A hit (the result is filled in).
    Done,
    /// A miss: run while holding the key's lock.
    Run(crate::store::KeyLock),
}

/// Queues every waiting dependent of `i` whose dependencies are all done.
fn release(graph: &Graph<Built>, nodes: &mut [Node], ready: &mut VecDeque<usize>, i: usize) {
    for d in graph.dependents(i) {
        if nodes[d].state == State::Waiting
            && !nodes[d].queued
            && graph.dependencies(d).iter().all(|&x| nodes[x].state == State::Done)
        {
            nodes[d].queued = true;
            ready.push_back(d);
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Waiting,
    Running,
    Done,
}

/// The scheduler's view of one stage.
#[derive(Clone)]
struct Node {
    state: State,
    /// Its result once done.
    result: Option<StageResult>,
    /// In the ready queue (or running).
    queued: bool,
    /// Rerun even if cached (an output was corrupt or missing).
    force: bool,
    /// How often it was rerun for a consumer.
    reruns: u32,
    /// CPU slots and GPU it holds while running.
    held: (usize, Option<usize>),
}

impl Node {
    fn new() -> Self {
        Self { state: State::Waiting, result: None, queued: false, force: false, reruns: 0, held: (0, None) }
    }

    /// Done with `r`.
    fn finish(&mut self, r: StageResult) {
        self.result = Some(r);
        self.state = State::Done;
    }
}

/// What happens to a consumer whose input object was corrupt or missing.
enum BadInput {
    /// Its producer is already being rerun: wait for it.
    Wait,
    /// The producer goes back into the queue (one stage fewer is done).
    Requeued,
    /// The producer was rerun once already and the input is still bad.
    Failed(Box<StageResult>),
}

/// Consumer `i` found `producer`'s output corrupt or missing: rerun the producer once (its entry
/// removed, forced), then the consumer; a second time, the consumer fails.
#[allow(clippy::too_many_arguments)]
fn rerun_producer(
    graph: &Graph<Built>,
    store: &Store,
    nodes: &mut [Node],
    ready: &mut VecDeque<usize>,
    i: usize,
    producer: &str,
    error: &str,
    seconds: f64,
) -> BadInput {
    let p = graph.index_of(producer).expect("producer is in the graph");
    if nodes[p].reruns >= 1 && nodes[p].state != State::Done {
        nodes[i].state = State::Waiting;
        nodes[i].queued = false;
        return BadInput::Wait;
    }
    if nodes[p].reruns >= 1 {
        let mut r = StageResult::empty(
            graph.stage(i),
            Status::Failed,
            Some(format!("{error} (again after rerunning `{producer}`)")),
        );
        r.seconds = seconds;
        return BadInput::Failed(Box::new(r));
    }
    tracing::warn!("{error}; rerunning `{producer}`");
    nodes[p].reruns += 1;
    if let Some(k) = nodes[p].result.as_ref().and_then(|r| r.key.clone()) {
        let _ = store.remove_entry(&k);
    }
    // The producer runs again; every finished dependent of it keeps its result (their keys do not
    // change if the output is reproduced).
    nodes[p].result = None;
    nodes[p].state = State::Waiting;
    nodes[p].force = true;
    nodes[i].state = State::Waiting;
    nodes[i].queued = false;
    nodes[p].queued = true;
    ready.push_back(p);
    BadInput::Requeued
}

/// Runs `graph`, emitting events to `sink`.
pub fn execute(
    graph: &Graph<Built>,
    registry: &Registry,
    store: &Store,
    opts: &ExecOptions,
    sink: &mut dyn Sink,
) -> RunSummary {
    let start = Instant::now();
    // The run's shared lease: a concurrent `gc` then spares what this run writes before its
    // manifests name it.
    let _lease = store.lease().map_err(|e| tracing::warn!("running without a store lease: {e}")).ok();
    store.set_cancel(opts.cancel.clone());
    let (r0, b0) = store.read_stats();
    let n = graph.len();
    let jobs = opts.jobs.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .thread_name(|i| format!("s2r-stage-{i}"))
        .build()
        .expect("thread pool");
    let (tx, rx) = unbounded::<Msg>();
    let mut nodes = vec![Node::new(); n];
    let mut ready: VecDeque<usize> =
        graph.topo().iter().copied().filter(|&i| graph.dependencies(i).is_empty()).collect();
    for &i in &ready {
        nodes[i].queued = true;
    }
    let (mut free_cpu, mut free_gpu) = (jobs, opts.machine.gpus);
    let mut running = 0usize;
    let mut gpu_in_use = vec![false; opts.machine.gpus];
    let mut interrupted = false;
    sink.on(&Event::Begin { pipeline: graph.pipeline().name.clone(), total: n });
    let job = Job { graph, registry, store, opts };
    let id_of = |i: usize| graph.stage(i).id.to_string();

    pool.in_place_scope(|scope| {
        let mut done = 0usize;
        while done < n {
            if opts.cancel.load(Ordering::Relaxed) && !interrupted {
                interrupted = true;
                sink.on(&Event::Interrupted);
            }
            // Launch what fits.
            let mut deferred = VecDeque::new();
            while let Some(i) = ready.pop_front() {
                let spec = graph.stage(i);
                let deps = graph.dependencies(i);
                let blocked = deps.iter().find(|&&d| {
                    nodes[d].result.as_ref().is_some_and(|r| r.status != Status::Cached && r.status != Status::Ran)
                });
                if interrupted || blocked.is_some() {
                    let error = blocked.map(|&d| {
                        format!(
                            "upstream `{}` {}",
                            id_of(d),
                            nodes[d].result.as_ref().map(|r| r.status.as_str()).unwrap_or("failed")
                        )
                    });
                    let r =
                        StageResult::empty(spec, if interrupted { Status::Aborted } else { Status::Skipped }, error);
                    sink.on(&Event::Finished(r.clone()));
                    nodes[i].finish(r);
                    done += 1;
                    release(graph, &mut nodes, &mut ready, i);
                    continue;
                }
                let cpu = spec.resources.cpu.min(jobs);
                let wants_gpu = opts.machine.on_gpu(spec);
                if free_cpu < cpu || (wants_gpu && free_gpu == 0) {
                    deferred.push_back(i);
                    continue;
                }
                free_cpu -= cpu;
                let gpu = if wants_gpu {
                    free_gpu -= 1;
                    let g = gpu_in_use.iter().position(|u| !u).expect("a free gpu slot");
                    gpu_in_use[g] = true;
                    Some(g)
                } else {
                    None
                };
                nodes[i].held = (cpu, gpu);
                nodes[i].state = State::Running;
                running += 1;
                sink.on(&Event::Started { id: spec.id.to_string(), kind: spec.kind.clone() });
                let upstream: BTreeMap<String, BTreeMap<String, ObjectRef>> = deps
                    .iter()
                    .map(|&d| (id_of(d), nodes[d].result.as_ref().map(|r| r.objects.clone()).unwrap_or_default()))
                    .collect();
                let device = gpu.map(Device::Cuda).unwrap_or(Device::Cpu);
                let tx = tx.clone();
                let f = nodes[i].force;
                let job = &job;
                scope.spawn(move |_| {
                    let out = job.run(i, f, upstream, device, cpu, &tx);
                    let _ = tx.send(Msg::Finished(i, Box::new(out)));
                });
            }
            ready = deferred;
            if done >= n {
                break;
            }
            if running == 0 && ready.is_empty() {
                break; // nothing can make progress (should not happen on a sealed graph)
            }
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Msg::Progress(i, f, m)) => sink.on(&Event::Progress { id: id_of(i), fraction: f, message: m }),
                Ok(Msg::Finished(i, outcome)) => {
                    running -= 1;
                    let (cpu, gpu) = nodes[i].held;
                    free_cpu += cpu;
                    if let Some(g) = gpu {
                        gpu_in_use[g] = false;
                        free_gpu += 1;
                    }
                    match *outcome {
                        Outcome::Done(r) => {
                            sink.on(&Event::Finished(r.clone()));
                            nodes[i].finish(r);
                            done += 1;
                            release(graph, &mut nodes, &mut ready, i);
                        }
                        Outcome::BadInput { producer, error, seconds } => {
                            match rerun_producer(graph, store, &mut nodes, &mut ready, i, &producer, &error, seconds) {
                                BadInput::Wait => {}
                                BadInput::Requeued => done -= 1,
                                BadInput::Failed(r) => {
                                    sink.on(&Event::Finished((*r).clone()));
                                    nodes[i].finish(*r);
                                    done += 1;
                                    release(graph, &mut nodes, &mut ready, i);
                                }
                            }
                        }
                    }
                }
                Err(_) => {}
            }
        }
    });
    // A cancel that came while the last stages were finishing (they return aborted) is still an
    // interrupted run.
    if opts.cancel.load(Ordering::Relaxed) && !interrupted {
        interrupted = true;
        sink.on(&Event::Interrupted);
    }
    let _ = store.save_stat_cache();
    let (r1, b1) = store.read_stats();
    let results: Vec<StageResult> = nodes
        .into_iter()
        .enumerate()
        .map(|(i, node)| {
            node.result
                .unwrap_or_else(|| StageResult::empty(graph.stage(i), Status::Aborted, Some("interrupted".into())))
        })
        .collect();
    RunSummary {
        pipeline: graph.pipeline().name.clone(),
        results,
        seconds: start.elapsed().as_secs_f64(),
        objects_read: r1 - r0,
        bytes_read: b1 - b0,
        interrupted,
    }
}
