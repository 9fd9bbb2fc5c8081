//! The neural methods (libtorch through tch, the `torch` feature): DARec and the interactive
//! recommender with dynamics adaptation. Their configs build without libtorch.

pub mod darec;
pub mod irs;
#[cfg(feature = "torch")]
pub mod layers;
#[cfg(feature = "torch")]
pub mod torch;
