//! `world.eval`: the sanity baselines of an interactive world, served online to its fresh
//! real-dynamics users (test or validation): `random` (uniform over items not yet served) and
//! `popular` (items by their smoothed click rate in the logs, the same list for every user), and
//! `myopic`, a privileged reference no learner can be: it knows each user's taste and the real
//! dynamics and serves the item of the highest exact click probability given the session so far
//! (the best one-step policy; a planner that rotates topics can beat it when boredom is strong).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::artifact::{Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{InputDoc, OutputDoc, ParamDoc};
use crate::api::error::StageError;
use crate::api::params;
use crate::api::stage::Stage;
use crate::env::session::serve;
use crate::env::world::{
    first_unserved, logged_click_rates, logs_from_table, random_unserved, ranked, world_from_table, Dynamics, EvalUsers,
};
use crate::eval::metrics::online_session;
use crate::eval::tables::metric_tables;

#[derive(Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Policy {
    Random,
    Popular,
    Myopic,
}

#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct P {
    policy: Policy,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    users: EvalUsers,
    #[serde(default)]
    seed: u64,
}

const PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "policy", ty: "random | popular | myopic", default: None, help: "the baseline" },
    ParamDoc { name: "method", ty: "string", default: Some("the policy"), help: "label of the summary row" },
    ParamDoc { name: "users", ty: "test | val", default: Some("test"), help: "which fresh real-dynamics users" },
    ParamDoc { name: "seed", ty: "integer", default: Some("0"), help: "seed of `random`" },
];

/// The baselines stage.
pub struct WorldEval;

impl Stage for WorldEval {
    fn kind(&self) -> &'static str {
        "world.eval"
    }
    fn about(&self) -> &'static str {
        "random and most-popular served online to a world's real-dynamics test (or validation) users"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[
            InputDoc { name: "world", required: true, many: false, help: "world.synth world" },
            InputDoc { name: "logs", required: true, many: false, help: "world.synth logs (popularity)" },
        ]
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        crate::eval::tables::METRIC_OUTPUTS
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        params::parse::<P>(p, PARAMS).map(|_| ())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<P>(p, PARAMS)
    }
    fn run(&self, ctx: &Context, inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let p: P = params::parse(p, PARAMS)?;
        let w = world_from_table(inputs.table("world")?)?;
        let logs = logs_from_table(inputs.table("logs")?)?;
        let env = w.env(Dynamics::Real, p.users.population());
        let n = env.pool.len();
        let rates = logged_click_rates(&w, &logs);
        let by_rate = ranked(&rates, &env.pool);
        let pop = p.users.population();
        let users: Vec<usize> = (0..w.users(pop)).collect();
        ctx.progress(0.0, &format!("{} sessions", users.len()));
        let tastes: Vec<Vec<f64>> =
            if p.policy == Policy::Myopic { users.iter().map(|&u| w.taste(pop, u)).collect() } else { Vec::new() };
        let mut rngs: Vec<ChaCha8Rng> =
            users.iter().map(|&u| ChaCha8Rng::seed_from_u64(p.seed ^ (u as u64) << 20)).collect();
        let served = serve(&env, &users, w.p.session_len, 0, &mut |slot, so_far| match p.policy {
            Policy::Popular => first_unserved(&by_rate, so_far),
            Policy::Myopic => {
                let hist: Vec<u32> = so_far.iter().map(|&a| env.pool[a as usize]).collect();
                let score = |a: usize| w.prob(Dynamics::Real, &tastes[slot], &hist, env.pool[a]);
                (0..n)
                    .filter(|a| !so_far.contains(&(*a as i64)))
                    .max_by(|&a, &b| score(a).total_cmp(&score(b)).then(b.cmp(&a)))
                    .expect("session_len ≤ pool") as i64
            }
            Policy::Random => random_unserved(&mut rngs[slot], n, so_far),
        });
        let rows: Vec<(u32, _)> =
            served.iter().enumerate().map(|(u, s)| (u as u32 + 1, online_session(&s.1))).collect();
        let label = p.method.clone().unwrap_or_else(|| {
            match p.policy {
                Policy::Popular => "popular",
                Policy::Random => "random",
                Policy::Myopic => "myopic",
            }
            .into()
        });
        metric_tables(&label, &rows)
    }
}
