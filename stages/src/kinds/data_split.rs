//! `data.split`: the paper's §5 sim/real split, as design.md §6 fixes it.
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{StringArray, UInt32Array};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Deserialize;
use serde_json::Value;

use crate::artifact::{Artifact, Inputs, Outputs};
use crate::error::StageError;
use crate::params;
use crate::ratings::{Items, Ratings};
use crate::stage::{Context, InputDoc, OutputDoc, ParamDoc, Stage};
use crate::table::{batch, counters};

/// The split stage.
pub struct Split;

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct P {
    #[serde(default)]
    sim: String,
    #[serde(default)]
    real: String,
    #[serde(default)]
    pair: Option<String>,
    #[serde(default)]
    pool: Option<String>,
    #[serde(default)]
    sim_group: Option<u32>,
    #[serde(default)]
    real_group: u32,
    #[serde(default)]
    only_group: Option<u32>,
    #[serde(default = "five")]
    min_item_ratings: usize,
    #[serde(default = "five")]
    min_user_ratings: usize,
    #[serde(default = "test_frac")]
    test_frac: f64,
    #[serde(default = "val_frac")]
    val_frac: f64,
    #[serde(default = "shared")]
    shared_users: usize,
    #[serde(default)]
    seed: u64,
}
fn five() -> usize {
    5
}
fn test_frac() -> f64 {
    0.9
}
fn val_frac() -> f64 {
    0.2
}
fn shared() -> usize {
    200
}

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

/// Roles of users in the split.
pub const ROLES: [&str; 4] = ["sim_only", "shared", "val", "test"];

fn check(mut p: P) -> Result<P, StageError> {
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

/// The result of a split (also used by tests and benchmarks directly).
#[derive(Debug, Clone, PartialEq)]
pub struct SplitResult {
    /// D_sim.
    pub sim: Ratings,
    /// D_real: real ratings of the shared users.
    pub real_train: Ratings,
    /// Real ratings of validation users.
    pub val: Ratings,
    /// Real ratings of test users.
    pub test: Ratings,
    /// Sim item pool, sorted.
    pub sim_items: Vec<u32>,
    /// Real item pool, sorted.
    pub real_items: Vec<u32>,
    /// (user, role) sorted by user.
    pub users: Vec<(u32, &'static str)>,
    /// Counters (dropped items, max rating…).
    pub info: Vec<(&'static str, i64)>,
}

fn available(items: &Items) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for cats in &items.categories {
        for c in cats {
            *counts.entry(c).or_default() += 1;
        }
    }
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.iter().map(|(c, n)| format!("{c} ({n})")).collect::<Vec<_>>().join(", ")
}

/// Group mode: the user → group map.
pub type Groups = HashMap<u32, u32>;

fn run_split(ratings: &Ratings, items: &Items, p: &P) -> Result<SplitResult, StageError> {
    run_split_groups(ratings, items, None, p)
}

fn run_group_pool(ratings: &Ratings, items: &Items, groups: &Groups, p: &P) -> Result<SplitResult, StageError> {
    let sim_group = p.sim_group.expect("group mode");
    let in_pool: HashSet<u32> = match &p.pool {
        Some(c) => {
            let ids = items.ids_in(c);
            if ids.is_empty() {
                return Err(StageError::Data(format!(
                    "unknown category `{c}` (param `pool`); available (items): {}",
                    available(items)
                )));
            }
            ids
        }
        None => items.item.iter().copied().collect(),
    };
    let dom_of_user = |u: u32| match groups.get(&u) {
        Some(&g) if g == sim_group => Some(0u8),
        Some(&g) if g == p.real_group => Some(1u8),
        _ => None,
    };
    let mut item_count: HashMap<u32, usize> = HashMap::new();
    for k in 0..ratings.len() {
        if in_pool.contains(&ratings.item[k]) && dom_of_user(ratings.user[k]).is_some() {
            *item_count.entry(ratings.item[k]).or_default() += 1;
        }
    }
    let mut pool: Vec<u32> =
        item_count.iter().filter(|(_, n)| **n >= p.min_item_ratings.max(1)).map(|(i, _)| *i).collect();
    pool.sort_unstable();
    if pool.is_empty() {
        return Err(StageError::Data(format!(
            "the pool is empty: no item has {} ratings by users of groups {sim_group} and {} (param `min_item_ratings`)",
            p.min_item_ratings, p.real_group
        )));
    }
    let rare = (in_pool.len() - pool.len()) as i64;
    let keep: HashSet<u32> = pool.iter().copied().collect();
    let dom = |k: usize| if keep.contains(&ratings.item[k]) { dom_of_user(ratings.user[k]) } else { None };
    assign_users(ratings, &dom, pool.clone(), pool, vec![("items_in_both_dropped", 0), ("rare_items_dropped", rare)], p)
}

fn run_split_groups(
    ratings: &Ratings,
    items: &Items,
    groups: Option<&Groups>,
    p: &P,
) -> Result<SplitResult, StageError> {
    if let Some(g) = groups {
        return run_group_pool(ratings, items, g, p);
    }
    if p.sim_group.is_some() {
        return Err(StageError::Input("group mode (`sim_group`) needs the `groups` input (user, group)".into()));
    }
    if p.only_group.is_some() {
        return Err(StageError::Input("`only_group` needs the `groups` input (user, group)".into()));
    }
    let has = |c: &str| items.categories.iter().any(|cs| cs.iter().any(|x| x == c));
    for (name, c) in [("sim", &p.sim), ("real", &p.real)] {
        if !has(c) {
            return Err(StageError::Data(format!(
                "unknown category `{c}` (param `{name}`); available (items): {}",
                available(items)
            )));
        }
    }
    // Domain of each item: 0 = sim, 1 = real.
    let mut domain: HashMap<u32, u8> = HashMap::new();
    let mut both = 0i64;
    for (id, cats) in items.item.iter().zip(&items.categories) {
        let s = cats.contains(&p.sim);
        let r = cats.contains(&p.real);
        match (s, r) {
            (true, true) => both += 1,
            (true, false) => {
                domain.insert(*id, 0);
            }
            (false, true) => {
                domain.insert(*id, 1);
            }
            _ => {}
        }
    }
    let mut item_count: HashMap<u32, usize> = HashMap::new();
    for &i in &ratings.item {
        if domain.contains_key(&i) {
            *item_count.entry(i).or_default() += 1;
        }
    }
    let mut rare = 0i64;
    domain.retain(|i, _| {
        let keep = item_count.get(i).copied().unwrap_or(0) >= p.min_item_ratings.max(1);
        rare += i64::from(!keep);
        keep
    });
    let mut sim_items: Vec<u32> = domain.iter().filter(|(_, d)| **d == 0).map(|(i, _)| *i).collect();
    let mut real_items: Vec<u32> = domain.iter().filter(|(_, d)| **d == 1).map(|(i, _)| *i).collect();
    sim_items.sort_unstable();
    real_items.sort_unstable();
    for (name, c, pool) in [("sim", &p.sim, &sim_items), ("real", &p.real, &real_items)] {
        if pool.is_empty() {
            return Err(StageError::Data(format!(
                "the {name} domain `{c}` is empty after dropping items in both categories and items with fewer than {} ratings (param `min_item_ratings`)",
                p.min_item_ratings
            )));
        }
    }
    let dom = |k: usize| domain.get(&ratings.item[k]).copied();
    assign_users(
        ratings,
        &dom,
        sim_items,
        real_items,
        vec![("items_in_both_dropped", both), ("rare_items_dropped", rare)],
        p,
    )
}

/// Real users → test / validation / shared, and the rating sets, given each rating's domain.
fn assign_users(
    ratings: &Ratings,
    dom: &dyn Fn(usize) -> Option<u8>,
    sim_items: Vec<u32>,
    real_items: Vec<u32>,
    mut info: Vec<(&'static str, i64)>,
    p: &P,
) -> Result<SplitResult, StageError> {
    // Real users.
    let mut real_count: BTreeMap<u32, usize> = BTreeMap::new();
    for k in 0..ratings.len() {
        if dom(k) == Some(1) {
            *real_count.entry(ratings.user[k]).or_default() += 1;
        }
    }
    let mut real_users: Vec<u32> =
        real_count.iter().filter(|(_, n)| **n >= p.min_user_ratings.max(1)).map(|(u, _)| *u).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed);
    real_users.shuffle(&mut rng);
    let n = real_users.len();
    let n_test = ((n as f64) * p.test_frac).round() as usize;
    let rest = n - n_test;
    let n_val = ((rest as f64) * p.val_frac).round() as usize;
    let n_shared = (rest - n_val).min(p.shared_users);
    if n_shared == 0 {
        return Err(StageError::Data(format!(
            "no shared users: {n} users have ≥ {} `{}` ratings; {n_test} went to test (`test_frac` {}) and {n_val} to validation (`val_frac` {}); lower them or `min_user_ratings`",
            p.min_user_ratings, p.real, p.test_frac, p.val_frac
        )));
    }
    let mut role: HashMap<u32, &'static str> = HashMap::new();
    for (k, &u) in real_users.iter().enumerate() {
        let r = if k < n_test {
            "test"
        } else if k < n_test + n_val {
            "val"
        } else if k < n_test + n_val + n_shared {
            "shared"
        } else {
            continue;
        };
        role.insert(u, r);
    }
    let sim = ratings.filter(|k| dom(k) == Some(0));
    let real_of = |want: &str| ratings.filter(|k| dom(k) == Some(1) && role.get(&ratings.user[k]) == Some(&want));
    let real_train = real_of("shared");
    let val = real_of("val");
    let test = real_of("test");
    let sim_users: HashSet<u32> = sim.user.iter().copied().collect();
    let mut users: Vec<(u32, &'static str)> = role.iter().map(|(u, r)| (*u, *r)).collect();
    for &u in &sim_users {
        if !role.contains_key(&u) {
            users.push((u, "sim_only"));
        }
    }
    users.sort_unstable();
    let max_rating = ratings.rating.iter().copied().fold(0.0f32, f32::max);
    info.extend([
        ("real_users", n as i64),
        ("real_users_unused", (n - n_test - n_val - n_shared) as i64),
        ("rating_max_x10", (max_rating * 10.0).round() as i64),
    ]);
    Ok(SplitResult { sim, real_train, val, test, sim_items, real_items, users, info })
}

/// Splits `ratings`/`items` with params given as JSON (see the stage's params).
pub fn split(ratings: &Ratings, items: &Items, params_json: &Value) -> Result<SplitResult, StageError> {
    let p = check(params::parse(params_json, PARAMS)?)?;
    run_split(ratings, items, &p)
}

fn pool(items: &[u32], ratings: &[&Ratings]) -> Result<arrow::record_batch::RecordBatch, StageError> {
    let mut count: HashMap<u32, u32> = HashMap::new();
    for r in ratings {
        for &i in &r.item {
            *count.entry(i).or_default() += 1;
        }
    }
    let n: Vec<u32> = items.iter().map(|i| count.get(i).copied().unwrap_or(0)).collect();
    batch(vec![
        ("item", Arc::new(UInt32Array::from(items.to_vec()))),
        ("n_train_ratings", Arc::new(UInt32Array::from(n))),
    ])
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
        check(params::parse::<P>(p, PARAMS)?).map(|_| ())
    }
    fn run(&self, ctx: &Context, inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let ratings = Ratings::from_batch(inputs.table("ratings")?, "ratings")?;
        let items = Items::from_batch(inputs.table("items")?, "items")?;
        ctx.progress(0.2, "splitting");
        let s = if inputs.has("groups") {
            let g = inputs.table("groups")?;
            let users = crate::table::column::<UInt32Array>(g, "groups", "user")?.values();
            let group = crate::table::column::<UInt32Array>(g, "groups", "group")?.values();
            let map: Groups = users.iter().copied().zip(group.iter().copied()).collect();
            let pp = check(params::parse(p, PARAMS)?)?;
            match (pp.sim_group, pp.only_group) {
                (Some(_), _) => run_split_groups(&ratings, &items, Some(&map), &pp)?,
                (None, Some(g)) => {
                    let kept = ratings.filter(|k| map.get(&ratings.user[k]) == Some(&g));
                    if kept.is_empty() {
                        return Err(StageError::Data(format!("no ratings by users of group {g} (`only_group`)")));
                    }
                    run_split(&kept, &items, &P { only_group: None, ..pp })?
                }
                (None, None) => return Err(StageError::Input(
                    "a `groups` input needs `sim_group` (group mode) or `only_group` (a category split of one group)"
                        .into(),
                )),
            }
        } else {
            split(&ratings, &items, p)?
        };
        let users = batch(vec![
            ("user", Arc::new(UInt32Array::from(s.users.iter().map(|u| u.0).collect::<Vec<_>>()))),
            ("role", Arc::new(StringArray::from(s.users.iter().map(|u| u.1).collect::<Vec<_>>()))),
        ])?;
        let sim_items = pool(&s.sim_items, &[&s.sim])?;
        let real_items = pool(&s.real_items, &[&s.real_train])?;
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
