//! Typed execution events. The executor emits them; the progress display and the run report are
//! two subscribers ([`Sink`]s).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::ObjectRef;

/// How a stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Found in the cache; nothing ran.
    Cached,
    /// Ran and was stored.
    Ran,
    /// Failed; nothing stored.
    Failed,
    /// Not run because an upstream stage failed.
    Skipped,
    /// Interrupted (Ctrl-C); nothing stored.
    Aborted,
}

impl Status {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Cached => "cached",
            Status::Ran => "ran",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Aborted => "aborted",
        }
    }
}

/// The outcome of one stage instance.
#[derive(Debug, Clone, Serialize)]
pub struct StageResult {
    /// Instance id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Outcome.
    pub status: Status,
    /// Wall time (for cached stages: the key computation and lookup).
    pub seconds: f64,
    /// Cache key, when computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Output name → content hash.
    pub outputs: BTreeMap<String, String>,
    /// Output name → full object reference (not in the JSON report).
    #[serde(skip)]
    pub objects: BTreeMap<String, ObjectRef>,
    /// Device class it ran on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Error message for failed stages; the failed upstream for skipped ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Extra information (e.g. a rerun forced by a corrupt object, a pull from the remote).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why `--push` could not upload this stage's entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_error: Option<String>,
    /// Peak resident memory of the worker process that ran it, in bytes (out-of-process executors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
}

impl StageResult {
    /// A result with nothing produced yet (skipped, aborted, or failed before running).
    pub fn empty(spec: &crate::spec::StageSpec, status: Status, error: Option<String>) -> Self {
        Self {
            id: spec.id.to_string(),
            kind: spec.kind.clone(),
            status,
            seconds: 0.0,
            key: None,
            outputs: BTreeMap::new(),
            objects: BTreeMap::new(),
            device: None,
            error,
            note: None,
            push_error: None,
            peak_rss_bytes: None,
        }
    }
}

/// A progress message that starts with this is a change of state (a cluster job PENDING, then
/// RUNNING): plain (non-terminal) progress prints it as a line, where it drops other messages.
pub const STATE_CHANGE: &str = "state: ";

/// What the executor reports while it works.
#[derive(Debug, Clone)]
pub enum Event {
    /// The run starts with this many stages.
    Begin {
        /// Pipeline name.
        pipeline: String,
        /// Stage count.
        total: usize,
    },
    /// A stage is being looked up or run.
    Started {
        /// Instance id.
        id: String,
        /// Kind.
        kind: String,
    },
    /// A running stage reported progress.
    Progress {
        /// Instance id.
        id: String,
        /// Fraction done.
        fraction: f64,
        /// What it is doing.
        message: String,
    },
    /// A stage ended.
    Finished(StageResult),
    /// The run was interrupted.
    Interrupted,
}

/// A subscriber to execution events.
pub trait Sink {
    /// Called on the executor's thread for each event, in order.
    fn on(&mut self, event: &Event);
}

/// Forwards to several sinks.
pub struct Fanout<'a>(pub Vec<&'a mut dyn Sink>);

impl Sink for Fanout<'_> {
    fn on(&mut self, event: &Event) {
        for s in &mut self.0 {
            s.on(event);
        }
    }
}

/// Ignores everything.
pub struct NullSink;

impl Sink for NullSink {
    fn on(&mut self, _event: &Event) {}
}
