//! Devices and the global fingerprint: what, besides code and data, changes results.

/// Where a stage runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// The CPU.
    Cpu,
    /// A CUDA device, by index.
    Cuda(usize),
}

impl Device {
    /// `cpu` or `cuda`: the device class that goes into cache keys.
    pub fn class(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda(_) => "cuda",
        }
    }
}

/// Number of CUDA devices usable by stages (0 without the `torch` feature).
pub fn cuda_device_count() -> usize {
    #[cfg(feature = "torch")]
    {
        if tch::Cuda::is_available() {
            return tch::Cuda::device_count().max(0) as usize;
        }
    }
    0
}

/// Caps the intra-op threads of numeric libraries so parallel stages do not oversubscribe.
pub fn cap_threads(n: usize) {
    #[cfg(feature = "torch")]
    tch::set_num_threads(n.max(1) as i32);
    #[cfg(not(feature = "torch"))]
    let _ = n;
}

/// Versions that change results and therefore go into cache keys.
pub fn global_fingerprint(torch_stage: bool) -> String {
    // The libtorch version enters only the keys of stages that run libtorch, and it is the version
    // this crate is written against, not whether this build links it: a build without libtorch
    // computes the same keys as the torch build, so it finds what that build cached.
    let torch = if torch_stage { ";libtorch-2.11.0" } else { "" };
    format!("s2r-stages-{};parquet-56{torch}", env!("CARGO_PKG_VERSION"))
}
