//! What `adapt.darec` is asked to do: DARec's hyper-parameters and their defaults (docs/design.md
//! "Decisions"). Plain data, built without libtorch.

use serde::{Deserialize, Serialize};

/// DARec's hyper-parameters (the `adapt.darec` params), with their defaults.
#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct DarecConfig {
    /// Passes over the observed ratings.
    #[serde(default = "d_epochs")]
    pub epochs: usize,
    /// Ratings per minibatch (per domain).
    #[serde(default = "d_batch")]
    pub batch: usize,
    /// Adam learning rate.
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// Weight of the domain loss.
    #[serde(default = "d_one")]
    pub dom_weight: f64,
    /// Learning rate of the domain classifiers relative to `lr`.
    #[serde(default = "d_disc")]
    pub disc_lr_mult: f64,
    /// Hidden width of the domain classifiers.
    #[serde(default = "d_hidden")]
    pub hidden: i64,
    /// Weight of the cross-domain rating loss on the shared users: their real ratings predicted
    /// from their *sim* user vectors, ⟨F_U^S u^S, F_V^R v^R⟩ — the pairing DARec is evaluated on.
    #[serde(default = "d_one")]
    pub cross_weight: f64,
    /// With a `val` input: greedy sessions of this length per epoch for `val_curve`.
    #[serde(default = "d_val_t")]
    pub val_session_len: usize,
    /// Seed.
    #[serde(default)]
    pub seed: u64,
}
fn d_val_t() -> usize {
    32
}
fn d_epochs() -> usize {
    20
}
fn d_batch() -> usize {
    512
}
fn d_lr() -> f64 {
    1e-3
}
fn d_one() -> f64 {
    1.0
}
fn d_disc() -> f64 {
    20.0
}
fn d_hidden() -> i64 {
    64
}

impl DarecConfig {
    /// Range checks.
    pub fn check(&self) -> Result<(), String> {
        let p = self;
        if p.epochs == 0
            || p.batch == 0
            || p.hidden < 1
            || p.val_session_len == 0
            || p.lr <= 0.0
            || p.dom_weight < 0.0
            || p.disc_lr_mult <= 0.0
            || p.cross_weight.is_nan()
            || p.cross_weight < 0.0
        {
            return Err(
                "`epochs`, `batch`, `hidden`, `val_session_len` must be ≥ 1, `lr`, `disc_lr_mult` > 0, `dom_weight`, `cross_weight` ≥ 0"
                    .into(),
            );
        }
        Ok(())
    }
}
