//! Environments (docs/design.md §7): the one interface training rollouts, the Δr classifiers'
//! data and the evaluators see — replay of logged ratings, and interactive worlds whose
//! responses depend on the session so far.

pub mod fit;
pub mod outputs;
pub mod session;
pub mod world;
