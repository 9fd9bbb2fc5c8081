//! `adapt.darec`: representation adaptation (DARec, Yuan et al. 2019; paper eq. 1–2).
//!
//! Linear maps F_U^S, F_U^R, F_V^S, F_V^R (initialised to the identity, so training starts at the
//! MF representation) and domain classifiers D_U, D_V (real = 1, sim = 0) behind a gradient
//! reversal layer whose weight follows the DANN schedule λ_p = 2 / (1 + e^{−10p}) − 1. The maps
//! minimise the masked MSE of ⟨ũ, ṽ⟩ on the observed ratings of both domains while the reversed
//! gradient of the domain loss pushes the adapted vectors of the two domains together. Learning
//! rates follow DANN's annealing μ_p = μ₀ / (1 + 10p)^0.75; the classifiers learn `disc_lr_mult`
//! times faster than the maps (two time scales: a lagging classifier makes the min-max game
//! oscillate and the adapted vectors end up more separable, not less).
//! Needs the `torch` feature (libtorch); without it the stage fails with a clear message.

use serde::Deserialize;
use serde_json::Value;

use crate::artifact::{Inputs, Outputs};
use crate::error::StageError;
use crate::params;
use crate::stage::{Context, InputDoc, OutputDoc, ParamDoc, Stage};

/// The DARec stage.
pub struct Darec;

/// DARec params.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct DarecParams {
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
    /// Seed.
    #[serde(default)]
    pub seed: u64,
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

const PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "epochs", ty: "integer ≥ 1", default: Some("20"), help: "passes over the ratings" },
    ParamDoc { name: "batch", ty: "integer ≥ 1", default: Some("512"), help: "ratings per minibatch and domain" },
    ParamDoc { name: "lr", ty: "number > 0", default: Some("0.001"), help: "Adam learning rate" },
    ParamDoc { name: "dom_weight", ty: "number ≥ 0", default: Some("1"), help: "weight of L_dom" },
    ParamDoc { name: "disc_lr_mult", ty: "number > 0", default: Some("20"), help: "classifier lr ÷ map lr" },
    ParamDoc { name: "hidden", ty: "integer ≥ 1", default: Some("64"), help: "domain classifier width" },
    ParamDoc { name: "seed", ty: "integer", default: Some("0"), help: "seed" },
];

impl DarecParams {
    /// From JSON, validated.
    pub fn from_json(v: &Value) -> Result<Self, StageError> {
        let p: DarecParams = params::parse(v, PARAMS)?;
        if p.epochs == 0 || p.batch == 0 || p.hidden < 1 || p.lr <= 0.0 || p.dom_weight < 0.0 || p.disc_lr_mult <= 0.0 {
            return Err(params::invalid("`epochs`, `batch`, `hidden` must be ≥ 1, `lr` > 0, `dom_weight` ≥ 0", PARAMS));
        }
        Ok(p)
    }
}

impl Stage for Darec {
    fn kind(&self) -> &'static str {
        "adapt.darec"
    }
    fn about(&self) -> &'static str {
        "DARec: adversarially adapted user/item vectors (needs the torch feature)"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[
            InputDoc { name: "sim_user_vecs", required: true, many: false, help: "embed.svd" },
            InputDoc { name: "sim_item_vecs", required: true, many: false, help: "embed.svd" },
            InputDoc { name: "real_user_vecs", required: true, many: false, help: "embed.svd" },
            InputDoc { name: "real_item_vecs", required: true, many: false, help: "embed.svd" },
            InputDoc { name: "sim", required: true, many: false, help: "split.sim" },
            InputDoc { name: "real_train", required: true, many: false, help: "split.real_train" },
        ]
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[
            OutputDoc { name: "sim_user_vecs", help: "adapted F_U^S(u^S)" },
            OutputDoc { name: "sim_item_vecs", help: "adapted F_V^S(v^S)" },
            OutputDoc { name: "real_user_vecs", help: "adapted F_U^R(u^R)" },
            OutputDoc { name: "real_item_vecs", help: "adapted F_V^R(v^R)" },
            OutputDoc { name: "weights", help: "safetensors: maps and classifiers (for joint training)" },
            OutputDoc { name: "curves", help: "per epoch: MSE sim/real, domain loss, classifier accuracies, λ" },
        ]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        DarecParams::from_json(p).map(|_| ())
    }
    fn run(&self, ctx: &Context, inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let p = DarecParams::from_json(p)?;
        #[cfg(feature = "torch")]
        {
            crate::darec::run(ctx, inputs, &p)
        }
        #[cfg(not(feature = "torch"))]
        {
            let _ = (ctx, inputs, p);
            Err(StageError::Failed(
                "`adapt.darec` needs libtorch: build s2r-pipe with `--features torch` (scripts/setup.sh installs it)"
                    .into(),
            ))
        }
    }
}
