//! `eval.static`: non-interactive baselines on test users (docs/design.md §6, Methods and Evaluation):
//! `mf` / `darec` (greedy by ⟨u^S, v^R⟩ with raw or adapted vectors), `random` and `popular`
//! (most rated in D_real). Each test user gets T recommendations from the real pool without
//! repeats; metrics come from the shared [`metrics`](crate::eval::metrics) module.

use std::collections::HashMap;

use arrow::array::UInt32Array;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::artifact::{Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{InputDoc, OutputDoc, ParamDoc};
use crate::api::error::StageError;
use crate::api::params;
use crate::api::stage::Stage;
use crate::data::ratings::Ratings;
use crate::data::sessions::ratings_by_user;
use crate::data::table::{column, read_vectors};
use crate::eval::metrics::{infer_y_max, session, top_t, RewardMap, Rule, SessionMetrics};
use crate::eval::tables::{metric_tables, METRIC_OUTPUTS};

/// The static evaluator.
pub struct EvalStatic;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct P {
    method: String,
    #[serde(default = "d_t")]
    session_len: usize,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    rating_max: Option<f32>,
    #[serde(default)]
    relevant_above: Option<f32>,
    #[serde(default)]
    reward: RewardMap,
}
fn d_t() -> usize {
    32
}

const METHODS: &[&str] = &["mf", "darec", "random", "popular"];

const PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "method", ty: "mf | darec | random | popular", default: None, help: "the baseline" },
    ParamDoc { name: "session_len", ty: "integer", default: Some("32"), help: "T" },
    ParamDoc { name: "seed", ty: "integer", default: Some("0"), help: "seed of `random`" },
    ParamDoc { name: "rating_max", ty: "number", default: Some("5 if every rating ≤ 5, else 10"), help: "y_max" },
    ParamDoc {
        name: "relevant_above",
        ty: "number",
        default: Some("3 for y_max 5, 5 for 10"),
        help: "relevance threshold",
    },
    ParamDoc {
        name: "reward",
        ty: RewardMap::CHOICES,
        default: Some("signed"),
        help: "rated item: 2y/y_max − 1 (signed, TPGR) or y/y_max (normalized); unrated: 0",
    },
];

fn check(p: &P) -> Result<(), StageError> {
    if !METHODS.contains(&p.method.as_str()) {
        return Err(params::invalid(format!("`method` must be one of {METHODS:?}, got `{}`", p.method), PARAMS));
    }
    if p.session_len == 0 {
        return Err(params::invalid("`session_len` must be ≥ 1", PARAMS));
    }
    Ok(())
}

impl Stage for EvalStatic {
    fn kind(&self) -> &'static str {
        "eval.static"
    }
    fn about(&self) -> &'static str {
        "MF/DARec/random/popular sessions for test users, with reward, P@T, R@T, F1@T"
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
                name: "test",
                required: true,
                many: false,
                help: "split.test (or split.val for model selection)",
            },
            InputDoc {
                name: "real_items",
                required: true,
                many: false,
                help: "split.real_items (pool, with training counts)",
            },
            InputDoc { name: "user_vecs", required: false, many: false, help: "sim user vectors (mf, darec)" },
            InputDoc { name: "item_vecs", required: false, many: false, help: "real item vectors (mf, darec)" },
        ]
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        METRIC_OUTPUTS
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        check(&params::parse(p, PARAMS)?)
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<P>(p, PARAMS)
    }
    fn run(&self, _ctx: &Context, inputs: &Inputs, pv: &Value) -> Result<Outputs, StageError> {
        let p: P = params::parse(pv, PARAMS)?;
        check(&p)?;
        let test = Ratings::from_batch(inputs.table("test")?, "test")?;
        let pool_t = inputs.table("real_items")?;
        let pool: Vec<u32> = column::<UInt32Array>(pool_t, "real_items", "item")?.values().to_vec();
        let counts: Vec<f64> = column::<UInt32Array>(pool_t, "real_items", "n_train_ratings")?
            .values()
            .iter()
            .map(|&c| f64::from(c))
            .collect();
        let mut rule = Rule::for_scale(p.rating_max.unwrap_or_else(|| infer_y_max([&test])));
        rule.reward = p.reward;
        if let Some(r) = p.relevant_above {
            rule.relevant_above = r;
        }
        let by_user = ratings_by_user(&test);
        let vecs = if matches!(p.method.as_str(), "mf" | "darec") {
            if !inputs.has("user_vecs") || !inputs.has("item_vecs") {
                return Err(StageError::Input(format!(
                    "method `{}` needs inputs `user_vecs` and `item_vecs`",
                    p.method
                )));
            }
            let (uids, uflat, d) = read_vectors(inputs.table("user_vecs")?, "user_vecs")?;
            let (iids, iflat, d2) = read_vectors(inputs.table("item_vecs")?, "item_vecs")?;
            if d != d2 {
                return Err(StageError::Input(format!("user vectors have {d} dimensions, item vectors {d2}")));
            }
            let users: HashMap<u32, usize> = uids.iter().enumerate().map(|(i, &u)| (u, i)).collect();
            let items: HashMap<u32, usize> = iids.iter().enumerate().map(|(i, &u)| (u, i)).collect();
            Some((users, uflat, items, iflat, d))
        } else {
            None
        };
        let popular = top_t(&pool, &counts, p.session_len);
        let mut rows: Vec<(u32, SessionMetrics)> = Vec::with_capacity(by_user.len());
        for (&user, ratings) in &by_user {
            let recs = match p.method.as_str() {
                "random" => {
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed ^ (u64::from(user) << 17));
                    let mut v = pool.clone();
                    v.shuffle(&mut rng);
                    v.truncate(p.session_len);
                    v
                }
                "popular" => popular.clone(),
                _ => {
                    let (users, uflat, items, iflat, d) = vecs.as_ref().expect("checked above");
                    let zero = vec![0f32; *d];
                    let u = users.get(&user).map(|&i| &uflat[i * d..(i + 1) * d]).unwrap_or(&zero);
                    let scores: Vec<f64> = pool
                        .iter()
                        .map(|it| {
                            items.get(it).map_or(f64::NEG_INFINITY, |&j| {
                                iflat[j * d..(j + 1) * d]
                                    .iter()
                                    .zip(u)
                                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                                    .sum()
                            })
                        })
                        .collect();
                    top_t(&pool, &scores, p.session_len)
                }
            };
            rows.push((user, session(&recs, ratings, rule, p.session_len)));
        }
        metric_tables(&p.method, &rows)
    }
}
