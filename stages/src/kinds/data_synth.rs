//! `data.synth`: a seeded synthetic world with the loaders' output schema and a known dynamics gap.
//!
//! Latent factors: user `u ~ N(0, I/d)`, item `v ~ N(0, I)`, item bias `b ~ N(0, 0.25)`; affinity
//! `a = ⟨u, v⟩ + b`. Each user rates items of two categories with disjoint items (sim items come
//! first in id order), drawn by a Zipf popularity, interleaved in time.
//!
//! Sim dynamics: `y = clamp(round(3 + a + ε), 1, 5)`, ε ~ N(0, noise²), independent of history.
//! Real dynamics respond to the session history (the `gap` knob, 0 = same as sim):
//! `y = clamp(round(3 + a·(1 + gap·polar) + gap·momentum·m − gap·drift·min(t, T)/T + ε), 1, 5)`
//! where `m` = mean of (y − 3) over the user's last `window` real ratings (0 when none) and `t` the
//! number of earlier real ratings. So a larger gap polarises real ratings (a wider spread) and makes
//! them fall over a session (drift). Every parameter is written to the `truth*` outputs, so the
//! exact real and sim rating distributions can be rebuilt (an oracle).
//!
//! `shared_pool: true` is the RQ2 setting: one item pool (the sim category's items), and the users
//! are of two kinds — the first `1 − real_users` share rate with the sim dynamics (group 1), the
//! rest with the real dynamics (group 0); history (momentum, drift) is the user's own earlier
//! ratings. `groups` (user, group) feeds data.split's group mode.
//!
//! `oracle_ratings` are the same users, items, times and noise draws with every rating made by the
//! real dynamics (each user's counterfactual real trajectory): the simulator of the `oracle`
//! method, which is trained on the real dynamics and bounds what dynamics adaptation can reach.

use std::sync::Arc;

use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, Float64Array, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field};
use serde_json::Value;

use crate::api::artifact::{Artifact, Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{OutputDoc, ParamDoc};
use crate::api::error::StageError;
use crate::api::params;
use crate::api::stage::Stage;
use crate::data::synth::{generate, SynthParams};
use crate::data::table::{batch, counters};

/// The generator stage.
pub struct Synth;

const PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "users", ty: "integer", default: Some("1000"), help: "users" },
    ParamDoc { name: "sim_items", ty: "integer", default: Some("200"), help: "items of the sim category" },
    ParamDoc { name: "real_items", ty: "integer", default: Some("200"), help: "items of the real category" },
    ParamDoc { name: "dim", ty: "integer", default: Some("8"), help: "latent dimension" },
    ParamDoc { name: "ratings_per_user", ty: "number", default: Some("80"), help: "mean ratings per user" },
    ParamDoc { name: "sim_share", ty: "number in (0, 1)", default: Some("0.5"), help: "share of ratings in sim" },
    ParamDoc { name: "gap", ty: "number ≥ 0", default: Some("0"), help: "real-vs-sim dynamics gap" },
    ParamDoc { name: "polar", ty: "number", default: Some("1"), help: "polarisation weight" },
    ParamDoc { name: "momentum", ty: "number", default: Some("0.5"), help: "history momentum weight" },
    ParamDoc { name: "drift", ty: "number", default: Some("1"), help: "in-session drift weight" },
    ParamDoc { name: "window", ty: "integer", default: Some("5"), help: "momentum history window" },
    ParamDoc { name: "session", ty: "integer", default: Some("32"), help: "session length T of the drift" },
    ParamDoc { name: "noise", ty: "number ≥ 0", default: Some("0.5"), help: "rating noise std" },
    ParamDoc { name: "zipf", ty: "number ≥ 0", default: Some("0.8"), help: "popularity skew" },
    ParamDoc { name: "shared_pool", ty: "bool", default: Some("false"), help: "one pool, users of two dynamics (RQ2)" },
    ParamDoc {
        name: "real_users",
        ty: "number in (0, 1)",
        default: Some("0.5"),
        help: "shared_pool: real-dynamics share",
    },
    ParamDoc { name: "categories", ty: "[string, string]", default: Some("[Sim, Real]"), help: "category names" },
    ParamDoc { name: "seed", ty: "integer", default: Some("0"), help: "seed" },
];

fn check(p: &SynthParams) -> Result<(), StageError> {
    let bad = |m: String| Err(params::invalid(m, PARAMS));
    if p.users == 0 || p.sim_items == 0 || p.real_items == 0 || p.dim == 0 {
        return bad("`users`, `sim_items`, `real_items` and `dim` must be ≥ 1".into());
    }
    if !(p.sim_share > 0.0 && p.sim_share < 1.0) {
        return bad(format!("`sim_share` must be in (0, 1), got {}", p.sim_share));
    }
    if p.gap < 0.0 || p.noise < 0.0 || p.zipf < 0.0 || p.ratings_per_user < 2.0 {
        return bad("`gap`, `noise`, `zipf` must be ≥ 0 and `ratings_per_user` ≥ 2".into());
    }
    if p.shared_pool && !(p.real_users > 0.0 && p.real_users < 1.0) {
        return bad(format!("`real_users` must be in (0, 1), got {}", p.real_users));
    }
    if p.categories[0] == p.categories[1] {
        return bad("the two `categories` must differ".into());
    }
    Ok(())
}

/// Parses and checks `data.synth` params (also for tests).
pub fn config(v: &Value) -> Result<SynthParams, StageError> {
    let p: SynthParams = params::parse(v, PARAMS)?;
    check(&p)?;
    Ok(p)
}

fn factors(
    ids: Vec<u32>,
    flat: &[f32],
    d: usize,
    extra: Vec<(&str, ArrayRef)>,
) -> Result<arrow::record_batch::RecordBatch, StageError> {
    let values = Arc::new(Float32Array::from(flat.to_vec()));
    let list =
        FixedSizeListArray::try_new(Arc::new(Field::new("item", DataType::Float32, false)), d as i32, values, None)?;
    let mut cols: Vec<(&str, ArrayRef)> = vec![("id", Arc::new(UInt32Array::from(ids))), ("factors", Arc::new(list))];
    cols.extend(extra);
    batch(cols)
}

impl Stage for Synth {
    fn kind(&self) -> &'static str {
        "data.synth"
    }
    fn about(&self) -> &'static str {
        "a synthetic world with two categories and a known real-vs-sim dynamics gap"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[
            OutputDoc { name: "ratings", help: "user, item, rating (1–5), ts" },
            OutputDoc { name: "items", help: "item, title, categories, genres" },
            OutputDoc { name: "report", help: "counters like a loader's" },
            OutputDoc { name: "truth_users", help: "id, factors" },
            OutputDoc { name: "truth_items", help: "id, factors, bias, category" },
            OutputDoc { name: "truth", help: "key, value: every scalar param of the dynamics" },
            OutputDoc { name: "oracle_ratings", help: "the same ratings, every one made by the real dynamics" },
            OutputDoc { name: "groups", help: "user, group: 0 = real dynamics, 1 = sim dynamics (shared_pool)" },
        ]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        config(p).map(|_| ())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<SynthParams>(p, PARAMS)
    }
    fn run(&self, ctx: &Context, _inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let p = config(p)?;
        ctx.progress(0.0, "generating");
        let w = generate(&p);
        ctx.check_cancelled()?;
        let (ratings, dups) = w.ratings.clone().sort_dedupe();
        let (oracle, _) = w.oracle.clone().sort_dedupe();
        let groups = batch(vec![
            ("user", Arc::new(UInt32Array::from(w.groups.iter().map(|g| g.0).collect::<Vec<_>>()))),
            ("group", Arc::new(UInt32Array::from(w.groups.iter().map(|g| g.1).collect::<Vec<_>>()))),
        ])?;
        let report = counters(&[
            ("ratings", ratings.len() as i64),
            ("users", p.users as i64),
            ("items", w.items.item.len() as i64),
            ("duplicates", dups as i64),
        ])?;
        let d = p.dim;
        let n_items = p.sim_items + p.real_items;
        let truth_users = factors((1..=p.users as u32).collect(), &w.user_factors, d, vec![])?;
        let cats: Vec<&str> = (0..n_items)
            .map(|k| if k < p.sim_items { p.categories[0].as_str() } else { p.categories[1].as_str() })
            .collect();
        let truth_items = factors(
            (1..=n_items as u32).collect(),
            &w.item_factors,
            d,
            vec![
                ("bias", Arc::new(Float32Array::from(w.item_bias.clone()))),
                ("category", Arc::new(StringArray::from(cats))),
            ],
        )?;
        let scalars = [
            ("gap", p.gap),
            ("polar", p.polar),
            ("momentum", p.momentum),
            ("drift", p.drift),
            ("window", p.window as f64),
            ("session", p.session as f64),
            ("noise", p.noise),
            ("dim", d as f64),
            ("sim_items", p.sim_items as f64),
            ("real_items", p.real_items as f64),
        ];
        let truth = batch(vec![
            ("key", Arc::new(StringArray::from(scalars.iter().map(|s| s.0).collect::<Vec<_>>()))),
            ("value", Arc::new(Float64Array::from(scalars.iter().map(|s| s.1).collect::<Vec<_>>()))),
        ])?;
        Ok(Outputs::from([
            ("ratings".to_string(), Artifact::Table(ratings.into_batch()?)),
            ("items".to_string(), Artifact::Table(w.items.to_batch()?)),
            ("report".to_string(), Artifact::Table(report)),
            ("truth_users".to_string(), Artifact::Table(truth_users)),
            ("truth_items".to_string(), Artifact::Table(truth_items)),
            ("truth".to_string(), Artifact::Table(truth)),
            ("oracle_ratings".to_string(), Artifact::Table(oracle.into_batch()?)),
            ("groups".to_string(), Artifact::Table(groups)),
        ]))
    }
}
