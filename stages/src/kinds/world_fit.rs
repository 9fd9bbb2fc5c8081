//! `world.fit`: an interactive world with `world.synth`'s dynamics over a real dataset's items
//! (their SVD vectors, a topic each from their genres) and tastes fitted to its SVD user vectors
//! (`env/fit.rs`, [`crate::env::world::Fit`], docs/design.md §7). Its outputs are
//! `world.synth`'s, so every world pipeline runs on it unchanged.

use std::collections::HashMap;

use arrow::array::UInt32Array;
use serde_json::Value;

use crate::api::artifact::{Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{InputDoc, OutputDoc, ParamDoc};
use crate::api::error::StageError;
use crate::api::params;
use crate::api::stage::Stage;
use crate::data::items::Items;
use crate::data::table::{column, read_vectors};
use crate::env::fit::fit_dataset;
use crate::env::outputs::{world_outputs, WORLD_OUTPUTS};
use crate::env::world::{FitParams, World};

const PARAMS: &[ParamDoc] = &[
    ParamDoc {
        name: "max_items",
        ty: "integer",
        default: Some("300"),
        help: "the pool's most-rated items that become the world's (0: all)",
    },
    ParamDoc {
        name: "slope", ty: "number ≥ 0", default: Some("2"), help: "p = σ(slope·(a − offset)), a standardised"
    },
    ParamDoc { name: "offset", ty: "number", default: Some("1"), help: "standardised affinity of p = ½" },
    ParamDoc {
        name: "beta",
        ty: "number in [0, 1]",
        default: Some("0"),
        help: "boredom: real p of a bored topic ×(1 − beta)",
    },
    ParamDoc {
        name: "k",
        ty: "integer",
        default: Some("2"),
        help: "recommendations of a topic within `window` that bore",
    },
    ParamDoc { name: "window", ty: "integer", default: Some("5"), help: "boredom window (recommendations)" },
    ParamDoc {
        name: "leave",
        ty: "number in [0, 1]",
        default: Some("0"),
        help: "real users leave after a non-click on a bored topic with this probability",
    },
    ParamDoc { name: "sim_users", ty: "integer", default: Some("2000"), help: "simulator users" },
    ParamDoc { name: "logged_users", ty: "integer", default: Some("200"), help: "shared real users with logs" },
    ParamDoc { name: "logged_sessions", ty: "integer", default: Some("1"), help: "logged sessions per logged user" },
    ParamDoc {
        name: "behaviour_epsilon",
        ty: "number in [0, 1]",
        default: Some("0.5"),
        help: "ε of the ε-greedy popularity behaviour policy",
    },
    ParamDoc { name: "val_users", ty: "integer", default: Some("500"), help: "validation users (real dynamics)" },
    ParamDoc { name: "test_users", ty: "integer", default: Some("2000"), help: "test users (real dynamics)" },
    ParamDoc { name: "session_len", ty: "integer", default: Some("32"), help: "T of logs and evaluation" },
    ParamDoc {
        name: "rated_items",
        ty: "integer",
        default: Some("20"),
        help: "explicit ratings per user (the `sim`/`real_train` outputs)",
    },
    ParamDoc { name: "seed", ty: "integer", default: Some("0"), help: "seed of the world's streams" },
];

/// Parses `world.fit` params and checks them on a placeholder world of `max_items` items (the
/// data's sizes are checked again when the stage runs).
pub fn config(v: &Value) -> Result<FitParams, StageError> {
    let p: FitParams = params::parse(v, PARAMS)?;
    let items = if p.max_items == 0 { 1_000_000 } else { p.max_items };
    p.world_params(items, 1, 1).check().map_err(|m| params::invalid(m, PARAMS))?;
    Ok(p)
}

/// The fitted-world stage.
pub struct WorldFit;

impl Stage for WorldFit {
    fn kind(&self) -> &'static str {
        "world.fit"
    }
    fn about(&self) -> &'static str {
        "an interactive world (world.synth's dynamics) over a dataset's SVD items, genres and tastes"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[
            InputDoc {
                name: "user_vecs",
                required: true,
                many: false,
                help: "embed.svd sim_user_vecs: the tastes' Gaussian",
            },
            InputDoc {
                name: "item_vecs",
                required: true,
                many: false,
                help: "embed.svd sim_item_vecs: the items' vectors",
            },
            InputDoc { name: "pool", required: true, many: false, help: "split.sim_items: the most-rated are kept" },
            InputDoc { name: "items", required: true, many: false, help: "a loader's items: genres → topics" },
        ]
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        WORLD_OUTPUTS
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        config(p).map(|_| ())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<FitParams>(p, PARAMS)
    }
    fn run(&self, ctx: &Context, inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let p = config(p)?;
        ctx.progress(0.0, "fitting");
        let (_, users, dim) = read_vectors(inputs.table("user_vecs")?, "user_vecs")?;
        let (ids, vecs, item_dim) = read_vectors(inputs.table("item_vecs")?, "item_vecs")?;
        if item_dim != dim {
            return Err(StageError::Input(format!("user vectors are {dim} wide and item vectors {item_dim}")));
        }
        let pool = inputs.table("pool")?;
        let counts: HashMap<u32, u32> = column::<UInt32Array>(pool, "pool", "item")?
            .values()
            .iter()
            .copied()
            .zip(column::<UInt32Array>(pool, "pool", "n_train_ratings")?.values().iter().copied())
            .collect();
        let items = Items::from_batch(inputs.table("items")?, "items")?;
        let fit = fit_dataset(&users, dim, &ids, &vecs, &counts, &items, p.max_items).map_err(StageError::Input)?;
        let wp = p.world_params(fit.source_items.len(), fit.topic_names.len(), dim);
        wp.check().map_err(|m| StageError::Input(format!("the fitted world's sizes: {m}")))?;
        let w = World::fitted(&wp, fit).map_err(StageError::Input)?;
        world_outputs(ctx, &w)
    }
}
