//! The paper's §5 sim/real split, as docs/design.md §6 fixes it (the `data.split` stage).
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

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use arrow::array::UInt32Array;
use arrow::record_batch::RecordBatch;

use crate::api::error::StageError;
use crate::data::items::Items;
use crate::data::ratings::Ratings;
use crate::data::table::batch;

/// What to split (the `data.split` params, validated by the stage).
#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    #[serde(default)]
    /// Category of the sim domain (after `pair` is resolved; `group N` in group mode).
    pub sim: String,
    #[serde(default)]
    /// Category of the real domain.
    pub real: String,
    #[serde(default)]
    /// `Sim_Real` in one value (resolved into `sim`/`real` by the stage).
    pub pair: Option<String>,
    #[serde(default)]
    /// Group mode: the category of the shared item pool (every item when unset).
    pub pool: Option<String>,
    #[serde(default)]
    /// Group mode: the group whose users form the sim domain.
    pub sim_group: Option<u32>,
    #[serde(default)]
    /// Group mode: the real users' group.
    pub real_group: u32,
    #[serde(default)]
    /// Category mode: keep only this group's users.
    pub only_group: Option<u32>,
    #[serde(default = "five")]
    /// Items with fewer ratings are dropped.
    pub min_item_ratings: usize,
    #[serde(default = "five")]
    /// Real users need this many real ratings.
    pub min_user_ratings: usize,
    #[serde(default = "test_frac")]
    /// Share of real users held out for test.
    pub test_frac: f64,
    #[serde(default = "val_frac")]
    /// Share of the rest used for validation.
    pub val_frac: f64,
    #[serde(default = "shared")]
    /// Shared training users (real logs), at most.
    pub shared_users: usize,
    #[serde(default)]
    /// User shuffle seed.
    pub seed: u64,
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

/// Roles of users in the split.
pub const ROLES: [&str; 4] = ["sim_only", "shared", "val", "test"];

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

/// Splits `ratings`/`items` in category mode (see the module docs).
pub fn split(ratings: &Ratings, items: &Items, p: &SplitConfig) -> Result<SplitResult, StageError> {
    split_groups(ratings, items, None, p)
}

fn run_group_pool(
    ratings: &Ratings,
    items: &Items,
    groups: &Groups,
    p: &SplitConfig,
) -> Result<SplitResult, StageError> {
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

/// Splits in category mode, or in group mode when `groups` is given.
pub fn split_groups(
    ratings: &Ratings,
    items: &Items,
    groups: Option<&Groups>,
    p: &SplitConfig,
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
    p: &SplitConfig,
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

/// A pool table (item, n_train_ratings) of `items` counted in `ratings`.
pub fn pool_table(items: &[u32], ratings: &[&Ratings]) -> Result<RecordBatch, StageError> {
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
