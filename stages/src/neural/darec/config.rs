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
    /// Upper bound on the minibatch steps of the whole run: the maps are 4·d² parameters whose fit
    /// does not need more steps as the data grows, so past it an "epoch" (a row of the curves) is
    /// `max_steps / epochs` steps instead of a pass (the λ and learning-rate schedules span the
    /// capped total). 0 = no bound.
    #[serde(default = "d_max_steps")]
    pub max_steps: usize,
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
fn d_max_steps() -> usize {
    MAX_STEPS
}
/// The default bound on DARec's steps, chosen on validation users at ML-25M's scale (README,
/// "One sim→real pair at the paper's scale"); above every shipped pipeline's uncapped total on
/// the embedded data, which it therefore leaves as it was.
pub const MAX_STEPS: usize = 2_500;
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
    /// (steps per epoch, total steps) for `n` ratings in the larger domain: a pass over them per
    /// epoch, unless that makes more than `max_steps` in all.
    pub fn schedule(&self, n: usize) -> (usize, usize) {
        let pass = n.div_ceil(self.batch.max(1)).max(1);
        if self.max_steps > 0 && pass * self.epochs > self.max_steps {
            let per = (self.max_steps / self.epochs).max(1);
            (per, per * self.epochs)
        } else {
            (pass, pass * self.epochs)
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(epochs: usize, batch: usize, max_steps: usize) -> DarecConfig {
        let mut c: DarecConfig = serde_json::from_value(serde_json::json!({})).unwrap();
        (c.epochs, c.batch, c.max_steps) = (epochs, batch, max_steps);
        c
    }

    #[test]
    fn the_step_bound_shortens_epochs_only_past_it() {
        // Under the bound: a pass per epoch (the last minibatch of a pass counts).
        assert_eq!(config(20, 512, 10_000).schedule(100_000), (196, 3_920));
        assert_eq!(config(20, 512, 10_000).schedule(1), (1, 20));
        // The default leaves the largest sim domain of the embedded data's pipelines as it was
        // (the anime sample's TV → OVA: 52,090 ratings, 102 steps × 20 epochs).
        let default: DarecConfig = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(default.schedule(52_090), (102, 2_040));
        assert_eq!(default.schedule(2_851_206), (125, 2_500));
        // Exactly at it: unchanged.
        assert_eq!(config(20, 500, 10_000).schedule(250_000), (500, 10_000));
        // Past it: max_steps / epochs steps per epoch.
        assert_eq!(config(20, 512, 10_000).schedule(2_851_206), (500, 10_000));
        assert_eq!(config(3, 512, 10_000).schedule(2_851_206), (3_333, 9_999));
        // No bound.
        assert_eq!(config(20, 512, 0).schedule(2_851_206), (5_569, 111_380));
        // A bound below the epochs: one step each.
        assert_eq!(config(20, 512, 5).schedule(2_851_206), (1, 20));
    }
}
