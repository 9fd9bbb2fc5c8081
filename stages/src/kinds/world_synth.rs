//! `world.synth`: an interactive world with known dynamics (boredom / satiation, see
//! `env/world.rs` and docs/design.md §7): its params (which rebuild it anywhere), item vectors of
//! the sim and real pools, and the shared real users' sessions logged by a behaviour policy.

use std::sync::Arc;

use arrow::array::{StringArray, UInt32Array};
use serde_json::Value;

use crate::api::artifact::{Artifact, Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{OutputDoc, ParamDoc};
use crate::api::error::StageError;
use crate::api::params;
use crate::api::stage::Stage;
use crate::data::split::pool_table;
use crate::data::table::{batch, vectors};
use crate::env::world::{logs_table, world_table, Dynamics, World, WorldParams};

const PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "items", ty: "integer", default: Some("300"), help: "items (split evenly into topics)" },
    ParamDoc { name: "topics", ty: "integer", default: Some("10"), help: "topics" },
    ParamDoc { name: "dim", ty: "integer", default: Some("16"), help: "latent dimension = item vector width" },
    ParamDoc {
        name: "spread", ty: "number ≥ 0", default: Some("0.5"), help: "item spread around its topic centroid"
    },
    ParamDoc { name: "slope", ty: "number ≥ 0", default: Some("2"), help: "p = σ(slope·(⟨u, v⟩ − offset))" },
    ParamDoc { name: "offset", ty: "number", default: Some("1"), help: "affinity of p = ½" },
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
        name: "setting",
        ty: "shared | categories",
        default: Some("shared"),
        help: "one pool, or disjoint topic halves (sim, real)",
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
        default: Some("20 (left out of the key at 20)"),
        help: "explicit ratings per user and pool (the `sim`/`real_train` outputs)",
    },
    ParamDoc {
        name: "leave",
        ty: "number in [0, 1]",
        default: Some("0 (never; left out of the key)"),
        help: "real users leave after a non-click on a bored topic with this probability",
    },
    ParamDoc { name: "seed", ty: "integer", default: Some("0"), help: "seed" },
];

/// Parses and checks `world.synth` params.
pub fn config(v: &Value) -> Result<WorldParams, StageError> {
    let p: WorldParams = params::parse(v, PARAMS)?;
    p.check().map_err(|m| params::invalid(m, PARAMS))?;
    Ok(p)
}

/// The world generator stage.
pub struct WorldSynth;

impl Stage for WorldSynth {
    fn kind(&self) -> &'static str {
        "world.synth"
    }
    fn about(&self) -> &'static str {
        "an interactive world (boredom dynamics, known exactly): params, item vectors, behaviour logs"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[
            OutputDoc {
                name: "world",
                help: "params: the world's params as JSON (irs.train, irs.eval, world.eval rebuild it)",
            },
            OutputDoc { name: "items", help: "item, topic, pool (sim, real or both)" },
            OutputDoc { name: "sim_item_vecs", help: "id, vector: the sim pool's item vectors" },
            OutputDoc { name: "real_item_vecs", help: "id, vector: the real pool's item vectors" },
            OutputDoc {
                name: "sim",
                help: "user, item, rating, ts: sim users' and logged users' half-star ratings of the sim pool",
            },
            OutputDoc {
                name: "real_train",
                help: "user, item, rating, ts: the logged users' ratings of the real pool",
            },
            OutputDoc { name: "sim_items", help: "item, n_train_ratings: the sim pool (data.split's layout)" },
            OutputDoc { name: "real_items", help: "item, n_train_ratings: the real pool" },
            OutputDoc {
                name: "logs",
                help: "user, session, step, item, click: behaviour-policy sessions of the logged real users",
            },
        ]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        config(p).map(|_| ())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<WorldParams>(p, PARAMS)
    }
    fn run(&self, ctx: &Context, _inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let p = config(p)?;
        ctx.progress(0.0, "generating");
        let w = World::new(&p).map_err(StageError::Input)?;
        let d = p.dim;
        let pool_vecs = |dy: Dynamics| {
            let pool = p.pool(dy);
            let flat = pool.iter().flat_map(|&i| w.item_vecs[i as usize * d..(i as usize + 1) * d].to_vec()).collect();
            vectors(pool.iter().map(|&i| i + 1).collect(), flat, d)
        };
        let one_based = |v: Vec<u32>| v.into_iter().map(|i| i + 1).collect::<Vec<_>>();
        let (sim, real) = (one_based(p.pool(Dynamics::Sim)), one_based(p.pool(Dynamics::Real)));
        let pool_of = |i: u32| match (sim.binary_search(&i).is_ok(), real.binary_search(&i).is_ok()) {
            (true, true) => "both",
            (true, false) => "sim",
            _ => "real",
        };
        let items = batch(vec![
            ("item", Arc::new(UInt32Array::from((1..=p.items as u32).collect::<Vec<_>>()))),
            ("topic", Arc::new(UInt32Array::from(w.topics.clone()))),
            ("pool", Arc::new(StringArray::from((1..=p.items as u32).map(pool_of).collect::<Vec<_>>()))),
        ])?;
        ctx.progress(0.3, "logging the behaviour policy's sessions");
        let logs = w.logs();
        ctx.check_cancelled()?;
        ctx.progress(0.7, "explicit ratings");
        let (sim_r, real_r) = w.ratings();
        let sim_items = pool_table(&sim, &[&sim_r])?;
        let real_items = pool_table(&real, &[&real_r])?;
        Ok(Outputs::from([
            ("world".to_string(), Artifact::Table(world_table(&p)?)),
            ("items".to_string(), Artifact::Table(items)),
            ("sim_item_vecs".to_string(), Artifact::Table(pool_vecs(Dynamics::Sim)?)),
            ("real_item_vecs".to_string(), Artifact::Table(pool_vecs(Dynamics::Real)?)),
            ("logs".to_string(), Artifact::Table(logs_table(&logs)?)),
            ("sim".to_string(), Artifact::Table(sim_r.into_batch()?)),
            ("real_train".to_string(), Artifact::Table(real_r.into_batch()?)),
            ("sim_items".to_string(), Artifact::Table(sim_items)),
            ("real_items".to_string(), Artifact::Table(real_items)),
        ]))
    }
}
