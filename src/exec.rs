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
use s2r_stages::api::device::{cap_threads, Device};
use s2r_stages::{Context, Inputs, Registry};

use crate::event::{Event, Sink, StageResult, Status};
use crate::graph::{Built, Graph};
use crate::key::{fingerprint, Machine};
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
}

impl Default for ExecOptions {
    fn default() -> Self {
        Self {
            jobs: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            machine: Machine::detect(),
            cancel: Arc::new(AtomicBool::new(false)),
            remote: None,
            push: false,
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
    Finished(usize, Outcome),
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

struct Job<'a> {
    graph: &'a Graph<Built>,
    registry: &'a Registry,
    store: &'a Store,
    opts: &'a ExecOptions,
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
        let pipeline = self.graph.pipeline().name.clone();
        let hit = |r: &mut StageResult, m: Manifest| {
            r.status = Status::Cached;
            r.outputs = m.outputs.iter().map(|(k, o)| (k.clone(), o.hash.clone())).collect();
            r.objects = m.outputs.clone();
            r.device = Some(m.fingerprint.device.clone());
            if self.store.last(&pipeline, spec.id.as_str()).is_none_or(|l| l.key != m.key) {
                let mut mine = m;
                mine.stage_id = spec.id.to_string();
                mine.pipeline = pipeline.clone();
                let _ = self.store.set_last(&mine);
            }
        };
        let lookup = |r: &mut StageResult| -> Result<bool, StoreError> {
            if let Some(m) = self.store.entry(&key)? {
                if self.store.objects_present(&m) {
                    hit(r, m);
                    return Ok(true);
                }
                self.store.remove_entry(&key)?;
            }
            Ok(false)
        };
        if force {
            if let Err(e) = self.store.remove_entry(&key) {
                return fail(result, e.to_string());
            }
        } else {
            match lookup(&mut result) {
                Ok(true) => {
                    result.seconds = start.elapsed().as_secs_f64();
                    return Outcome::Done(result);
                }
                Ok(false) => {}
                Err(e) => return fail(result, e.to_string()),
            }
        }
        let _lock = match self.store.lock(&key) {
            Ok(l) => l,
            Err(e) => return fail(result, e.to_string()),
        };
        // Another process may have finished this key while we waited for the lock.
        match lookup(&mut result) {
            Ok(true) => {
                result.seconds = start.elapsed().as_secs_f64();
                return Outcome::Done(result);
            }
            Ok(false) => {}
            Err(e) => return fail(result, e.to_string()),
        }
        // Read through the shared cache: a verified pull counts as cached.
        if let (Some(remote), false) = (&self.opts.remote, force) {
            match remote.pull_entry(self.store, &key) {
                Ok(Some((m, _))) => {
                    hit(&mut result, m);
                    result.note = Some(format!("pulled from {}", remote.url()));
                    result.seconds = start.elapsed().as_secs_f64();
                    return Outcome::Done(result);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("{e}; running `{}` locally", spec.id);
                    result.note = Some(format!("remote: {e}; ran locally"));
                }
            }
        }
        // Load inputs (verified).
        let mut inputs = Inputs::default();
        for b in &spec.inputs {
            let o = &upstream[b.from.as_str()][&b.output];
            match self.store.get(o) {
                Ok(a) => {
                    // The producer's matrix values, typed as the pipeline wrote them.
                    let matrix = self.graph.index_of(b.from.as_str()).map(|p| self.graph.stage(p).matrix.clone());
                    inputs.push_instance(b.input.clone(), b.from.to_string(), matrix.unwrap_or_default(), a)
                }
                Err(e @ (StoreError::Corrupt { .. } | StoreError::Missing(_))) => {
                    self.store.quarantine(&o.hash, &o.ext);
                    return Outcome::BadInput {
                        producer: b.from.to_string(),
                        error: e.to_string(),
                        seconds: start.elapsed().as_secs_f64(),
                    };
                }
                Err(e) => return fail(result, e.to_string()),
            }
        }
        let reg = self.registry.get(&spec.kind).expect("kinds are validated at load");
        let scratch = match tempfile::Builder::new().prefix("scratch-").tempdir_in(self.store.root().join("tmp")) {
            Ok(d) => d,
            Err(e) => return fail(result, format!("cannot create a scratch dir: {e}")),
        };
        let txp = tx.clone();
        let progress: s2r_stages::api::context::ProgressFn = Arc::new(move |f, m: &str| {
            let _ = txp.send(Msg::Progress(idx, f, m.to_string()));
        });
        let ctx = Context::new(scratch.path().to_path_buf(), threads, device, progress, self.opts.cancel.clone());
        cap_threads(threads);
        result.device = Some(device.class().to_string());
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| reg.stage.run(&ctx, &inputs, &spec.params)));
        drop(inputs);
        let outputs = match run {
            Ok(Ok(o)) => o,
            Ok(Err(s2r_stages::StageError::Cancelled)) => {
                result.status = Status::Aborted;
                return fail(result, "interrupted".into());
            }
            Ok(Err(e)) => return fail(result, e.to_string()),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return fail(result, format!("stage panicked: {msg}"));
            }
        };
        if self.opts.cancel.load(Ordering::Relaxed) {
            result.status = Status::Aborted;
            return fail(result, "interrupted".into());
        }
        let declared: Vec<&str> = reg.stage.outputs().iter().map(|o| o.name).collect();
        for d in &declared {
            if !outputs.contains_key(*d) {
                return fail(result, format!("stage produced no output `{d}`"));
            }
        }
        if let Some(extra) = outputs.keys().find(|k| !declared.contains(&k.as_str())) {
            return fail(result, format!("stage produced an undeclared output `{extra}`"));
        }
        let mut objects = BTreeMap::new();
        for (name, artifact) in &outputs {
            match self.store.put(&format!("{}.{name}", spec.id), artifact) {
                Ok(r) => {
                    objects.insert(name.clone(), r);
                }
                Err(e) => return fail(result, e.to_string()),
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let manifest = Manifest {
            key: key.clone(),
            stage_id: spec.id.to_string(),
            pipeline,
            kind: spec.kind.clone(),
            fingerprint: fp,
            outputs: objects.clone(),
            seconds,
            created_unix: now_unix(),
            versions: BTreeMap::from([("s2r-pipe".to_string(), env!("CARGO_PKG_VERSION").to_string())]),
        };
        if let Err(e) = self.store.put_entry(&manifest) {
            return fail(result, e.to_string());
        }
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
        Outcome::Done(result)
    }
}

/// Queues every waiting dependent of `i` whose dependencies are all done.
fn release(graph: &Graph<Built>, state: &[State], queued: &mut [bool], ready: &mut VecDeque<usize>, i: usize) {
    for d in graph.dependents(i) {
        if state[d] == State::Waiting && !queued[d] && graph.dependencies(d).iter().all(|&x| state[x] == State::Done) {
            queued[d] = true;
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

/// Runs `graph`, emitting events to `sink`.
pub fn execute(
    graph: &Graph<Built>,
    registry: &Registry,
    store: &Store,
    opts: &ExecOptions,
    sink: &mut dyn Sink,
) -> RunSummary {
    let start = Instant::now();
    let (r0, b0) = store.read_stats();
    let n = graph.len();
    let jobs = opts.jobs.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .thread_name(|i| format!("s2r-stage-{i}"))
        .build()
        .expect("thread pool");
    let (tx, rx) = unbounded::<Msg>();
    let mut state = vec![State::Waiting; n];
    let mut results: Vec<Option<StageResult>> = vec![None; n];
    let mut queued = vec![false; n];
    let mut force = vec![false; n];
    let mut reruns = vec![0u32; n];
    let mut ready: VecDeque<usize> =
        graph.topo().iter().copied().filter(|&i| graph.dependencies(i).is_empty()).collect();
    for &i in &ready {
        queued[i] = true;
    }
    let (mut free_cpu, mut free_gpu) = (jobs, opts.machine.gpus);
    let mut running = 0usize;
    let mut gpu_in_use = vec![false; opts.machine.gpus];
    let mut held: Vec<(usize, Option<usize>)> = vec![(0, None); n];
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
                    results[d].as_ref().is_some_and(|r| r.status != Status::Cached && r.status != Status::Ran)
                });
                if interrupted || blocked.is_some() {
                    let error = blocked.map(|&d| {
                        format!(
                            "upstream `{}` {}",
                            id_of(d),
                            results[d].as_ref().map(|r| r.status.as_str()).unwrap_or("failed")
                        )
                    });
                    let r =
                        StageResult::empty(spec, if interrupted { Status::Aborted } else { Status::Skipped }, error);
                    sink.on(&Event::Finished(r.clone()));
                    results[i] = Some(r);
                    state[i] = State::Done;
                    done += 1;
                    release(graph, &state, &mut queued, &mut ready, i);
                    continue;
                }
                let cpu = spec.resources.cpu.min(jobs);
                let wants_gpu = spec.resources.gpu > 0 && opts.machine.gpus > 0;
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
                held[i] = (cpu, gpu);
                state[i] = State::Running;
                running += 1;
                sink.on(&Event::Started { id: spec.id.to_string(), kind: spec.kind.clone() });
                let upstream: BTreeMap<String, BTreeMap<String, ObjectRef>> = deps
                    .iter()
                    .map(|&d| (id_of(d), results[d].as_ref().map(|r| r.objects.clone()).unwrap_or_default()))
                    .collect();
                let device = gpu.map(Device::Cuda).unwrap_or(Device::Cpu);
                let tx = tx.clone();
                let f = force[i];
                let job = &job;
                scope.spawn(move |_| {
                    let out = job.run(i, f, upstream, device, cpu, &tx);
                    let _ = tx.send(Msg::Finished(i, out));
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
                    let (cpu, gpu) = held[i];
                    free_cpu += cpu;
                    if let Some(g) = gpu {
                        gpu_in_use[g] = false;
                        free_gpu += 1;
                    }
                    match outcome {
                        Outcome::Done(r) => {
                            sink.on(&Event::Finished(r.clone()));
                            results[i] = Some(r);
                            state[i] = State::Done;
                            done += 1;
                            release(graph, &state, &mut queued, &mut ready, i);
                        }
                        Outcome::BadInput { producer, error, seconds } => {
                            let p = graph.index_of(&producer).expect("producer is in the graph");
                            if reruns[p] >= 1 && state[p] != State::Done {
                                // The producer is already being rerun for another consumer.
                                state[i] = State::Waiting;
                                queued[i] = false;
                                continue;
                            }
                            if reruns[p] >= 1 {
                                let spec = graph.stage(i);
                                let mut r = StageResult::empty(
                                    spec,
                                    Status::Failed,
                                    Some(format!("{error} (again after rerunning `{producer}`)")),
                                );
                                r.seconds = seconds;
                                sink.on(&Event::Finished(r.clone()));
                                results[i] = Some(r);
                                state[i] = State::Done;
                                done += 1;
                                release(graph, &state, &mut queued, &mut ready, i);
                                continue;
                            }
                            tracing::warn!("{error}; rerunning `{producer}`");
                            reruns[p] += 1;
                            if let Some(k) = results[p].as_ref().and_then(|r| r.key.clone()) {
                                let _ = store.remove_entry(&k);
                            }
                            // The producer runs again; every finished dependent of it keeps its
                            // result (their keys do not change if the output is reproduced).
                            results[p] = None;
                            state[p] = State::Waiting;
                            force[p] = true;
                            done -= 1;
                            state[i] = State::Waiting;
                            queued[i] = false;
                            queued[p] = true;
                            ready.push_back(p);
                        }
                    }
                }
                Err(_) => {}
            }
        }
    });
    let _ = store.save_stat_cache();
    let (r1, b1) = store.read_stats();
    let results: Vec<StageResult> = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| StageResult::empty(graph.stage(i), Status::Aborted, Some("interrupted".into())))
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
