//! `data.split`: the paper's §5 sim/real split, as docs/design.md §6 fixes it.
//!
//! Items of the `sim` category form the sim pool, items of the `real` category the real pool;
//! items in both are dropped, then items with fewer than `min_item_ratings` ratings. Real users
//! (≥ `min_user_ratings` real ratings) are shuffled with `seed`: `test_frac` of them are test
//! users, `val_frac` of the rest validation users, and up to `shared_users` of the remainder are
//! the shared training users whose real ratings form D_real. D_sim holds every sim rating of every
//! user (a test user's sim history is prior data from another category; only their real ratings
//! are hidden).
//!
//! Group mode (the RQ2 gap study): with a `groups` input (user, group — e.g. study.groups_rq2)
//! and `sim_group` set, one item pool serves both domains (`pool`: a category, or every item):
//! the sim domain is the pool's ratings by users of `sim_group`, the real domain those by users of
//! `real_group`, split into test/validation/shared users as above.

use std::sync::Arc;

use arrow::array::{StringArray, UInt32Array};
use serde_json::Value;

use crate::api::artifact::{Artifact, Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{InputDoc, OutputDoc, ParamDoc};
use crate::api::error::StageError;
use crate::api::params;
use crate::api::stage::Stage;
use crate::data::items::Items;
use crate::data::ratings::Ratings;
use crate::data::split::{pool_table, split, split_groups, Groups, SplitConfig};
use crate::data::table::{batch, counters};

/// The split stage.
pub struct Split;

const PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "sim", ty: "string", default: None, help: "category of the sim domain (genre or type)" },
    ParamDoc { name: "real", ty: "string", default: None, help: "category of the real domain" },
    ParamDoc {
        name: "pair",
        ty: "string `Sim_Real`",
        default: Some("none"),
        help: "sim and real in one value (for a matrix over dataset pairs), instead of `sim` and `real`",
    },
    ParamDoc {
        name: "sim_group",
        ty: "integer",
        default: Some("none"),
        help: "group mode: the `groups` input's group whose users form the sim domain",
    },
    ParamDoc { name: "real_group", ty: "integer", default: Some("0"), help: "group mode: the real users' group" },
    ParamDoc {
        name: "only_group",
        ty: "integer",
        default: Some("none"),
        help: "category mode: keep only the users of this group of the `groups` input (RQ3)",
    },
    ParamDoc {
        name: "pool",
        ty: "string",
        default: Some("every item"),
        help: "group mode: the category of the shared item pool",
    },
    ParamDoc { name: "min_item_ratings", ty: "integer", default: Some("5"), help: "drop rarer items" },
    ParamDoc {
        name: "min_user_ratings",
        ty: "integer",
        default: Some("5"),
        help: "real users need this many real ratings",
    },
    ParamDoc {
        name: "test_frac",
        ty: "number in [0, 1)",
        default: Some("0.9"),
        help: "share of real users held out for test",
    },
    ParamDoc {
        name: "val_frac",
        ty: "number in [0, 1)",
        default: Some("0.2"),
        help: "share of the rest used for validation",
    },
    ParamDoc { name: "shared_users", ty: "integer", default: Some("200"), help: "shared training users (real logs)" },
    ParamDoc { name: "seed", ty: "integer", default: Some("0"), help: "user shuffle seed" },
];

fn check(mut p: SplitConfig) -> Result<SplitConfig, StageError> {
    if p.only_group.is_some() && p.sim_group.is_some() {
        return Err(params::invalid(
            "`only_group` restricts a category split; it cannot be used with `sim_group`",
            PARAMS,
        ));
    }
    if let Some(g) = p.sim_group {
        if p.pair.is_some() || !p.sim.is_empty() || !p.real.is_empty() {
            return Err(params::invalid("group mode (`sim_group`) takes `pool`, not `sim`/`real`/`pair`", PARAMS));
        }
        if g == p.real_group {
            return Err(params::invalid(format!("`sim_group` and `real_group` are both {g}"), PARAMS));
        }
        p.sim = format!("group {g}");
        p.real = format!("group {}", p.real_group);
    } else if p.pool.is_some() {
        return Err(params::invalid("`pool` needs group mode (`sim_group` and a `groups` input)", PARAMS));
    }
    if let Some(pair) = p.pair.take() {
        if !p.sim.is_empty() || !p.real.is_empty() {
            return Err(params::invalid("give either `pair` or `sim` and `real`, not both", PARAMS));
        }
        let Some((s, r)) = pair.split_once('_') else {
            return Err(params::invalid(format!("`pair` must be `Sim_Real`, got `{pair}`"), PARAMS));
        };
        (p.sim, p.real) = (s.to_string(), r.to_string());
    }
    if p.sim.is_empty() || p.real.is_empty() {
        return Err(params::invalid("`sim` and `real` (or `pair`) are required", PARAMS));
    }
    if !(0.0..1.0).contains(&p.test_frac) {
        return Err(params::invalid(format!("`test_frac` must be in [0, 1), got {}", p.test_frac), PARAMS));
    }
    if !(0.0..1.0).contains(&p.val_frac) {
        return Err(params::invalid(format!("`val_frac` must be in [0, 1), got {}", p.val_frac), PARAMS));
    }
    if p.sim == p.real {
        return Err(params::invalid(format!("`sim` and `real` are both `{}`", p.sim), PARAMS));
    }
    if p.shared_users == 0 {
        return Err(params::invalid("`shared_users` must be ≥ 1", PARAMS));
    }
    Ok(p)
}

/// Parses and checks `data.split` params (also for tests and benchmarks).
pub fn config(params_json: &Value) -> Result<SplitConfig, StageError> {
    check(params::parse(params_json, PARAMS)?)
}

impl Stage for Split {
    fn kind(&self) -> &'static str {
        "data.split"
    }
    fn about(&self) -> &'static str {
        "the paper's sim/real split: sim ratings, real training logs, validation and test users"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[
            InputDoc { name: "ratings", required: true, many: false, help: "a loader's ratings" },
            InputDoc { name: "items", required: true, many: false, help: "a loader's items" },
            InputDoc {
                name: "groups",
                required: false,
                many: false,
                help: "group mode: user, group (study.groups_rq2 or data.synth groups)",
            },
        ]
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[
            OutputDoc { name: "sim", help: "D_sim: every sim-domain rating" },
            OutputDoc { name: "real_train", help: "D_real: real ratings of the shared users" },
            OutputDoc { name: "val", help: "real ratings of validation users" },
            OutputDoc { name: "test", help: "real ratings of test users" },
            OutputDoc { name: "sim_items", help: "the sim item pool (item, n_train_ratings)" },
            OutputDoc { name: "real_items", help: "the real item pool (item, n_train_ratings)" },
            OutputDoc { name: "users", help: "user, role (sim_only, shared, val, test)" },
            OutputDoc { name: "info", help: "counters: items dropped, real users, max rating ×10" },
        ]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        check(params::parse::<SplitConfig>(p, PARAMS)?).map(|_| ())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<SplitConfig>(p, PARAMS)
    }
    fn run(&self, ctx: &Context, inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let ratings = Ratings::from_batch(inputs.table("ratings")?, "ratings")?;
        let items = Items::from_batch(inputs.table("items")?, "items")?;
        ctx.progress(0.2, "splitting");
        let s = if inputs.has("groups") {
            let g = inputs.table("groups")?;
            let users = crate::data::table::column::<UInt32Array>(g, "groups", "user")?.values();
            let group = crate::data::table::column::<UInt32Array>(g, "groups", "group")?.values();
            let map: Groups = users.iter().copied().zip(group.iter().copied()).collect();
            let pp = check(params::parse(p, PARAMS)?)?;
            match (pp.sim_group, pp.only_group) {
                (Some(_), _) => split_groups(&ratings, &items, Some(&map), &pp)?,
                (None, Some(g)) => {
                    let kept = ratings.filter(|k| map.get(&ratings.user[k]) == Some(&g));
                    if kept.is_empty() {
                        return Err(StageError::Data(format!("no ratings by users of group {g} (`only_group`)")));
                    }
                    split(&kept, &items, &SplitConfig { only_group: None, ..pp })?
                }
                (None, None) => return Err(StageError::Input(
                    "a `groups` input needs `sim_group` (group mode) or `only_group` (a category split of one group)"
                        .into(),
                )),
            }
        } else {
            split(&ratings, &items, &config(p)?)?
        };
        let users = batch(vec![
            ("user", Arc::new(UInt32Array::from(s.users.iter().map(|u| u.0).collect::<Vec<_>>()))),
            ("role", Arc::new(StringArray::from(s.users.iter().map(|u| u.1).collect::<Vec<_>>()))),
        ])?;
        let sim_items = pool_table(&s.sim_items, &[&s.sim])?;
        let real_items = pool_table(&s.real_items, &[&s.real_train])?;
        Ok(Outputs::from([
            ("sim".to_string(), Artifact::Table(s.sim.into_batch()?)),
            ("real_train".to_string(), Artifact::Table(s.real_train.into_batch()?)),
            ("val".to_string(), Artifact::Table(s.val.into_batch()?)),
            ("test".to_string(), Artifact::Table(s.test.into_batch()?)),
            ("sim_items".to_string(), Artifact::Table(sim_items)),
            ("real_items".to_string(), Artifact::Table(real_items)),
            ("users".to_string(), Artifact::Table(users)),
            ("info".to_string(), Artifact::Table(counters(&s.info)?)),
        ]))
    }
}
