//! `s2r-stages`: the [`Stage`] trait, the [`Registry`] of built-in stages and every stage
//! implementation (data, split, stats, synthetic world, engine-test utilities).
//!
//! A stage is a pure function of its inputs and params: it receives Arrow data and returns Arrow
//! data (and model weights). It never prints, hashes, or touches files outside the scratch
//! directory it is given (source-data stages read the paths their params name). No YAML, no
//! petgraph, no cache here: those live in the engine.
#![deny(missing_docs)]

pub mod artifact;
#[cfg(feature = "torch")]
pub mod darec;
pub mod device;
#[cfg(feature = "torch")]
pub mod dynamics;
pub mod error;
pub mod fingerprint;
#[cfg(feature = "torch")]
pub mod irs;
pub mod kinds;
pub mod kmeans;
pub mod linalg;
pub mod metrics;
pub mod params;
pub mod ratings;
pub mod registry;
pub mod stage;
pub mod svd;
pub mod table;
pub mod text;
#[cfg(feature = "torch")]
pub mod torch;

pub use artifact::{Artifact, Inputs, Outputs};
pub use error::StageError;
pub use registry::{Registered, Registry};
pub use stage::{Context, InputDoc, OutputDoc, ParamDoc, Stage};
/// The libtorch bindings the neural stages use (for benchmarks and tests of dependents).
#[cfg(feature = "torch")]
pub use tch;
