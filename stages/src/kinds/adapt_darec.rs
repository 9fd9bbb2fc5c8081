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
//! Epochs are passes over the ratings, bounded by `max_steps` minibatch steps in all (chosen on
//! validation users at ML-25M's scale, where 20 passes overfit; see `DarecConfig::max_steps`).
//! Needs the `torch` feature (libtorch); without it the stage fails with a clear message.

use serde_json::Value;

use crate::api::artifact::{Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{InputDoc, OutputDoc, ParamDoc};
use crate::api::error::StageError;
use crate::api::params;
use crate::api::stage::Stage;
use crate::neural::darec::config::DarecConfig;

/// The DARec stage.
pub struct Darec;

const PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "epochs", ty: "integer ≥ 1", default: Some("20"), help: "passes over the ratings" },
    ParamDoc {
        name: "max_steps",
        ty: "integer ≥ 0",
        default: Some("2500"),
        help: "bound on the run's minibatch steps; past it an epoch is max_steps/epochs steps (0 = none)",
    },
    ParamDoc { name: "batch", ty: "integer ≥ 1", default: Some("512"), help: "ratings per minibatch and domain" },
    ParamDoc { name: "lr", ty: "number > 0", default: Some("0.001"), help: "Adam learning rate" },
    ParamDoc { name: "dom_weight", ty: "number ≥ 0", default: Some("1"), help: "weight of L_dom" },
    ParamDoc { name: "disc_lr_mult", ty: "number > 0", default: Some("20"), help: "classifier lr ÷ map lr" },
    ParamDoc { name: "hidden", ty: "integer ≥ 1", default: Some("64"), help: "domain classifier width" },
    ParamDoc {
        name: "cross_weight",
        ty: "number ≥ 0",
        default: Some("1"),
        help: "weight of the shared users' real ratings predicted from their sim vectors",
    },
    ParamDoc {
        name: "val_session_len",
        ty: "integer ≥ 1",
        default: Some("32"),
        help: "T of the per-epoch validation sessions (with `val`)",
    },
    ParamDoc { name: "seed", ty: "integer", default: Some("0"), help: "seed" },
];

/// Parses and checks `adapt.darec` params (also for tests).
pub fn config(v: &Value) -> Result<DarecConfig, StageError> {
    let p: DarecConfig = params::parse(v, PARAMS)?;
    p.check().map_err(|m| params::invalid(m, PARAMS))?;
    Ok(p)
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
    fn needs_torch(&self) -> bool {
        true
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
            InputDoc {
                name: "val",
                required: false,
                many: false,
                help: "split.val: per-epoch greedy sessions and held-out MSE of ⟨F_U^S u^S, F_V^R v^R⟩ → `val_curve`",
            },
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
            OutputDoc {
                name: "val_curve",
                help: "epoch (0 = before training, i.e. MF), users, reward, precision, cross_mse on validation users (empty without `val`)",
            },
        ]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        config(p).map(|_| ())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<DarecConfig>(p, PARAMS)
    }
    fn run(&self, ctx: &Context, inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let p = config(p)?;
        #[cfg(feature = "torch")]
        {
            crate::neural::darec::train::run(ctx, inputs, &p)
        }
        #[cfg(not(feature = "torch"))]
        {
            let _ = (ctx, inputs, p);
            Err(StageError::Failed(
                "`adapt.darec` needs libtorch: build s2r-pipe with `--features torch`, or put a torch-built `s2r-pipe-worker` beside it (scripts/quickstart.sh builds both)"
                    .into(),
            ))
        }
    }
}
