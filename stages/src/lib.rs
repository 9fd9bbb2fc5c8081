//! `s2r-stages`: the stage API, the registry of built-in stages, and the library they adapt.
//!
//! Layers (each folder one role; `tests/layering.rs` checks the rules):
//! - [`api`]: what a stage is — the [`Stage`] trait, [`Context`], artifacts, params, errors, devices;
//! - [`registry`], [`fingerprint`]: kind name → stage and its build-time code fingerprint;
//! - the library: [`data`] (ratings, items, tables, parsers, sessions, split, synthetic world),
//!   [`env`] (the environment interface: replay, and interactive worlds with known dynamics),
//!   [`numerics`] (linear algebra, SVD, k-means, statistics), [`eval`] (metrics and tables),
//!   [`report`] (summaries and charts), [`neural`] (DARec and the interactive recommender, with
//!   libtorch behind the `torch` feature);
//! - [`kinds`]: one thin adapter per stage kind. The library never imports a kind, and a kind
//!   never imports another kind.
//!
//! A stage is a pure function of its inputs and params: it receives Arrow data and returns Arrow
//! data (and model weights). It never prints, hashes, or touches files outside the scratch
//! directory it is given (source-data stages read the paths their params name). No YAML, no
//! petgraph, no cache here: those live in the engine.
#![deny(missing_docs)]

pub mod api;
pub mod data;
pub mod env;
pub mod eval;
pub mod fingerprint;
pub mod kinds;
pub mod neural;
pub mod numerics;
pub mod registry;
pub mod report;

pub use api::artifact::{Artifact, Inputs, Outputs};
pub use api::context::Context;
pub use api::docs::{InputDoc, OutputDoc, ParamDoc};
pub use api::error::StageError;
pub use api::stage::{Source, Stage};
pub use registry::{Registered, Registry};
/// The libtorch bindings the neural stages use (for benchmarks and tests of dependents).
#[cfg(feature = "torch")]
pub use tch;
