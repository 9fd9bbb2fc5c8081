//! The [`Stage`] trait: the executor drives, a stage is a pure function of inputs + params.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::artifact::{Inputs, Outputs};
use crate::device::Device;
use crate::error::StageError;

/// One parameter a stage accepts (used for validation hints and `--help`-like listings).
#[derive(Debug, Clone, Copy)]
pub struct ParamDoc {
    /// Param name.
    pub name: &'static str,
    /// Type in words (`integer`, `string`, `list of strings`...).
    pub ty: &'static str,
    /// Default as YAML, or `None` when required.
    pub default: Option<&'static str>,
    /// One line of help.
    pub help: &'static str,
}

/// One named input a stage accepts.
#[derive(Debug, Clone, Copy)]
pub struct InputDoc {
    /// Input name.
    pub name: &'static str,
    /// Whether the stage cannot run without it.
    pub required: bool,
    /// Whether several artifacts may be bound (e.g. all instances of a matrix stage).
    pub many: bool,
    /// One line of help.
    pub help: &'static str,
}

/// One named output a stage produces.
#[derive(Debug, Clone, Copy)]
pub struct OutputDoc {
    /// Output name.
    pub name: &'static str,
    /// One line of help.
    pub help: &'static str,
}

/// Callback receiving progress in `[0, 1]` and a short message.
pub type ProgressFn = Arc<dyn Fn(f64, &str) + Send + Sync>;

/// What the executor hands a running stage.
#[derive(Clone)]
pub struct Context {
    scratch: PathBuf,
    threads: usize,
    device: Device,
    progress: ProgressFn,
    cancel: Arc<AtomicBool>,
}

impl Context {
    /// A context with a scratch dir, a thread budget and a device.
    pub fn new(
        scratch: PathBuf,
        threads: usize,
        device: Device,
        progress: ProgressFn,
        cancel: Arc<AtomicBool>,
    ) -> Self {
        Self { scratch, threads: threads.max(1), device, progress, cancel }
    }

    /// A context for tests and benchmarks: no progress, never cancelled.
    pub fn for_tests(scratch: &Path) -> Self {
        Self::new(scratch.to_path_buf(), 2, Device::Cpu, Arc::new(|_, _| {}), Arc::new(AtomicBool::new(false)))
    }

    /// A directory the stage may write temporary files into (removed after the run).
    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// How many threads the stage may use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The device the stage was placed on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Reports progress (fraction in `[0, 1]`).
    pub fn progress(&self, fraction: f64, message: &str) {
        (self.progress)(fraction.clamp(0.0, 1.0), message);
    }

    /// `Err(Cancelled)` once the run was interrupted; long loops call this between steps.
    pub fn check_cancelled(&self) -> Result<(), StageError> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(StageError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// A kind of pipeline stage.
pub trait Stage: Send + Sync {
    /// The kind name used in pipeline files, e.g. `data.movielens`.
    fn kind(&self) -> &'static str;

    /// One line saying what the stage does.
    fn about(&self) -> &'static str;

    /// The stage's source file (`file!()`), used to look up its build-time code fingerprint.
    fn source(&self) -> &'static str;

    /// The params the stage accepts.
    fn params(&self) -> &'static [ParamDoc];

    /// The inputs the stage accepts.
    fn inputs(&self) -> &'static [InputDoc] {
        &[]
    }

    /// The outputs the stage produces.
    fn outputs(&self) -> &'static [OutputDoc];

    /// Checks params without running (called when the pipeline is loaded).
    fn validate(&self, params: &Value) -> Result<(), StageError>;

    /// Source files/directories the stage reads, resolved from its params. The engine hashes
    /// their content into the cache key in place of the path strings.
    fn sources(&self, _params: &Value) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Runs the stage.
    fn run(&self, ctx: &Context, inputs: &Inputs, params: &Value) -> Result<Outputs, StageError>;
}
