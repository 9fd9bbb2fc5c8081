//! The stage API: what a stage is ([`stage::Stage`]), what it receives ([`context::Context`],
//! [`artifact::Inputs`], params) and returns ([`artifact::Outputs`]), how it declares itself
//! ([`docs`]) and fails ([`error::StageError`]), and where it runs ([`device`]).

pub mod artifact;
pub mod context;
pub mod device;
pub mod docs;
pub mod error;
pub mod params;
pub mod stage;
