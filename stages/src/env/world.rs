//! An interactive world with known dynamics (docs/design.md §7): boredom / satiation.
//!
//! Items carry a topic; a topic has a centroid `c ~ N(0, I)` and its items are
//! `v = (c + spread·ε)/√(1 + spread²)`, ε ~ N(0, I). A user's taste is `u ~ N(0, I/dim)`, drawn
//! from the user's own seeded stream, so any number of users exists without being stored. The
//! base response to item `i` is a click with probability `p = σ(slope·(⟨u, v_i⟩ − offset))`; the
//! reward is the click (1 or 0), which is also the feedback the policy observes.
//!
//! - **Sim dynamics**: `p`, whatever came before.
//! - **Real dynamics**: while `i`'s topic is *bored* — recommended at least `k` times among the
//!   user's last `window` recommendations — the response probability is `(1 − beta)·p`. So
//!   `beta = 0` makes the two dynamics identical, and every real transition keeps a non-zero
//!   probability under sim (DARC's assumption) while `beta < 1`.
//! - **Leaving** (optional, `leave`, real dynamics only): after a response to a bored topic that
//!   is not a click, the user leaves with probability `leave`; every later response of the
//!   session is 0. Whether a user has left is hidden from the policy, which sees only the zeros,
//!   so the exact real response probability given the observed history is the boredom one times
//!   the posterior probability that the user is still there ([`World::real_click_probs`]).
//!
//! Settings: `shared` — both dynamics serve the whole pool (a pure dynamics gap, RQ2); `categories`
//! — the first half of the topics is the sim pool and the rest the real pool (a representation
//! gap as well, the paper's sim→real setting).
//!
//! **Fitted worlds** (`world.fit`, [`Fit`]): the items are a real dataset's items with their SVD
//! vectors and a topic each from their genres, tastes are drawn from a Gaussian with the mean and
//! covariance of the dataset's SVD user vectors, and the affinity is standardised over the
//! population (`a = (⟨u, v⟩ − mean)/std`, both exact for the Gaussian) before the same
//! `σ(slope·(a − offset))`, so the click rates keep the synthetic world's scale while the item
//! geometry, the genre structure and the spread of tastes are the dataset's. The dynamics, the
//! populations and the streams are the same as above; one pool (`shared`).
//!
//! Users come in populations with their own streams: `sim` (the simulator's users), `logged`
//! (the shared real users whose sessions a behaviour policy logged with the real dynamics:
//! ε-greedy over the items' exact population click rates), `val` and `test` (fresh real-dynamics
//! users for validation and online evaluation). Every draw comes from a ChaCha stream seeded by
//! (seed, purpose, population, user, stream), so results do not depend on batching or threads.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use arrow::array::{Float32Array, StringArray, UInt32Array};
use arrow::record_batch::RecordBatch;

use crate::api::error::StageError;
use crate::data::ratings::Ratings;
use crate::data::table::{batch, column};
use crate::env::session::{serve, Env, ExactRatio, Session};

/// Which items a domain serves.
#[derive(Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// One pool for both dynamics.
    Shared,
    /// Disjoint halves of the topics: sim pool, real pool.
    Categories,
}

/// World params (see the module docs).
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorldParams {
    /// Items.
    #[serde(default = "d_items")]
    pub items: usize,
    /// Topics (items are split evenly, in id order).
    #[serde(default = "d_topics")]
    pub topics: usize,
    /// Latent dimension (also the item vectors' width).
    #[serde(default = "d_dim")]
    pub dim: usize,
    /// Spread of an item around its topic's centroid.
    #[serde(default = "d_spread")]
    pub spread: f64,
    /// Slope of the click probability in the affinity.
    #[serde(default = "d_slope")]
    pub slope: f64,
    /// Affinity at which the base click probability is ½.
    #[serde(default = "d_offset")]
    pub offset: f64,
    /// Boredom strength: the real response to a bored topic is `(1 − beta)·p`.
    #[serde(default)]
    pub beta: f64,
    /// Recommendations of a topic within `window` that make it bored.
    #[serde(default = "d_k")]
    pub k: usize,
    /// The boredom window (recommendations).
    #[serde(default = "d_window")]
    pub window: usize,
    /// Which pools the dynamics serve.
    #[serde(default = "d_setting")]
    pub setting: Setting,
    /// Users of the simulator.
    #[serde(default = "d_sim_users")]
    pub sim_users: usize,
    /// Shared real users with logged sessions.
    #[serde(default = "d_logged")]
    pub logged_users: usize,
    /// Logged sessions per logged user.
    #[serde(default = "d_one")]
    pub logged_sessions: usize,
    /// ε of the behaviour policy (ε-greedy popularity).
    #[serde(default = "d_eps")]
    pub behaviour_epsilon: f64,
    /// Validation users.
    #[serde(default = "d_val")]
    pub val_users: usize,
    /// Test users.
    #[serde(default = "d_test")]
    pub test_users: usize,
    /// Session length T (logged sessions and evaluation).
    #[serde(default = "d_t")]
    pub session_len: usize,
    /// Items each user rates explicitly per pool it has: the ratings `embed.svd` and
    /// `adapt.darec` fit (not serialised at its default, so worlds made before it keep their keys).
    #[serde(default = "d_rated", deserialize_with = "rated_or_default", skip_serializing_if = "is_d_rated")]
    pub rated_items: usize,
    /// Probability that a real user leaves after a non-click on a bored topic (0 = never; not
    /// serialised at 0, so worlds made before it keep their keys).
    #[serde(default, deserialize_with = "zero_if_null", skip_serializing_if = "is_zero")]
    pub leave: f64,
    /// Seed.
    #[serde(default)]
    pub seed: u64,
}
/// `world.fit` params: the dynamics and populations of [`WorldParams`]; the items, topics and
/// dimension come from the data.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FitParams {
    /// Slope of the click probability in the standardised affinity.
    #[serde(default = "d_slope")]
    pub slope: f64,
    /// Standardised affinity at which the base click probability is ½.
    #[serde(default = "d_offset")]
    pub offset: f64,
    /// Boredom strength.
    #[serde(default)]
    pub beta: f64,
    /// Recommendations of a topic within `window` that make it bored.
    #[serde(default = "d_k")]
    pub k: usize,
    /// The boredom window.
    #[serde(default = "d_window")]
    pub window: usize,
    /// Probability of leaving after a non-click on a bored topic.
    #[serde(default)]
    pub leave: f64,
    /// Users of the simulator.
    #[serde(default = "d_sim_users")]
    pub sim_users: usize,
    /// Shared real users with logged sessions.
    #[serde(default = "d_logged")]
    pub logged_users: usize,
    /// Logged sessions per logged user.
    #[serde(default = "d_one")]
    pub logged_sessions: usize,
    /// ε of the behaviour policy.
    #[serde(default = "d_eps")]
    pub behaviour_epsilon: f64,
    /// Validation users.
    #[serde(default = "d_val")]
    pub val_users: usize,
    /// Test users.
    #[serde(default = "d_test")]
    pub test_users: usize,
    /// Session length T.
    #[serde(default = "d_t")]
    pub session_len: usize,
    /// Explicit ratings per user and pool.
    #[serde(default = "d_rated")]
    pub rated_items: usize,
    /// The most-rated items of the dataset's pool that become the world's items (0: all).
    #[serde(default = "d_items")]
    pub max_items: usize,
    /// Seed.
    #[serde(default)]
    pub seed: u64,
}

impl FitParams {
    /// The world params over `items` items in `topics` topics of width `dim` (one pool).
    pub fn world_params(&self, items: usize, topics: usize, dim: usize) -> WorldParams {
        WorldParams {
            items,
            topics,
            dim,
            spread: d_spread(),
            slope: self.slope,
            offset: self.offset,
            beta: self.beta,
            k: self.k,
            window: self.window,
            setting: Setting::Shared,
            sim_users: self.sim_users,
            logged_users: self.logged_users,
            logged_sessions: self.logged_sessions,
            behaviour_epsilon: self.behaviour_epsilon,
            val_users: self.val_users,
            test_users: self.test_users,
            session_len: self.session_len,
            rated_items: self.rated_items,
            leave: self.leave,
            seed: self.seed,
        }
    }
}

fn d_items() -> usize {
    300
}
fn d_topics() -> usize {
    10
}
fn d_dim() -> usize {
    16
}
fn d_spread() -> f64 {
    0.5
}
fn d_slope() -> f64 {
    2.0
}
fn d_offset() -> f64 {
    1.0
}
fn d_k() -> usize {
    2
}
fn d_window() -> usize {
    5
}
fn d_setting() -> Setting {
    Setting::Shared
}
fn d_sim_users() -> usize {
    2000
}
fn d_logged() -> usize {
    200
}
fn d_one() -> usize {
    1
}
fn d_eps() -> f64 {
    0.5
}
fn d_val() -> usize {
    500
}
fn d_test() -> usize {
    2000
}
fn d_t() -> usize {
    32
}
fn d_rated() -> usize {
    20
}
fn is_d_rated(n: &usize) -> bool {
    *n == d_rated()
}
fn is_zero(x: &f64) -> bool {
    *x == 0.0
}
/// `leave: null` is the param unset (0).
fn zero_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(d)?.unwrap_or(0.0))
}
/// `rated_items: null` is the param unset (the default).
fn rated_or_default<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    Ok(<Option<usize> as serde::Deserialize>::deserialize(d)?.unwrap_or_else(d_rated))
}

impl WorldParams {
    /// Checks ranges; the message names the param.
    pub fn check(&self) -> Result<(), String> {
        let pools = if self.setting == Setting::Categories { 2 } else { 1 };
        if self.topics < pools || self.items < self.topics {
            return Err(format!(
                "need at least {pools} topic(s) and one item per topic (items {}, topics {})",
                self.items, self.topics
            ));
        }
        if self.items > 1_000_000 || self.dim == 0 || self.dim > 4096 {
            return Err("`items` must be ≤ 1,000,000 and `dim` in 1..=4096".into());
        }
        if !(0.0..=1.0).contains(&self.beta) {
            return Err(format!("`beta` must be in [0, 1], got {}", self.beta));
        }
        if self.k == 0 || self.window == 0 || self.k > self.window {
            return Err(format!("need 1 ≤ k ≤ window (k {}, window {})", self.k, self.window));
        }
        if !(0.0..=1.0).contains(&self.leave) {
            return Err(format!("`leave` must be in [0, 1], got {}", self.leave));
        }
        if !(0.0..=1.0).contains(&self.behaviour_epsilon) {
            return Err("`behaviour_epsilon` must be in [0, 1]".into());
        }
        for (name, v) in [("spread", self.spread), ("slope", self.slope), ("offset", self.offset)] {
            if !v.is_finite() || (name != "offset" && v < 0.0) {
                return Err(format!("`{name}` must be a finite number{}", if name == "offset" { "" } else { " ≥ 0" }));
            }
        }
        let smallest = self.pool(Dynamics::Sim).len().min(self.pool(Dynamics::Real).len());
        if self.session_len == 0 || self.session_len > smallest {
            return Err(format!("`session_len` must be in 1..={smallest} (no item is recommended twice in a session)"));
        }
        if self.rated_items == 0 || self.rated_items > smallest {
            return Err(format!("`rated_items` must be in 1..={smallest} (a pool's items)"));
        }
        if self.sim_users == 0 || self.logged_users == 0 || self.val_users == 0 || self.test_users == 0 {
            return Err("every population (sim_users, logged_users, val_users, test_users) needs ≥ 1 user".into());
        }
        Ok(())
    }

    /// Topic of item `i` (0-based; topics split the ids evenly).
    pub fn topic(&self, i: usize) -> usize {
        i * self.topics / self.items
    }

    /// The items (0-based ids) a dynamics serves, in id order.
    pub fn pool(&self, d: Dynamics) -> Vec<u32> {
        let half = self.topics / 2;
        (0..self.items as u32)
            .filter(|&i| match (self.setting, d) {
                (Setting::Shared, _) => true,
                (Setting::Categories, Dynamics::Sim) => self.topic(i as usize) < half,
                (Setting::Categories, Dynamics::Real) => self.topic(i as usize) >= half,
            })
            .collect()
    }
}

/// Sim or real dynamics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dynamics {
    /// No boredom.
    Sim,
    /// Boredom of strength `beta`.
    Real,
}

/// Which fresh real-dynamics users an evaluation serves.
#[derive(Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum EvalUsers {
    /// The test users.
    #[default]
    Test,
    /// The validation users (model selection).
    Val,
}

impl EvalUsers {
    /// Their population.
    pub fn population(self) -> Population {
        match self {
            EvalUsers::Test => Population::Test,
            EvalUsers::Val => Population::Val,
        }
    }
}

/// A population of users (each its own streams).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Population {
    /// The simulator's users.
    Sim,
    /// The shared real users with logs.
    Logged,
    /// Validation users.
    Val,
    /// Test users.
    Test,
}

impl Population {
    fn tag(self) -> u64 {
        match self {
            Population::Sim => 1,
            Population::Logged => 2,
            Population::Val => 3,
            Population::Test => 4,
        }
    }
}

// Purposes of the streams.
const TASTE: u64 = 0x7A57E;
const RESPONSE: u64 = 0x8E5B;
const BEHAVIOUR: u64 = 0xBE4A;
const ITEMS: u64 = 0x17E3;
const RATINGS: u64 = 0x4A71;

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stream seed from its parts.
fn stream_seed(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5EED_u64, |h, &p| splitmix(h ^ splitmix(p)))
}

/// A logged session: the user (index in the logged population), the items (0-based ids) in
/// order and the clicks.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedSession {
    /// Logged user index.
    pub user: u32,
    /// Session number of that user.
    pub session: u32,
    /// Items served, 0-based ids.
    pub items: Vec<u32>,
    /// Click (1) or not (0) per step.
    pub clicks: Vec<f32>,
}

/// The generated world.
#[derive(Debug, Clone)]
pub struct World {
    /// Its params.
    pub p: WorldParams,
    /// Item vectors, row-major `items × dim`.
    pub item_vecs: Vec<f32>,
    /// Topic per item.
    pub topics: Vec<u32>,
    /// What a fitted world takes from its dataset (None: generated from the seed).
    pub fit: Option<Fit>,
}

/// What a world fitted to a dataset (`world.fit`) takes from it: items, topics, the tastes'
/// Gaussian and the affinity's scale. Stored in the `world` table, so it rebuilds anywhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    /// The dataset's item id of each world item (world item `i` is id `i + 1` in the outputs).
    pub source_items: Vec<u32>,
    /// Topic names (genres), indexed by topic.
    pub topic_names: Vec<String>,
    /// Topic per item.
    pub topics: Vec<u32>,
    /// Item vectors (the dataset's SVD vectors), row-major `items × dim`.
    pub item_vecs: Vec<f32>,
    /// Mean of the tastes (of the dataset's SVD user vectors).
    pub taste_mean: Vec<f64>,
    /// Lower Cholesky factor of the tastes' covariance, row-major `dim × dim`.
    pub taste_chol: Vec<f64>,
    /// Mean of ⟨u, v⟩ over tastes and items.
    pub affinity_mean: f64,
    /// Std of ⟨u, v⟩ over tastes and items.
    pub affinity_std: f64,
}

impl Fit {
    /// Fits tastes to `users` (row-major, `dim` wide) and keeps `items` (row-major) with their
    /// `topics`; the affinity's mean and std over (taste, item) are exact for the Gaussian:
    /// ⟨u, v⟩ ~ N(μ·v, vᵀΣv) per item, mixed uniformly over the items.
    pub fn new(
        users: &[f32],
        dim: usize,
        items: Vec<f32>,
        source_items: Vec<u32>,
        topics: Vec<u32>,
        topic_names: Vec<String>,
    ) -> Result<Fit, String> {
        let n_users = users.len() / dim.max(1);
        if dim == 0 || n_users < 2 || items.len() != source_items.len() * dim || topics.len() != source_items.len() {
            return Err(format!(
                "a fit needs ≥ 2 user vectors and one topic per item vector (users {n_users}, items {}, topics {}, dim {dim})",
                source_items.len(),
                topics.len()
            ));
        }
        if users.iter().chain(&items).any(|x| !x.is_finite()) {
            return Err("the vectors to fit hold a NaN or an infinity".into());
        }
        let mut mean = vec![0.0f64; dim];
        for u in users.chunks(dim) {
            for (m, &x) in mean.iter_mut().zip(u) {
                *m += f64::from(x) / n_users as f64;
            }
        }
        let mut cov = vec![0.0f64; dim * dim];
        for u in users.chunks(dim) {
            for a in 0..dim {
                for b in 0..=a {
                    cov[a * dim + b] +=
                        (f64::from(u[a]) - mean[a]) * (f64::from(u[b]) - mean[b]) / (n_users - 1) as f64;
                }
            }
        }
        // A ridge of 10⁻⁶ of the mean variance keeps the factor defined for rank-deficient tastes.
        let ridge = 1e-6 * (0..dim).map(|a| cov[a * dim + a]).sum::<f64>() / dim as f64 + 1e-12;
        let mut l = vec![0.0f64; dim * dim];
        for a in 0..dim {
            for b in 0..=a {
                let mut x = cov[a * dim + b] + if a == b { ridge } else { 0.0 };
                for k in 0..b {
                    x -= l[a * dim + k] * l[b * dim + k];
                }
                l[a * dim + b] = if a == b { x.max(ridge).sqrt() } else { x / l[b * dim + b] };
            }
        }
        let (mut m1, mut m2) = (0.0, 0.0);
        let n_items = source_items.len() as f64;
        for v in items.chunks(dim) {
            let mu: f64 = mean.iter().zip(v).map(|(m, &x)| m * f64::from(x)).sum();
            // vᵀΣv = |Lᵀv|².
            let var: f64 =
                (0..dim).map(|k| (k..dim).map(|a| l[a * dim + k] * f64::from(v[a])).sum::<f64>().powi(2)).sum();
            m1 += mu / n_items;
            m2 += (var + mu * mu) / n_items;
        }
        let std = (m2 - m1 * m1).max(0.0).sqrt();
        if std <= 0.0 {
            return Err("the fitted affinities have no spread (all vectors zero?)".into());
        }
        Ok(Fit {
            source_items,
            topic_names,
            topics,
            item_vecs: items,
            taste_mean: mean,
            taste_chol: l,
            affinity_mean: m1,
            affinity_std: std,
        })
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The explicit rating of an item whose base click probability is `p`: 1–5 stars in half stars,
/// `round(2·(1 + 4p))/2` — the taste, without any dynamics.
pub fn star_rating(p: f64) -> f32 {
    ((2.0 * (1.0 + 4.0 * p)).round() / 2.0) as f32
}

impl World {
    /// Generates the items of the world `p` (users are drawn on demand).
    pub fn new(p: &WorldParams) -> Result<World, String> {
        p.check()?;
        let d = p.dim;
        let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(&[p.seed, ITEMS]));
        let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
        let centroids: Vec<f64> = (0..p.topics * d).map(|_| normal()).collect();
        let scale = (1.0 + p.spread * p.spread).sqrt();
        let mut item_vecs = Vec::with_capacity(p.items * d);
        let mut topics = Vec::with_capacity(p.items);
        for i in 0..p.items {
            let t = p.topic(i);
            topics.push(t as u32);
            for j in 0..d {
                item_vecs.push(((centroids[t * d + j] + p.spread * normal()) / scale) as f32);
            }
        }
        Ok(World { p: p.clone(), item_vecs, topics, fit: None })
    }

    /// The world of `p` over a dataset's items and tastes (`fit`); `p`'s `items`, `topics` and
    /// `dim` must be the fit's, and its setting `shared`.
    pub fn fitted(p: &WorldParams, fit: Fit) -> Result<World, String> {
        if p.setting != Setting::Shared {
            return Err("a fitted world has one pool (`setting: shared`)".into());
        }
        if p.items != fit.source_items.len() || p.dim != fit.taste_mean.len() || p.topics != fit.topic_names.len() {
            return Err(format!(
                "the world's params (items {}, dim {}, topics {}) are not its fit's ({}, {}, {})",
                p.items,
                p.dim,
                p.topics,
                fit.source_items.len(),
                fit.taste_mean.len(),
                fit.topic_names.len()
            ));
        }
        p.check()?;
        Ok(World { p: p.clone(), item_vecs: fit.item_vecs.clone(), topics: fit.topics.clone(), fit: Some(fit) })
    }

    /// The taste of user `user` of `pop`.
    pub fn taste(&self, pop: Population, user: usize) -> Vec<f64> {
        self.draw_taste(stream_seed(&[self.p.seed, TASTE, pop.tag(), user as u64]))
    }

    fn draw_taste(&self, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let d = self.p.dim;
        let z: Vec<f64> =
            (0..d).map(|_| <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng)).collect();
        match &self.fit {
            None => {
                let s = 1.0 / (d as f64).sqrt();
                z.iter().map(|x| s * x).collect()
            }
            // u = μ + L z.
            Some(f) => {
                (0..d).map(|a| f.taste_mean[a] + (0..=a).map(|k| f.taste_chol[a * d + k] * z[k]).sum::<f64>()).collect()
            }
        }
    }

    /// The base (sim) click probability of `taste` for item `i`.
    pub fn base_prob(&self, taste: &[f64], i: u32) -> f64 {
        let v = &self.item_vecs[i as usize * self.p.dim..(i as usize + 1) * self.p.dim];
        let mut a: f64 = taste.iter().zip(v).map(|(u, &x)| u * f64::from(x)).sum();
        if let Some(f) = &self.fit {
            a = (a - f.affinity_mean) / f.affinity_std;
        }
        sigmoid(self.p.slope * (a - self.p.offset))
    }

    /// Whether item `i`'s topic is bored after the recommendations `history` (0-based ids).
    pub fn bored(&self, history: &[u32], i: u32) -> bool {
        let topic = self.topics[i as usize];
        let recent = &history[history.len().saturating_sub(self.p.window)..];
        recent.iter().filter(|&&h| self.topics[h as usize] == topic).count() >= self.p.k
    }

    /// The exact click probability of item `i` for `taste` after `history` under `d`, for a user
    /// who has not left.
    pub fn prob(&self, d: Dynamics, taste: &[f64], history: &[u32], i: u32) -> f64 {
        let p = self.base_prob(taste, i);
        match d {
            Dynamics::Real if self.bored(history, i) => (1.0 - self.p.beta) * p,
            _ => p,
        }
    }

    /// The exact real click probability of each step of a session (0-based `items`, observed
    /// `clicks`) given the steps before it: the boredom probability times the posterior
    /// probability that the user is still there (a click proves it; a non-click on a bored topic
    /// may be followed by leaving). Without leaving this is [`World::prob`] with the real dynamics.
    pub fn real_click_probs(&self, taste: &[f64], items: &[u32], clicks: &[f32]) -> Vec<f64> {
        let mut here = 1.0;
        let mut out = Vec::with_capacity(items.len());
        for (t, (&i, &c)) in items.iter().zip(clicks).enumerate() {
            let bored = self.bored(&items[..t], i);
            let q = self.prob(Dynamics::Real, taste, &items[..t], i);
            out.push(here * q);
            if self.p.leave > 0.0 {
                if c > 0.5 {
                    here = 1.0;
                } else {
                    // P(here | no click) = here·(1 − q) / (here·(1 − q) + 1 − here), then the
                    // leaving draw of a non-click on a bored topic.
                    let stay = here * (1.0 - q);
                    here = if stay > 0.0 { stay / (stay + 1.0 - here) } else { 0.0 };
                    if bored {
                        here *= 1.0 - self.p.leave;
                    }
                }
            }
        }
        out
    }

    /// Users in `pop`.
    pub fn users(&self, pop: Population) -> usize {
        match pop {
            Population::Sim => self.p.sim_users,
            Population::Logged => self.p.logged_users,
            Population::Val => self.p.val_users,
            Population::Test => self.p.test_users,
        }
    }

    /// The environment of `pop` users responding with `d`, serving `d`'s pool.
    pub fn env(&self, d: Dynamics, pop: Population) -> WorldEnv<'_> {
        WorldEnv { world: self, dynamics: d, population: pop, pool: self.p.pool(d) }
    }

    /// Each item's exact click probability over the population (mean base probability over
    /// 2,000 taste draws of a stream of its own): the behaviour policy's popularity.
    pub fn population_click_rates(&self) -> Vec<f64> {
        let n = 2000;
        let mut rates = vec![0.0; self.p.items];
        for u in 0..n {
            let taste = self.draw_taste(stream_seed(&[self.p.seed, TASTE, 0, u as u64]));
            for (i, r) in rates.iter_mut().enumerate() {
                *r += self.base_prob(&taste, i as u32) / n as f64;
            }
        }
        rates
    }

    /// Explicit ratings in data.split's layout, `(sim, real_train)`: each user rates
    /// `rated_items` distinct items of a pool drawn from its own stream, with
    /// [`star_rating`] of the base probability, in draw order (`ts` = 0, 1, …). The logged users
    /// (ids 1..=L) rate both pools — they are the shared users — and the sim users (ids
    /// L + 1..=L + S) the sim pool. Item ids are 1-based.
    pub fn ratings(&self) -> (Ratings, Ratings) {
        let (sim_pool, real_pool) = (self.p.pool(Dynamics::Sim), self.p.pool(Dynamics::Real));
        let n = self.p.rated_items;
        let rate = |out: &mut Ratings, id: u32, pop: Population, u: usize, pool: &[u32], d: Dynamics| {
            let taste = self.taste(pop, u);
            let tag = if d == Dynamics::Sim { 0 } else { 1 };
            let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(&[self.p.seed, RATINGS, pop.tag(), u as u64, tag]));
            for (t, k) in rand::seq::index::sample(&mut rng, pool.len(), n).into_iter().enumerate() {
                let i = pool[k];
                out.push(id, i + 1, star_rating(self.base_prob(&taste, i)), t as i64);
            }
        };
        let (mut sim, mut real) = (Ratings::default(), Ratings::default());
        let l = self.p.logged_users;
        for u in 0..l {
            rate(&mut sim, u as u32 + 1, Population::Logged, u, &sim_pool, Dynamics::Sim);
            rate(&mut real, u as u32 + 1, Population::Logged, u, &real_pool, Dynamics::Real);
        }
        for u in 0..self.p.sim_users {
            rate(&mut sim, (l + u) as u32 + 1, Population::Sim, u, &sim_pool, Dynamics::Sim);
        }
        (sim, real)
    }

    /// The logged real sessions: each logged user's `logged_sessions` sessions of `session_len`
    /// steps of ε-greedy popularity (the most popular item not yet served, or with probability ε
    /// a uniformly random one) over the real pool, answered by the real dynamics.
    pub fn logs(&self) -> Vec<LoggedSession> {
        self.behaviour_sessions(Dynamics::Real, Population::Logged, self.p.logged_users, self.p.logged_sessions)
    }

    /// `sessions` sessions of each of the first `users` users of `pop` with the behaviour policy of
    /// the logs over `d`'s pool, answered by `d` (the logs are the real ones of the logged users).
    pub fn behaviour_sessions(
        &self,
        d: Dynamics,
        pop: Population,
        users: usize,
        sessions: usize,
    ) -> Vec<LoggedSession> {
        let env = self.env(d, pop);
        let rates = self.population_click_rates();
        let by_rate = ranked(&rates, &env.pool);
        let users: Vec<usize> = (0..users).collect();
        let mut out = Vec::with_capacity(users.len() * sessions);
        for s in 0..sessions {
            let mut rngs: Vec<ChaCha8Rng> = users
                .iter()
                .map(|&u| {
                    let parts = [self.p.seed, BEHAVIOUR, u as u64, s as u64];
                    // The real logs keep their original streams; other populations get their own.
                    let seed = if pop == Population::Logged {
                        stream_seed(&parts)
                    } else {
                        stream_seed(&[parts[0], parts[1], parts[2], parts[3], pop.tag()])
                    };
                    ChaCha8Rng::seed_from_u64(seed)
                })
                .collect();
            let n = env.pool.len();
            let served = serve(&env, &users, self.p.session_len, s as u64, &mut |slot, so_far| {
                let rng = &mut rngs[slot];
                if rng.random::<f64>() < self.p.behaviour_epsilon {
                    random_unserved(rng, n, so_far)
                } else {
                    first_unserved(&by_rate, so_far)
                }
            });
            for (u, (items, clicks)) in served.into_iter().enumerate() {
                out.push(LoggedSession {
                    user: u as u32,
                    session: s as u32,
                    items: items.iter().map(|&a| env.pool[a as usize]).collect(),
                    clicks,
                });
            }
        }
        out
    }
}

/// The `world` table (one row, the params as JSON, and for a fitted world its [`Fit`] as JSON in
/// a `fit` column): what rebuilds the world anywhere.
pub fn world_table(w: &World) -> Result<RecordBatch, StageError> {
    fn json<T: Serialize>(x: &T) -> Result<String, StageError> {
        serde_json::to_string(x).map_err(|e| StageError::Failed(e.to_string()))
    }
    let mut cols: Vec<(&str, arrow::array::ArrayRef)> =
        vec![("params", Arc::new(StringArray::from(vec![json(&w.p)?])))];
    if let Some(f) = &w.fit {
        cols.push(("fit", Arc::new(StringArray::from(vec![json(f)?]))));
    }
    batch(cols)
}

/// The world of a `world` table.
pub fn world_from_table(b: &RecordBatch) -> Result<World, StageError> {
    let col = column::<StringArray>(b, "world", "params")?;
    if b.num_rows() != 1 {
        return Err(StageError::Input(format!("`world` must have one row, it has {}", b.num_rows())));
    }
    let p: WorldParams = serde_json::from_str(col.value(0))
        .map_err(|e| StageError::Input(format!("`world` does not hold world.synth params: {e}")))?;
    if b.schema().column_with_name("fit").is_none() {
        return World::new(&p).map_err(StageError::Input);
    }
    let fit: Fit = serde_json::from_str(column::<StringArray>(b, "world", "fit")?.value(0))
        .map_err(|e| StageError::Input(format!("`world.fit` does not hold a world.fit fit: {e}")))?;
    World::fitted(&p, fit).map_err(StageError::Input)
}

/// The `logs` table: user, session, step, item (1-based id), click.
pub fn logs_table(logs: &[LoggedSession]) -> Result<RecordBatch, StageError> {
    let rows = || logs.iter().flat_map(|l| (0..l.items.len()).map(move |s| (l, s)));
    batch(vec![
        ("user", Arc::new(UInt32Array::from(rows().map(|(l, _)| l.user + 1).collect::<Vec<_>>()))),
        ("session", Arc::new(UInt32Array::from(rows().map(|(l, _)| l.session).collect::<Vec<_>>()))),
        ("step", Arc::new(UInt32Array::from(rows().map(|(_, s)| s as u32).collect::<Vec<_>>()))),
        ("item", Arc::new(UInt32Array::from(rows().map(|(l, s)| l.items[s] + 1).collect::<Vec<_>>()))),
        ("click", Arc::new(Float32Array::from(rows().map(|(l, s)| l.clicks[s]).collect::<Vec<_>>()))),
    ])
}

/// The sessions of a `logs` table (rows grouped by user and session, in step order).
pub fn logs_from_table(b: &RecordBatch) -> Result<Vec<LoggedSession>, StageError> {
    let user = column::<UInt32Array>(b, "logs", "user")?;
    let session = column::<UInt32Array>(b, "logs", "session")?;
    let step = column::<UInt32Array>(b, "logs", "step")?;
    let item = column::<UInt32Array>(b, "logs", "item")?;
    let click = column::<Float32Array>(b, "logs", "click")?;
    // (user, session) → (step, item, click) rows.
    type Steps = Vec<(u32, u32, f32)>;
    let mut by: std::collections::BTreeMap<(u32, u32), Steps> = Default::default();
    for r in 0..b.num_rows() {
        if user.value(r) == 0 || item.value(r) == 0 {
            return Err(StageError::Input(format!("`logs` row {r}: user and item ids start at 1")));
        }
        by.entry((user.value(r) - 1, session.value(r))).or_default().push((
            step.value(r),
            item.value(r) - 1,
            click.value(r),
        ));
    }
    Ok(by
        .into_iter()
        .map(|((user, session), mut steps)| {
            steps.sort_by_key(|s| s.0);
            LoggedSession {
                user,
                session,
                items: steps.iter().map(|s| s.1).collect(),
                clicks: steps.iter().map(|s| s.2).collect(),
            }
        })
        .collect())
}

/// Each item's click rate in the logs, smoothed by a uniform prior ((clicks + 1)/(shows + 2)):
/// the `popular` baseline of worlds, learnt from the logs like the replay one.
pub fn logged_click_rates(world: &World, logs: &[LoggedSession]) -> Vec<f64> {
    let mut shows = vec![0f64; world.p.items];
    let mut clicks = vec![0f64; world.p.items];
    for l in logs {
        for (&i, &c) in l.items.iter().zip(&l.clicks) {
            shows[i as usize] += 1.0;
            clicks[i as usize] += f64::from(c);
        }
    }
    clicks.iter().zip(&shows).map(|(c, s)| (c + 1.0) / (s + 2.0)).collect()
}

/// Positions of `pool` ordered by `rates` of their items (highest first, ties by position).
pub fn ranked(rates: &[f64], pool: &[u32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..pool.len()).collect();
    order.sort_by(|&a, &b| rates[pool[b] as usize].total_cmp(&rates[pool[a] as usize]).then(a.cmp(&b)));
    order
}

/// The first position of `order` not yet served in the session.
pub fn first_unserved(order: &[usize], so_far: &[i64]) -> i64 {
    order.iter().map(|&a| a as i64).find(|a| !so_far.contains(a)).expect("session_len ≤ pool")
}

/// A uniformly random position of a pool of `n` not yet served in the session.
pub fn random_unserved(rng: &mut ChaCha8Rng, n: usize, so_far: &[i64]) -> i64 {
    loop {
        let a = rng.random_range(0..n) as i64;
        if !so_far.contains(&a) {
            break a;
        }
    }
}

/// The smallest probability ratio [`WorldEnv::exact_log_ratio`] reports (ln 10⁻³ ≈ −6.9).
const EXACT_FLOOR: f64 = 1e-3;

/// A world's users of one population answering with one dynamics (see [`World::env`]).
pub struct WorldEnv<'a> {
    world: &'a World,
    dynamics: Dynamics,
    population: Population,
    /// The items served (0-based ids); actions are positions in it.
    pub pool: Vec<u32>,
}

impl Env for WorldEnv<'_> {
    fn n_users(&self) -> usize {
        self.world.users(self.population)
    }
    fn exact_log_ratio(&self, user: usize, items: &[i64], rewards: &[f32]) -> Option<ExactRatio> {
        let w = self.world;
        let taste = w.taste(self.population, user);
        let ids: Vec<u32> = items.iter().map(|&a| self.pool[a as usize]).collect();
        let mut out = ExactRatio { log_ratio: Vec::with_capacity(ids.len()), bored: Vec::with_capacity(ids.len()) };
        let real = w.real_click_probs(&taste, &ids, &rewards[..ids.len()]);
        for (t, ((&i, &r), &q)) in ids.iter().zip(rewards).zip(&real).enumerate() {
            let p = w.base_prob(&taste, i);
            // A response the real dynamics cannot give (a click at β = 1 or after leaving) is
            // floored at ln 10⁻³.
            let lr =
                if r > 0.5 { (q / p).max(EXACT_FLOOR).ln() } else { ((1.0 - q) / (1.0 - p)).max(EXACT_FLOOR).ln() };
            out.log_ratio.push(if q == p { 0.0 } else { lr as f32 });
            out.bored.push(w.bored(&ids[..t], i));
        }
        Some(out)
    }
    fn start(&self, users: &[usize], stream: u64) -> Box<dyn Session + '_> {
        let w = self.world;
        Box::new(WorldSession {
            env: self,
            tastes: users.iter().map(|&u| w.taste(self.population, u)).collect(),
            history: users.iter().map(|_| Vec::new()).collect(),
            left: vec![false; users.len()],
            rngs: users
                .iter()
                .map(|&u| {
                    ChaCha8Rng::seed_from_u64(stream_seed(&[
                        w.p.seed,
                        RESPONSE,
                        self.population.tag(),
                        u as u64,
                        stream,
                    ]))
                })
                .collect(),
        })
    }
}

struct WorldSession<'a> {
    env: &'a WorldEnv<'a>,
    tastes: Vec<Vec<f64>>,
    history: Vec<Vec<u32>>,
    /// Whether each user has left (real dynamics with `leave` > 0).
    left: Vec<bool>,
    rngs: Vec<ChaCha8Rng>,
}

impl Session for WorldSession<'_> {
    fn step(&mut self, items: &[i64], rewards: &mut [f32]) {
        for (slot, (&a, r)) in items.iter().zip(rewards.iter_mut()).enumerate() {
            let (w, i) = (self.env.world, self.env.pool[a as usize]);
            let p = w.prob(self.env.dynamics, &self.tastes[slot], &self.history[slot], i);
            // One response draw per step, even after leaving; then the leaving draw, if any.
            let click = self.rngs[slot].random::<f64>() < p && !self.left[slot];
            *r = if click { 1.0 } else { 0.0 };
            if self.env.dynamics == Dynamics::Real
                && w.p.leave > 0.0
                && !click
                && !self.left[slot]
                && w.bored(&self.history[slot], i)
            {
                self.left[slot] = self.rngs[slot].random::<f64>() < w.p.leave;
            }
            self.history[slot].push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::session::serve;

    fn world(beta: f64) -> World {
        World::new(&WorldParams { beta, items: 60, topics: 6, session_len: 16, ..serde_json::from_str("{}").unwrap() })
            .unwrap()
    }

    #[test]
    fn at_beta_zero_sim_and_real_responses_have_equal_probabilities() {
        let w = world(0.0);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for u in 0..50 {
            let taste = w.taste(Population::Test, u);
            let history: Vec<u32> = (0..rng.random_range(0..12)).map(|_| rng.random_range(0..60)).collect();
            for i in 0..60 {
                assert_eq!(w.prob(Dynamics::Sim, &taste, &history, i), w.prob(Dynamics::Real, &taste, &history, i));
            }
        }
    }

    #[test]
    fn k_recommendations_of_a_topic_lower_the_real_probability_by_one_minus_beta_and_not_the_sim_one() {
        let w = world(0.6);
        let (k, window) = (w.p.k, w.p.window);
        let taste = w.taste(Population::Sim, 7);
        // Items 0..10 are topic 0, 10..20 topic 1.
        let item = 5;
        let fresh = w.prob(Dynamics::Real, &taste, &[], item);
        assert_eq!(fresh, w.base_prob(&taste, item));
        let once: Vec<u32> = (0..k as u32 - 1).collect();
        assert_eq!(w.prob(Dynamics::Real, &taste, &once, item), fresh, "k − 1 repeats do not bore");
        let k_times: Vec<u32> = (0..k as u32).collect();
        let bored = w.prob(Dynamics::Real, &taste, &k_times, item);
        assert!((bored - 0.4 * fresh).abs() < 1e-12, "{bored} vs (1 − 0.6)·{fresh}");
        assert_eq!(w.prob(Dynamics::Sim, &taste, &k_times, item), fresh, "sim is not bored");
        // Another topic is unaffected, and the boredom ends once the repeats leave the window.
        assert_eq!(w.prob(Dynamics::Real, &taste, &k_times, 15), w.base_prob(&taste, 15));
        let mut later = k_times.clone();
        later.extend((10..10 + window as u32 - k as u32 + 1).collect::<Vec<_>>());
        assert_eq!(w.prob(Dynamics::Real, &taste, &later, item), fresh, "{later:?}");
    }

    #[test]
    fn responses_follow_the_exact_probabilities() {
        let w = world(0.8);
        let env = w.env(Dynamics::Real, Population::Sim);
        let (users, t) = (400usize, 16usize);
        let ids: Vec<usize> = (0..users).collect();
        // A policy that repeats topic 0 then moves on: bored and fresh steps both occur.
        let served = serve(&env, &ids, t, 9, &mut |slot, so_far| ((so_far.len() * 3 + slot) % 60) as i64);
        let (mut expected, mut clicks, mut var) = (0.0, 0.0, 0.0);
        for (u, (items, r)) in served.iter().enumerate() {
            let taste = w.taste(Population::Sim, u);
            for s in 0..t {
                let hist: Vec<u32> = items[..s].iter().map(|&a| a as u32).collect();
                let p = w.prob(Dynamics::Real, &taste, &hist, items[s] as u32);
                expected += p;
                var += p * (1.0 - p);
                clicks += f64::from(r[s]);
            }
        }
        assert!((clicks - expected).abs() < 4.0 * var.sqrt(), "clicks {clicks}, expected {expected} ± {}", var.sqrt());
    }

    #[test]
    fn the_same_seed_gives_identical_logs_and_batching_changes_no_response() {
        let p = WorldParams { beta: 0.5, logged_users: 30, ..world(0.5).p };
        let a = World::new(&p).unwrap().logs();
        let b = World::new(&p).unwrap().logs();
        assert_eq!(a, b);
        let c = World::new(&WorldParams { seed: 1, ..p.clone() }).unwrap().logs();
        assert_ne!(a, c, "another seed, other logs");
        assert!(a.iter().any(|s| s.clicks.contains(&1.0)) && a.iter().any(|s| s.clicks.contains(&0.0)));
        // Users 3 and 4 alone, or inside a batch of ten: the same responses.
        let w = World::new(&p).unwrap();
        let env = w.env(Dynamics::Real, Population::Test);
        let pick = &mut |slot: usize, so_far: &[i64]| ((slot + so_far.len() * 7) % 60) as i64;
        let all = serve(&env, &(0..10).collect::<Vec<_>>(), 8, 5, pick);
        let pick = &mut |slot: usize, so_far: &[i64]| ((slot + 3 + so_far.len() * 7) % 60) as i64;
        let two = serve(&env, &[3, 4], 8, 5, pick);
        assert_eq!(two[0], all[3]);
        assert_eq!(two[1], all[4]);
    }

    #[test]
    fn the_behaviour_policy_in_sim_differs_from_the_logs_only_by_the_dynamics() {
        for beta in [0.0, 0.9] {
            let w = World::new(&WorldParams { logged_users: 40, ..world(beta).p }).unwrap();
            let (logs, sim) = (w.logs(), w.behaviour_sessions(Dynamics::Sim, Population::Logged, 40, 1));
            assert!(logs.iter().zip(&sim).all(|(a, b)| a.items == b.items), "the same items served");
            let clicks = |v: &[LoggedSession]| v.iter().flat_map(|l| l.clicks.iter()).sum::<f32>();
            if beta == 0.0 {
                assert_eq!(logs, sim, "β = 0: the same sessions");
            } else {
                assert!(
                    clicks(&sim) > clicks(&logs) * 1.2,
                    "bored real users click less: {} vs {}",
                    clicks(&sim),
                    clicks(&logs)
                );
            }
        }
    }

    #[test]
    fn world_and_logs_round_trip_through_their_tables() {
        let p = WorldParams { logged_users: 5, ..world(0.5).p };
        let w = World::new(&p).unwrap();
        let back = world_from_table(&world_table(&w).unwrap()).unwrap();
        assert_eq!(back.item_vecs, w.item_vecs);
        let logs = w.logs();
        assert_eq!(logs_from_table(&logs_table(&logs).unwrap()).unwrap(), logs);
        let rates = logged_click_rates(&w, &logs);
        assert!(rates.iter().all(|&r| r > 0.0 && r < 1.0));
    }

    fn leaving_world(beta: f64, leave: f64) -> World {
        World::new(&WorldParams { leave, ..world(beta).p }).unwrap()
    }

    /// Repeats topic 0, then topic 1, …: bored and fresh steps both occur.
    fn topic_runs(slot: usize, so_far: &[i64]) -> i64 {
        ((so_far.len() * 3 + slot) % 60) as i64
    }

    #[test]
    fn a_user_who_leaves_answers_nothing_after_and_only_real_users_leave() {
        let w = leaving_world(0.0, 1.0);
        let (users, t) = (300usize, 16usize);
        let ids: Vec<usize> = (0..users).collect();
        let clicks_after_leaving = |d: Dynamics| {
            let env = w.env(d, Population::Sim);
            let served = serve(&env, &ids, t, 5, &mut topic_runs);
            let (mut left, mut after) = (0, 0.0);
            for (items, r) in &served {
                let hist: Vec<u32> = items.iter().map(|&a| a as u32).collect();
                // leave = 1: the first non-click on a bored topic is the last answer.
                if let Some(s) = (0..t).find(|&s| r[s] == 0.0 && w.bored(&hist[..s], hist[s])) {
                    left += 1;
                    after += r[s + 1..].iter().map(|&x| f64::from(x)).sum::<f64>();
                }
            }
            (left, after)
        };
        let (left, after) = clicks_after_leaving(Dynamics::Real);
        assert!(left > users / 2, "{left} of {users} users had a bored non-click");
        assert_eq!(after, 0.0, "a real user clicked after leaving");
        let (_, sim_after) = clicks_after_leaving(Dynamics::Sim);
        assert!(sim_after > 100.0, "sim users never leave: {sim_after} clicks after the same point");
        // Leaving is a gap of its own: at β = 0 the exact ratio is not 0 once a user may have left.
        let env = w.env(Dynamics::Sim, Population::Sim);
        let e = env.exact_log_ratio(0, &[0, 3, 6, 30], &[1.0, 1.0, 0.0, 1.0]).unwrap();
        assert_eq!(&e.log_ratio[..3], &[0.0, 0.0, 0.0]);
        assert!((f64::from(e.log_ratio[3]) - 1e-3f64.ln()).abs() < 1e-5, "a click after leaving is impossible");
        assert!(serde_json::to_string(&world(0.0).p).unwrap().find("leave").is_none(), "not in the key at 0");
    }

    #[test]
    fn the_exact_real_probability_accounts_for_users_who_may_have_left() {
        let w = leaving_world(0.5, 0.5);
        let env = w.env(Dynamics::Real, Population::Sim);
        let (users, t) = (600usize, 16usize);
        let ids: Vec<usize> = (0..users).collect();
        let served = serve(&env, &ids, t, 2, &mut topic_runs);
        let (mut exact, mut naive, mut clicks, mut var) = (0.0, 0.0, 0.0, 0.0);
        for (u, (items, r)) in served.iter().enumerate() {
            let taste = w.taste(Population::Sim, u);
            let hist: Vec<u32> = items.iter().map(|&a| a as u32).collect();
            let probs = w.real_click_probs(&taste, &hist, r);
            for s in 0..t {
                exact += probs[s];
                var += probs[s] * (1.0 - probs[s]);
                naive += w.prob(Dynamics::Real, &taste, &hist[..s], hist[s]);
                clicks += f64::from(r[s]);
            }
        }
        let sd = var.sqrt();
        assert!((clicks - exact).abs() < 4.0 * sd, "clicks {clicks}, exact {exact} ± {sd}");
        assert!(naive - clicks > 8.0 * sd, "ignoring leaving should overestimate: {naive} vs {clicks} ± {sd}");
    }

    #[test]
    fn the_exact_log_ratio_is_zero_off_boredom_and_the_stated_factor_on_it() {
        let w = world(0.6);
        let env = w.env(Dynamics::Sim, Population::Sim);
        let taste = w.taste(Population::Sim, 4);
        // Items 0, 1, 2 are topic 0 (k = 2: the third is bored), 30 is topic 3.
        let items = [0i64, 1, 30, 2, 2 + 1];
        for clicks in [[1.0f32, 0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0, 1.0]] {
            let e = env.exact_log_ratio(4, &items, &clicks).expect("a world knows its dynamics");
            assert_eq!(e.bored, vec![false, false, false, true, true]);
            for t in 0..3 {
                assert_eq!(e.log_ratio[t], 0.0);
            }
            for t in 3..5 {
                let p = w.base_prob(&taste, items[t] as u32);
                let want = if clicks[t] > 0.5 { 0.4f64.ln() } else { ((1.0 - 0.4 * p) / (1.0 - p)).ln() };
                assert!((f64::from(e.log_ratio[t]) - want).abs() < 1e-5, "step {t}: {} vs {want}", e.log_ratio[t]);
            }
        }
        // β = 1: a bored click is impossible in real, floored; at β = 0 every ratio is 0.
        let e = world(1.0).env(Dynamics::Sim, Population::Sim).exact_log_ratio(4, &items, &[1.0; 5]).unwrap();
        assert!((f64::from(e.log_ratio[3]) - 1e-3f64.ln()).abs() < 1e-5);
        let e = world(0.0).env(Dynamics::Sim, Population::Sim).exact_log_ratio(4, &items, &[1.0; 5]).unwrap();
        assert!(e.log_ratio.iter().all(|&x| x == 0.0));
        let reward = |_: usize, _: i64| 1.0;
        assert!(crate::env::session::Replay::new(3, &reward).exact_log_ratio(0, &items, &[1.0; 5]).is_none());
    }

    #[test]
    fn ratings_are_the_taste_in_half_stars_and_the_logged_users_rate_both_pools() {
        assert_eq!((star_rating(0.0), star_rating(0.5), star_rating(1.0), star_rating(0.3)), (1.0, 3.0, 5.0, 2.0));
        let p = WorldParams {
            setting: Setting::Categories,
            logged_users: 7,
            sim_users: 11,
            rated_items: 5,
            ..world(0.5).p
        };
        let w = World::new(&p).unwrap();
        let (sim, real) = w.ratings();
        assert_eq!((sim.len(), real.len()), (18 * 5, 7 * 5));
        let (sim_pool, real_pool) = (p.pool(Dynamics::Sim), p.pool(Dynamics::Real));
        for (r, pool, users) in [(&sim, &sim_pool, 18u32), (&real, &real_pool, 7)] {
            let mut seen = std::collections::HashSet::new();
            for k in 0..r.len() {
                let (u, i) = (r.user[k], r.item[k] - 1);
                assert!(pool.contains(&i) && (1..=users).contains(&u), "user {u}, item {i}");
                assert!(seen.insert((u, i)), "user {u} rates item {i} once");
                let (pop, idx) = if u <= 7 { (Population::Logged, u - 1) } else { (Population::Sim, u - 8) };
                let taste = w.taste(pop, idx as usize);
                assert_eq!(r.rating[k], star_rating(w.base_prob(&taste, i)));
                assert!(r.rating[k] >= 1.0 && r.rating[k] <= 5.0 && (r.rating[k] * 2.0).fract() == 0.0);
            }
        }
        // The shared users: every logged user is in both tables.
        assert!((1..=7).all(|u| sim.user.contains(&u) && real.user.contains(&u)));
        assert_eq!(World::new(&p).unwrap().ratings(), (sim.clone(), real), "same seed, same ratings");
        let spread: std::collections::HashSet<u32> = sim.rating.iter().map(|&y| (y * 2.0) as u32).collect();
        assert!(spread.len() >= 3, "ratings spread over the stars: {spread:?}");
    }

    #[test]
    fn the_categories_setting_splits_the_topics_into_two_pools() {
        let p = WorldParams { setting: Setting::Categories, ..world(0.5).p };
        let (sim, real) = (p.pool(Dynamics::Sim), p.pool(Dynamics::Real));
        assert_eq!(sim.len() + real.len(), 60);
        assert!(sim.iter().all(|&i| p.topic(i as usize) < 3) && real.iter().all(|&i| p.topic(i as usize) >= 3));
        let bad = WorldParams { session_len: 31, ..p };
        assert!(bad.check().unwrap_err().contains("session_len"));
    }
}
