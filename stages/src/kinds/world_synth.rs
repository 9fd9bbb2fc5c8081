//! `world.synth`: an interactive world with known dynamics (boredom / satiation, see
//! `env/world.rs` and docs/design.md §7): its params (which rebuild it anywhere), item vectors of
//! the sim and real pools, and the shared real users' sessions logged by a behaviour policy.

use serde_json::Value;

use crate::api::artifact::{Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{OutputDoc, ParamDoc};
use crate::api::error::StageError;
use crate::api::params;
use crate::api::stage::Stage;
use crate::env::outputs::{world_outputs, WORLD_OUTPUTS};
use crate::env::world::{World, WorldParams};

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
        WORLD_OUTPUTS
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
        world_outputs(ctx, &w)
    }
}
