//! The interactive recommender: an LSTM-DQN trained on simulated users and real logs, with
//! dynamics adaptation (Δr from two domain classifiers, or two response models) and joint training (docs/design.md §6).

pub mod config;
#[cfg(feature = "torch")]
pub mod dynamics;
#[cfg(feature = "torch")]
pub mod episode;
#[cfg(feature = "torch")]
pub mod host_step;
#[cfg(feature = "torch")]
pub mod io;
#[cfg(feature = "torch")]
pub mod joint;
#[cfg(feature = "torch")]
pub mod qnet;
#[cfg(feature = "torch")]
pub mod response;
#[cfg(feature = "torch")]
pub mod rollout;
#[cfg(feature = "torch")]
pub mod state_clf;
#[cfg(feature = "torch")]
pub mod td;
#[cfg(feature = "torch")]
pub mod train;
