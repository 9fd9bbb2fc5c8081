//! `s2r-pipe`: the engine. YAML pipelines ([`spec`]) become a sealed DAG ([`graph`]); each stage
//! run is keyed ([`key`]) and stored content-addressed ([`store`]); the executor ([`exec`]) runs
//! what is missing in parallel and emits [`event`]s that the progress display and the run report
//! consume; [`plan`] explains what would run and why.

pub mod diagnostic;
pub mod event;
pub mod exec;
pub mod graph;
pub mod key;
pub mod page;
pub mod plan;
pub mod progress;
pub mod report;
pub mod show;
pub mod slurm;
pub mod spec;
pub mod stage_id;
pub mod store;
pub mod worker;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use graph::{Built, Graph};
pub use spec::{load_pipeline, Pipeline, StageSpec};
