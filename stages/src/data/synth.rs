//! A seeded synthetic world (the `data.synth` stage) with the loaders' output schema and a known dynamics gap.
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

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Normal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::items::Items;
use crate::data::ratings::Ratings;

/// Generator params (see the module docs for the model).
#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct SynthParams {
    /// Users.
    #[serde(default = "d_users")]
    pub users: usize,
    /// Items of the sim category.
    #[serde(default = "d_items")]
    pub sim_items: usize,
    /// Items of the real category.
    #[serde(default = "d_items")]
    pub real_items: usize,
    /// Latent dimension.
    #[serde(default = "d_dim")]
    pub dim: usize,
    /// Mean ratings per user (both categories together).
    #[serde(default = "d_rpu")]
    pub ratings_per_user: f64,
    /// Share of a user's ratings in the sim category.
    #[serde(default = "d_half")]
    pub sim_share: f64,
    /// Dynamics gap between real and sim (0 = identical dynamics).
    #[serde(default)]
    pub gap: f64,
    /// Polarisation weight of the gap.
    #[serde(default = "d_one")]
    pub polar: f64,
    /// History-momentum weight of the gap.
    #[serde(default = "d_half")]
    pub momentum: f64,
    /// Drift (fatigue) weight of the gap.
    #[serde(default = "d_one")]
    pub drift: f64,
    /// History window for the momentum term.
    #[serde(default = "d_window")]
    pub window: usize,
    /// Session length T for the drift term.
    #[serde(default = "d_t")]
    pub session: usize,
    /// Rating noise standard deviation.
    #[serde(default = "d_noise")]
    pub noise: f64,
    /// Zipf exponent of item popularity.
    #[serde(default = "d_zipf")]
    pub zipf: f64,
    /// One item pool shared by sim-dynamics and real-dynamics users (the RQ2 setting).
    #[serde(default)]
    pub shared_pool: bool,
    /// With `shared_pool`: the share of users with the real dynamics.
    #[serde(default = "d_half")]
    pub real_users: f64,
    /// Category names `[sim, real]`.
    #[serde(default = "d_cats")]
    pub categories: [String; 2],
    /// Seed.
    #[serde(default)]
    pub seed: u64,
}
fn d_users() -> usize {
    1000
}
fn d_items() -> usize {
    200
}
fn d_dim() -> usize {
    8
}
fn d_rpu() -> f64 {
    80.0
}
fn d_half() -> f64 {
    0.5
}
fn d_one() -> f64 {
    1.0
}
fn d_window() -> usize {
    5
}
fn d_t() -> usize {
    32
}
fn d_noise() -> f64 {
    0.5
}
fn d_zipf() -> f64 {
    0.8
}
fn d_cats() -> [String; 2] {
    ["Sim".to_string(), "Real".to_string()]
}

/// The generated world: data plus the ground truth.
#[derive(Debug, Clone)]
pub struct World {
    /// Ratings in the loaders' schema.
    pub ratings: Ratings,
    /// Items (ids 1..=sim_items are sim, the rest real).
    pub items: Items,
    /// User factors, row-major `users × dim` (user id k+1 is row k).
    pub user_factors: Vec<f32>,
    /// Item factors, row-major `items × dim` (item id k+1 is row k).
    pub item_factors: Vec<f32>,
    /// Item biases.
    pub item_bias: Vec<f32>,
    /// The same ratings made by the real dynamics (see the module docs).
    pub oracle: Ratings,
    /// (user, group): 0 = real dynamics, 1 = sim dynamics (shared pool); all 0 otherwise.
    pub groups: Vec<(u32, u32)>,
    /// The params used.
    pub params: SynthParams,
}

impl SynthParams {
    /// Whether user `u` (0-based) rates with the real dynamics in the shared-pool world.
    pub fn is_real_user(&self, u: usize) -> bool {
        u as f64 >= (self.users as f64 * (1.0 - self.real_users)).round()
    }
}

impl SynthParams {
    /// Mean rating before rounding and noise for affinity `a`, for the real domain (`real`) after
    /// `t` earlier real ratings whose recent centred mean is `m`; sim ignores `t` and `m`.
    pub fn mean_score(&self, a: f64, real: bool, t: usize, m: f64) -> f64 {
        if !real {
            return 3.0 + a;
        }
        let g = self.gap;
        3.0 + a * (1.0 + g * self.polar) + g * self.momentum * m
            - g * self.drift * (t.min(self.session) as f64) / self.session as f64
    }

    /// Probability of each rating 1..=5 given the mean score (the noise is Gaussian, rounding and
    /// clamping make it discrete).
    pub fn rating_probs(&self, mean: f64) -> [f64; 5] {
        let cdf = |x: f64| {
            if self.noise == 0.0 {
                if x >= mean {
                    1.0
                } else {
                    0.0
                }
            } else {
                0.5 * (1.0 + erf((x - mean) / (self.noise * std::f64::consts::SQRT_2)))
            }
        };
        let mut p = [0.0; 5];
        for (k, slot) in p.iter_mut().enumerate() {
            let y = (k + 1) as f64;
            let lo = if k == 0 { 0.0 } else { cdf(y - 0.5) };
            let hi = if k == 4 { 1.0 } else { cdf(y + 0.5) };
            *slot = (hi - lo).max(0.0);
        }
        p
    }
}

/// Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7).
fn erf(x: f64) -> f64 {
    let s = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t + 0.254_829_592)
            * t
            * (-x * x).exp();
    s * y
}

fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let mut c = Vec::with_capacity(n);
    let mut acc = 0.0;
    for k in 1..=n {
        acc += 1.0 / (k as f64).powf(s);
        c.push(acc);
    }
    for v in &mut c {
        *v /= acc;
    }
    c
}

/// Generates the world.
pub fn generate(p: &SynthParams) -> World {
    let d = p.dim;
    let n_items = p.sim_items + p.real_items;
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let unit = Normal::new(0.0, 1.0).expect("valid normal");
    let scale_u = 1.0 / (d as f64).sqrt();
    let user_factors: Vec<f32> = (0..p.users * d).map(|_| (unit.sample(&mut rng) * scale_u) as f32).collect();
    let item_factors: Vec<f32> = (0..n_items * d).map(|_| unit.sample(&mut rng) as f32).collect();
    let item_bias: Vec<f32> = (0..n_items).map(|_| (unit.sample(&mut rng) * 0.5) as f32).collect();
    // Popularity rank → item, per category.
    let mut perm_sim: Vec<u32> = (1..=p.sim_items as u32).collect();
    let mut perm_real: Vec<u32> = (p.sim_items as u32 + 1..=n_items as u32).collect();
    use rand::seq::SliceRandom;
    perm_sim.shuffle(&mut rng);
    perm_real.shuffle(&mut rng);
    let cdf_sim = zipf_cdf(p.sim_items, p.zipf);
    let cdf_real = zipf_cdf(p.real_items, p.zipf);
    let extra = Exp::new(1.0 / (p.ratings_per_user - 2.0).max(1e-9)).expect("positive rate");
    let per_user: Vec<(Ratings, Ratings)> = (0..p.users)
        .into_par_iter()
        .map(|u| {
            let mut rng = ChaCha8Rng::seed_from_u64(p.seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(u as u64 + 1)));
            let noise = Normal::new(0.0, p.noise.max(1e-12)).expect("valid normal");
            let n = (2.0 + extra.sample(&mut rng)).round() as usize;
            let n_sim = ((n as f64 * p.sim_share).round() as usize).clamp(1, p.sim_items);
            let n_real = (n - n_sim.min(n)).clamp(1, p.real_items);
            let uf = &user_factors[u * d..(u + 1) * d];
            let pick = |rng: &mut ChaCha8Rng, cdf: &[f64], perm: &[u32], k: usize| -> Vec<u32> {
                let mut chosen = Vec::with_capacity(k);
                let mut seen = std::collections::HashSet::new();
                let mut tries = 0;
                while chosen.len() < k && tries < 50 * k {
                    tries += 1;
                    let x: f64 = rng.random();
                    let idx = cdf.partition_point(|&c| c < x).min(cdf.len() - 1);
                    if seen.insert(idx) {
                        chosen.push(perm[idx]);
                    }
                }
                chosen
            };
            // In the shared pool every rating is of the pool; "real" steps are those a
            // real-dynamics user makes.
            let (sims, reals, order) = if p.shared_pool {
                let all = pick(&mut rng, &cdf_sim, &perm_sim, n.clamp(1, p.sim_items));
                let real_user = p.is_real_user(u);
                let order = vec![real_user; all.len()];
                if real_user {
                    (Vec::new(), all, order)
                } else {
                    (all, Vec::new(), order)
                }
            } else {
                let sims = pick(&mut rng, &cdf_sim, &perm_sim, n_sim);
                let reals = pick(&mut rng, &cdf_real, &perm_real, n_real);
                // Interleave in time: a random merge.
                let mut order: Vec<bool> =
                    std::iter::repeat_n(false, sims.len()).chain(std::iter::repeat_n(true, reals.len())).collect();
                order.shuffle(&mut rng);
                (sims, reals, order)
            };
            let mut out = Ratings::default();
            let mut oracle = Ratings::default();
            let (mut si, mut ri) = (0, 0);
            let mut history: Vec<f64> = Vec::new();
            // The counterfactual trajectory with every rating by the real dynamics.
            let mut o_history: Vec<f64> = Vec::new();
            let momentum = |h: &[f64]| {
                let w = &h[h.len().saturating_sub(p.window)..];
                if w.is_empty() {
                    0.0
                } else {
                    w.iter().sum::<f64>() / w.len() as f64
                }
            };
            let rate = |mean: f64, eps: f64| if p.noise == 0.0 { mean } else { mean + eps }.round().clamp(1.0, 5.0);
            for (step, is_real) in order.into_iter().enumerate() {
                let item = if is_real { reals[ri] } else { sims[si] };
                let row = item as usize - 1;
                let vf = &item_factors[row * d..(row + 1) * d];
                let a: f64 = uf.iter().zip(vf).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>()
                    + f64::from(item_bias[row]);
                let eps = noise.sample(&mut rng);
                let y = if is_real {
                    rate(p.mean_score(a, true, ri, momentum(&history)), eps)
                } else {
                    rate(p.mean_score(a, false, 0, 0.0), eps)
                };
                let yo = rate(p.mean_score(a, true, step, momentum(&o_history)), eps);
                o_history.push(yo - 3.0);
                if is_real {
                    history.push(y - 3.0);
                    ri += 1;
                } else {
                    si += 1;
                }
                out.push(u as u32 + 1, item, y as f32, 1_000_000 + step as i64);
                oracle.push(u as u32 + 1, item, yo as f32, 1_000_000 + step as i64);
            }
            (out, oracle)
        })
        .collect();
    let mut ratings = Ratings::default();
    let mut oracle = Ratings::default();
    for (r, o) in per_user {
        ratings.user.extend(r.user);
        ratings.item.extend(r.item);
        ratings.rating.extend(r.rating);
        ratings.ts.extend(r.ts);
        oracle.user.extend(o.user);
        oracle.item.extend(o.item);
        oracle.rating.extend(o.rating);
        oracle.ts.extend(o.ts);
    }
    let groups = (0..p.users).map(|u| (u as u32 + 1, u32::from(p.shared_pool && !p.is_real_user(u)))).collect();
    let mut items = Items::default();
    let n_items = if p.shared_pool { p.sim_items } else { n_items };
    for k in 0..n_items {
        let cat = if k < p.sim_items { &p.categories[0] } else { &p.categories[1] };
        items.item.push(k as u32 + 1);
        items.title.push(format!("{cat} item {}", k + 1));
        items.categories.push(vec![cat.clone()]);
        items.genres.push(vec![cat.clone()]);
    }
    World { ratings, items, user_factors, item_factors, item_bias, oracle, groups, params: p.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rating_probs_sum_to_one() {
        let p: SynthParams = serde_json::from_value(serde_json::json!({})).unwrap();
        for m in [-2.0, 0.3, 3.0, 4.7, 9.0] {
            let s: f64 = p.rating_probs(m).iter().sum();
            assert!((s - 1.0).abs() < 1e-9, "{m}: {s}");
        }
        assert!((erf(1.0) - 0.842_700_79).abs() < 1e-6);
    }
}
