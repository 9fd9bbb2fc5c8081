//! Phase one of parsing: raw serde structs with `deny_unknown_fields`, straight from YAML.

use serde::Deserialize;
use serde_yaml::{Mapping, Value};

/// A pipeline file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    /// Pipeline name (default: the file stem).
    #[serde(default)]
    pub name: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Variables for `${name}` interpolation and matrix axes.
    #[serde(default)]
    pub vars: Mapping,
    /// Stage id → stage.
    pub stages: Mapping,
    /// Cache settings (e.g. a remote), passed through to the store.
    #[serde(default)]
    pub cache: Option<Value>,
    /// Where stages run: `{kind: in-process | process}` (`run --executor` overrides).
    #[serde(default)]
    pub executor: Option<Value>,
}

/// One stage as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    /// Registered kind, e.g. `data.split`.
    pub kind: String,
    /// Params handed to the stage (after interpolation).
    #[serde(default)]
    pub params: Mapping,
    /// Input name → `stage.output`, `stage.*`, or a list of references.
    #[serde(default)]
    pub inputs: Mapping,
    /// Axis → list of values (or `${var}` naming a list): one stage instance per combination.
    #[serde(default)]
    pub matrix: Mapping,
    /// Slots the stage needs.
    #[serde(default)]
    pub resources: RawResources,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// `resources: {cpu, gpu, mem, time}`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawResources {
    /// CPU threads the stage uses (capped at `--jobs`).
    #[serde(default = "one")]
    pub cpu: usize,
    /// GPUs the stage wants (runs on CPU when there are none).
    #[serde(default)]
    pub gpu: usize,
    /// Memory: megabytes, or `512M`, `4G`, `1T` (Slurm's `--mem`).
    #[serde(default)]
    pub mem: Option<Value>,
    /// Wall-time limit: minutes, or `MM:SS`, `HH:MM:SS`, `D-HH:MM:SS`, `90s`, `2h` (Slurm's `--time`).
    #[serde(default)]
    pub time: Option<Value>,
}

fn one() -> usize {
    1
}

impl Default for RawResources {
    fn default() -> Self {
        Self { cpu: 1, gpu: 0, mem: None, time: None }
    }
}
