//! DARec: adversarial representation adaptation of the sim and real MF vectors.

pub mod config;
#[cfg(feature = "torch")]
pub mod model;
#[cfg(feature = "torch")]
pub mod probe;
#[cfg(feature = "torch")]
pub mod train;
