//! [`Context`]: what the executor hands a running stage (scratch dir, threads, device, progress,
//! cancellation).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::api::device::Device;
use crate::api::error::StageError;

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
