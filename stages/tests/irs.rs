//! The LSTM-DQN end to end on ml-latest-small (needs the `torch` feature): DQN-R learns in the
//! simulator and beats random on the real test users, bit-deterministically on the CPU.
#![cfg(feature = "torch")]

use std::collections::HashMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use s2r_stages::api::artifact::{Artifact, Inputs};
use s2r_stages::api::context::Context;
use s2r_stages::api::stage::Stage;
use s2r_stages::data::items::Items;
use s2r_stages::data::ratings::Ratings;
use s2r_stages::data::split::split;
use s2r_stages::env::session::Replay;
use s2r_stages::eval::metrics::{session, summarize, Rule};
use s2r_stages::kinds::data_split::config as split_config;
use s2r_stages::neural::irs::episode::{Domain, Side};
use s2r_stages::neural::irs::qnet::ItemBias;
use s2r_stages::neural::irs::rollout::greedy_with_feedback;
use s2r_stages::neural::irs::train::{train, TrainOptions, Trained};
use s2r_stages::numerics::factorize::factorize;
use s2r_stages::tch::{self, Tensor};

fn tensor(v: &[f64], d: usize) -> Tensor {
    Tensor::from_slice(&v.iter().map(|&x| x as f32).collect::<Vec<_>>()).view([-1, d as i64])
}

#[test]
fn dqn_r_learns_on_ml_latest_small_and_beats_random() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::for_tests(dir.path());
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/ml-latest-small");
    let o = s2r_stages::kinds::data_movielens::MovieLens
        .run(&ctx, &Inputs::default(), &serde_json::json!({"path": data}))
        .unwrap();
    let t = |n: &str| match &o[n] {
        Artifact::Table(t) => t.clone(),
        _ => unreachable!(),
    };
    let ratings = Ratings::from_batch(&t("ratings"), "r").unwrap();
    let items = Items::from_batch(&t("items"), "i").unwrap();
    let s = split(
        &ratings,
        &items,
        &split_config(&serde_json::json!({"sim": "Adventure", "real": "Crime", "seed": 7})).unwrap(),
    )
    .unwrap();
    let fs = factorize(&s.sim, &s.sim_items, 32, 10, 3, 1);
    let fr = factorize(&s.real_train, &s.real_items, 32, 10, 3, 2);
    let sim = Domain::new(tensor(&fs.item_vecs, 32), Side::Sim);
    let real = Domain::new(tensor(&fr.item_vecs, 32), Side::Real);
    let rule = Rule::for_scale(5.0);
    let mut sim_r: Vec<HashMap<i64, f32>> = vec![HashMap::new(); fs.users.len()];
    for k in 0..s.sim.len() {
        let u = fs.users.binary_search(&s.sim.user[k]).unwrap();
        let i = fs.items.binary_search(&s.sim.item[k]).unwrap() as i64;
        sim_r[u].insert(i, rule.reward_of(s.sim.rating[k]) as f32);
    }
    let opts = TrainOptions {
        iterations: 300,
        batch: 32,
        session_len: 32,
        gamma: 0.9,
        lr: 1e-3,
        target_every: 20,
        k_interval: 0,
        hidden: 64,
        item_bias: false,
        item_bias_lr: 1e-3,
        popularity: false,
        popularity_per_pool: false,
        real_bootstrap: s2r_stages::neural::irs::td::Bootstrap::Logged,
        real_conservative: 0.0,
        real_negatives: None,
        seed: 3,
        delta_r: None,
    };
    let Trained { vs, curves, .. } = train(
        &sim,
        &Replay::new(fs.users.len(), &|u, a| sim_r[u].get(&a).copied().unwrap_or(0.0)),
        None,
        &opts,
        None,
        tch::Device::Cpu,
        &|_| Ok(()),
    )
    .unwrap();
    let early: f64 = curves[..20].iter().map(|c| c.sim_reward).sum::<f64>() / 20.0;
    let late: f64 = curves[curves.len() - 20..].iter().map(|c| c.sim_reward).sum::<f64>() / 20.0;
    // Test users in the real domain, greedy, rewards from their real ratings.
    let mut test: std::collections::BTreeMap<u32, HashMap<u32, f32>> = Default::default();
    for k in 0..s.test.len() {
        test.entry(s.test.user[k]).or_default().insert(s.test.item[k], s.test.rating[k]);
    }
    let users: Vec<u32> = test.keys().copied().collect();
    let idx: Vec<usize> = (0..users.len()).collect();
    let reward =
        |u: usize, a: i64| test[&users[u]].get(&fr.items[a as usize]).map_or(0.0, |&y| rule.reward_of(y) as f32);
    let sessions =
        greedy_with_feedback(&vs, &real, &idx, 32, 64, ItemBias::default(), &Replay::new(idx.len(), &reward));
    let dqn = summarize(
        &sessions
            .iter()
            .zip(&users)
            .map(|(s, u)| session(&s.iter().map(|&a| fr.items[a as usize]).collect::<Vec<_>>(), &test[u], rule, 32))
            .collect::<Vec<_>>(),
    );
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let random = summarize(
        &users
            .iter()
            .map(|u| {
                let mut pool = fr.items.clone();
                rand::seq::SliceRandom::shuffle(&mut pool[..], &mut rng);
                session(&pool[..32], &test[u], rule, 32)
            })
            .collect::<Vec<_>>(),
    );
    eprintln!("sim reward {early:.3} → {late:.3}; test reward DQN-R {:.4} vs random {:.4}", dqn.reward, random.reward);
    assert!(late > early + 0.05, "it learned in the simulator: {early} → {late}");
    assert!(dqn.reward > 2.0 * random.reward, "DQN-R {} vs random {}", dqn.reward, random.reward);
    // Bit-deterministic on CPU for a fixed seed and thread count.
    let again = |o: &TrainOptions| {
        train(
            &sim,
            &Replay::new(fs.users.len(), &|u, a| sim_r[u].get(&a).copied().unwrap_or(0.0)),
            None,
            &TrainOptions { iterations: 20, ..o.clone() },
            None,
            tch::Device::Cpu,
            &|_| Ok(()),
        )
        .unwrap()
        .curves
    };
    let (a, b) = (again(&opts), again(&opts));
    assert!(a.iter().zip(&b).all(|(a, b)| a.td_loss.to_bits() == b.td_loss.to_bits()));
}

/// A replay world where DQN-R can beat both static baselines: every user has one of two tastes,
/// rates only items of that taste (an item of the user's taste is rated with its popularity), and
/// the item vectors of both pools carry [popularity, taste] in the same two leading coordinates
/// (the rest is noise that differs between pools, as two SVDs' bases do). Most-popular cannot
/// know the taste, and MF by SVD of the two domains' matrices sees mismatched bases; the LSTM can
/// read the taste from the session's first rewards. Train on sim users with real logs every third
/// batch (logged bootstrap, scalar bias: the defaults), evaluate greedily on fresh real users.
#[test]
fn dqn_r_beats_mf_and_most_popular_where_the_session_reveals_the_taste() {
    use rand::Rng;
    use s2r_stages::neural::irs::episode::Episode;
    use s2r_stages::neural::irs::td::Bootstrap;
    let d = 8usize;
    let rule = Rule::for_scale(5.0);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    // Items: (taste, popularity).
    let pool = |n: usize, rng: &mut ChaCha8Rng| -> Vec<(usize, f64)> {
        (0..n).map(|i| (i % 2, 0.15 + 0.8 * rng.random::<f64>())).collect()
    };
    let (sim_items, real_items) = (pool(60, &mut rng), pool(40, &mut rng));
    let vecs = |items: &[(usize, f64)], rng: &mut ChaCha8Rng| -> Tensor {
        let mut v = Vec::new();
        for &(taste, pop) in items {
            v.push(pop as f32);
            v.push(if taste == 0 { 0.5 } else { -0.5 });
            v.extend((2..d).map(|_| (rng.random::<f32>() - 0.5) * 0.3));
        }
        Tensor::from_slice(&v).view([items.len() as i64, d as i64])
    };
    let sim = Domain::new(vecs(&sim_items, &mut rng), Side::Sim);
    let real = Domain::new(vecs(&real_items, &mut rng), Side::Real);
    // A user's ratings of a pool: items of their taste, each with its popularity, 4★ or 5★.
    let user = |taste: usize, items: &[(usize, f64)], rng: &mut ChaCha8Rng| -> HashMap<u32, f32> {
        let mut rated = HashMap::new();
        for (i, &(t, p)) in items.iter().enumerate() {
            let (draw, five) = (rng.random::<f64>(), rng.random::<bool>());
            if t == taste && draw < p {
                rated.insert(i as u32, if five { 5.0 } else { 4.0 });
            }
        }
        rated
    };
    let sim_users: Vec<HashMap<u32, f32>> = (0..300).map(|u| user(u % 2, &sim_items, &mut rng)).collect();
    let shared: Vec<HashMap<u32, f32>> = (0..60).map(|u| user(u % 2, &real_items, &mut rng)).collect();
    let val: Vec<HashMap<u32, f32>> = (0..80).map(|u| user(u % 2, &real_items, &mut rng)).collect();
    let t = 8usize;
    let logs: Vec<Episode> = shared
        .iter()
        .filter(|r| r.len() >= t)
        .map(|r| {
            let mut items: Vec<(&u32, &f32)> = r.iter().collect();
            items.sort_by_key(|x| *x.0);
            let items = &items[..t];
            Episode {
                actions: items.iter().map(|x| i64::from(*x.0)).collect(),
                rewards: items.iter().map(|x| rule.reward_of(*x.1) as f32).collect(),
            }
        })
        .collect();
    assert!(logs.len() > 20, "{} logged sessions", logs.len());
    let opts = TrainOptions {
        iterations: 600,
        batch: 32,
        session_len: t,
        gamma: 0.9,
        lr: 1e-3,
        target_every: 50,
        k_interval: 3,
        hidden: 32,
        item_bias: false,
        item_bias_lr: 1e-3,
        popularity: false,
        popularity_per_pool: false,
        real_bootstrap: Bootstrap::Logged,
        real_conservative: 0.0,
        real_negatives: None,
        seed: 2,
        delta_r: None,
    };
    let sim_reward = |u: usize, a: i64| sim_users[u].get(&(a as u32)).map_or(0.0, |&y| rule.reward_of(y) as f32);
    let trained = train(
        &sim,
        &Replay::new(sim_users.len(), &sim_reward),
        Some((&real, &logs)),
        &opts,
        None,
        tch::Device::Cpu,
        &|_| Ok(()),
    )
    .unwrap();
    let bias = ItemBias::default();
    let idx: Vec<usize> = (0..val.len()).collect();
    let feedback = |u: usize, a: i64| val[u].get(&(a as u32)).map_or(0.0, |&y| rule.reward_of(y) as f32);
    let sessions = greedy_with_feedback(&trained.vs, &real, &idx, t, 32, bias, &Replay::new(idx.len(), &feedback));
    let score = |recs: &dyn Fn(usize) -> Vec<u32>| {
        summarize(&(0..val.len()).map(|u| session(&recs(u), &val[u], rule, t)).collect::<Vec<_>>()).reward
    };
    let dqn = score(&|u| sessions[u].iter().map(|&a| a as u32).collect());
    // Most popular: the items most rated by the shared users (D_real).
    let mut counts = vec![0usize; real_items.len()];
    for r in &shared {
        for &i in r.keys() {
            counts[i as usize] += 1;
        }
    }
    let mut by_count: Vec<u32> = (0..real_items.len() as u32).collect();
    by_count.sort_by_key(|&i| std::cmp::Reverse(counts[i as usize]));
    let popular = score(&|_| by_count[..t].to_vec());
    // MF: sim users' SVD vectors × real items' SVD vectors (each domain's own matrix).
    let ratings = |users: &[HashMap<u32, f32>]| {
        let mut r = Ratings::default();
        for (u, m) in users.iter().enumerate() {
            for (&i, &y) in m {
                r.push(u as u32, i, y, 0);
            }
        }
        r
    };
    let (sim_r, real_r) = (ratings(&sim_users), ratings(&shared));
    let fs = factorize(&sim_r, &(0..sim_items.len() as u32).collect::<Vec<_>>(), d, 4, 3, 1);
    let fr = factorize(&real_r, &(0..real_items.len() as u32).collect::<Vec<_>>(), d, 4, 3, 1);
    // Validation users are new to the simulator: each takes the sim vector of a sim user of the
    // same taste (the most MF could know of them).
    let k = fs.k.min(fr.k);
    let mf = score(&|u| {
        let uv = &fs.user_vecs[(u % 2) * fs.k..(u % 2) * fs.k + k];
        let mut s: Vec<(f64, u32)> = (0..real_items.len())
            .map(|i| (fr.item_vecs[i * fr.k..i * fr.k + k].iter().zip(uv).map(|(a, b)| a * b).sum(), i as u32))
            .collect();
        s.sort_by(|a, b| b.0.total_cmp(&a.0));
        s[..t].iter().map(|x| x.1).collect()
    });
    // (MF here recommends the other taste: the sign of the taste direction differs between the two
    // SVDs, as singular vectors' signs beyond the first are arbitrary — the basis mismatch.)
    eprintln!("validation reward: DQN-R {dqn:.4}, most popular {popular:.4}, MF {mf:.4}");
    assert!(dqn > popular + 0.05, "DQN-R {dqn} vs most popular {popular}");
    assert!(dqn > mf + 0.05, "DQN-R {dqn} vs MF {mf}");
}

/// A replay world where popularity is everything: a user rates each item with the item's
/// popularity (4★ or 5★), the sim vectors carry popularity in their first coordinate
/// (`sim_carries`) or none, and the real vectors carry none (the two SVDs' bases disagree), so
/// the item term transfers nothing and the real logs (one session of T per shared user, rated
/// items only) must show popularity.
struct PopularityWorld {
    t: usize,
    rule: Rule,
    sim: Domain,
    real: Domain,
    n_real: usize,
    sim_users: Vec<HashMap<u32, f32>>,
    val: Vec<HashMap<u32, f32>>,
    logs: Vec<s2r_stages::neural::irs::episode::Episode>,
    /// Each log's user's rated real items, sorted.
    rated: Vec<Vec<i64>>,
    /// Ratings per item: sim users' of the sim pool, shared users' of the real pool.
    sim_counts: Vec<u32>,
    real_counts: Vec<u32>,
}

fn popularity_world(sim_carries: bool) -> PopularityWorld {
    use rand::seq::SliceRandom;
    use rand::Rng;
    use s2r_stages::neural::irs::episode::Episode;
    let (d, t) = (8usize, 8usize);
    let rule = Rule::for_scale(5.0);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let pops = |n: usize, rng: &mut ChaCha8Rng| -> Vec<f64> {
        (0..n).map(|_| 0.03 + 0.9 * rng.random::<f64>().powi(3)).collect()
    };
    let (sim_pop, real_pop) = (pops(60, &mut rng), pops(50, &mut rng));
    let vecs = |pop: &[f64], carries: bool, rng: &mut ChaCha8Rng| -> Tensor {
        let mut v = Vec::new();
        for &p in pop {
            v.push(if carries { p as f32 } else { rng.random::<f32>() - 0.5 });
            v.extend((1..d).map(|_| (rng.random::<f32>() - 0.5) * 0.3));
        }
        Tensor::from_slice(&v).view([pop.len() as i64, d as i64])
    };
    let sim = Domain::new(vecs(&sim_pop, sim_carries, &mut rng), Side::Sim);
    let real = Domain::new(vecs(&real_pop, false, &mut rng), Side::Real);
    let user = |pop: &[f64], rng: &mut ChaCha8Rng| -> HashMap<u32, f32> {
        let mut rated = HashMap::new();
        for (i, &p) in pop.iter().enumerate() {
            let (draw, five) = (rng.random::<f64>(), rng.random::<bool>());
            if draw < p {
                rated.insert(i as u32, if five { 5.0 } else { 4.0 });
            }
        }
        rated
    };
    let sim_users: Vec<HashMap<u32, f32>> = (0..300).map(|_| user(&sim_pop, &mut rng)).collect();
    let shared: Vec<HashMap<u32, f32>> = (0..60).map(|_| user(&real_pop, &mut rng)).collect();
    let val: Vec<HashMap<u32, f32>> = (0..100).map(|_| user(&real_pop, &mut rng)).collect();
    // One logged session per shared user with ≥ T ratings, in a random order.
    let (mut logs, mut rated) = (Vec::new(), Vec::new());
    for r in &shared {
        let mut items: Vec<u32> = r.keys().copied().collect();
        items.sort_unstable();
        let mut order = items.clone();
        order.shuffle(&mut rng);
        if order.len() >= t {
            logs.push(Episode {
                actions: order[..t].iter().map(|&i| i64::from(i)).collect(),
                rewards: order[..t].iter().map(|i| rule.reward_of(r[i]) as f32).collect(),
            });
            rated.push(items.iter().map(|&i| i64::from(i)).collect::<Vec<i64>>());
        }
    }
    assert!(logs.len() > 20, "{} logged sessions", logs.len());
    let counts = |users: &[HashMap<u32, f32>], n: usize| {
        let mut c = vec![0u32; n];
        for r in users {
            for &i in r.keys() {
                c[i as usize] += 1;
            }
        }
        c
    };
    PopularityWorld {
        t,
        rule,
        sim,
        real,
        n_real: real_pop.len(),
        sim_counts: counts(&sim_users, sim_pop.len()),
        real_counts: counts(&shared, real_pop.len()),
        sim_users,
        val,
        logs,
        rated,
    }
}

impl PopularityWorld {
    fn options(&self) -> TrainOptions {
        TrainOptions {
            iterations: 600,
            batch: 32,
            session_len: self.t,
            gamma: 0.9,
            lr: 1e-3,
            target_every: 50,
            k_interval: 3,
            hidden: 32,
            item_bias: true,
            item_bias_lr: 1e-2,
            popularity: false,
            popularity_per_pool: false,
            real_bootstrap: s2r_stages::neural::irs::td::Bootstrap::Logged,
            real_conservative: 0.0,
            real_negatives: None,
            seed: 2,
            delta_r: None,
        }
    }

    /// Validation reward of a recommender (user → T items).
    fn score(&self, recs: &dyn Fn(usize) -> Vec<u32>) -> f64 {
        let rows: Vec<_> = (0..self.val.len()).map(|u| session(&recs(u), &self.val[u], self.rule, self.t)).collect();
        summarize(&rows).reward
    }

    /// Validation reward of DQN-R trained with `o` (the pools carry their popularity when `o` has
    /// the term).
    fn dqn_r(&self, o: &TrainOptions) -> f64 {
        use s2r_stages::neural::irs::episode::popularity;
        let pop = |c: &[u32]| o.popularity.then(|| Tensor::from_slice(&popularity(c)));
        let sim = Domain::raw(self.sim.items.shallow_clone(), Side::Sim).with_pop(pop(&self.sim_counts));
        let real = Domain::raw(self.real.items.shallow_clone(), Side::Real).with_pop(pop(&self.real_counts));
        let rule = self.rule;
        let sim_reward =
            |u: usize, a: i64| self.sim_users[u].get(&(a as u32)).map_or(0.0, |&y| rule.reward_of(y) as f32);
        let feedback = |u: usize, a: i64| self.val[u].get(&(a as u32)).map_or(0.0, |&y| rule.reward_of(y) as f32);
        let trained = train(
            &sim,
            &Replay::new(self.sim_users.len(), &sim_reward),
            Some((&real, &self.logs)),
            o,
            None,
            tch::Device::Cpu,
            &|_| Ok(()),
        )
        .unwrap();
        let bias = ItemBias {
            sim: o.item_bias.then_some(sim.n_items),
            real: o.item_bias.then_some(real.n_items),
            popularity: o.popularity,
            popularity_per_pool: o.popularity_per_pool,
        };
        let idx: Vec<usize> = (0..self.val.len()).collect();
        let sessions =
            greedy_with_feedback(&trained.vs, &real, &idx, self.t, o.hidden, bias, &Replay::new(idx.len(), &feedback));
        self.score(&|u| sessions[u].iter().map(|&a| a as u32).collect())
    }

    /// Most-popular (by the shared users' counts) and random on the validation users.
    fn baselines(&self) -> (f64, f64) {
        use rand::seq::SliceRandom;
        let mut by_count: Vec<u32> = (0..self.n_real as u32).collect();
        by_count.sort_by_key(|&i| std::cmp::Reverse(self.real_counts[i as usize]));
        let popular = self.score(&|_| by_count[..self.t].to_vec());
        let random = self.score(&|u| {
            let mut pool: Vec<u32> = (0..self.n_real as u32).collect();
            pool.shuffle(&mut ChaCha8Rng::seed_from_u64(u as u64));
            pool[..self.t].to_vec()
        });
        (popular, random)
    }
}

/// Negatives teach Q what the logs cannot: which real items go unrated ([`popularity_world`]).
/// Without negatives every logged item looks as good as any other; with 4 unrated items per
/// logged step as zero-reward actions, the real pool's per-item bias learns the rating rate.
/// The biases learn at 0.01 (`item_bias_lr`; with Adam a bias moves ≤ ~lr per step, and only in
/// the real batches, every third iteration): measured here, with negatives 0.156 / 0.475 / 0.512
/// at a bias rate of 0.001 / 0.01 / 0.03, against 0.187 / 0.237 / 0.173 without; most-popular
/// 0.633, random 0.221. The item term, fitted to the noise vectors, keeps it below most-popular.
#[test]
fn negatives_teach_q_which_real_items_go_unrated() {
    use s2r_stages::neural::irs::train::Negatives;
    let w = popularity_world(true);
    let opts = w.options();
    let without = w.dqn_r(&opts);
    let with =
        w.dqn_r(&TrainOptions { real_negatives: Some(Negatives { per_step: 4, rated: w.rated.clone() }), ..opts });
    let (popular, random) = w.baselines();
    eprintln!("validation reward: with negatives {with:.4}, without {without:.4}, most popular {popular:.4}, random {random:.4}");
    assert!(with > without + 0.15, "negatives {with} vs none {without}");
    assert!(with > random + 0.15, "negatives {with} vs random {random}");
    assert!(with > 0.6 * popular, "negatives {with} vs most popular {popular}");
}

/// The popularity term carries what the simulator teaches to the real pool: in
/// [`popularity_world`] with no popularity in either pool's vectors, only π can learn in the
/// simulator how much an item's popularity is worth, and the real pool's popularity is counted in
/// the logs. Plain DQN-R (a scalar bias, no negatives) cannot rank the real pool; with the term
/// it serves the popular items. Measured: 0.543 with the term, 0.126 without; most-popular 0.605,
/// random 0.225.
///
/// When the sim vectors carry popularity too (`popularity_world(true)`), the item term learns it
/// there instead and π much less, and the item term then ranks the real pool by its unrelated
/// vectors: measured 0.204 with the term vs 0.157 without (most-popular 0.633, random 0.221),
/// which is why on the real data the term helps only where the vectors transfer little
/// (README, "DQN-R and popularity").
#[test]
fn the_popularity_term_carries_popularity_to_the_real_pool() {
    let w = popularity_world(false);
    let plain = TrainOptions { item_bias: false, ..w.options() };
    let without = w.dqn_r(&plain);
    let with = w.dqn_r(&TrainOptions { popularity: true, ..plain });
    let (popular, random) = w.baselines();
    eprintln!("validation reward: with the popularity term {with:.4}, without {without:.4}, most popular {popular:.4}, random {random:.4}");
    assert!(with > without + 0.15, "popularity term {with} vs none {without}");
    assert!(with > 0.8 * popular, "popularity term {with} vs most popular {popular}");
}

/// The real pool's own π learns what a shared one cannot: in [`popularity_world`] with
/// popularity in the sim vectors, the item term carries popularity in the simulator, so a π shared
/// by both pools learns little there (it offsets the item term), and the real pool is ranked by its
/// unrelated vectors. A π of the real pool alone (`popularity_per_pool`) learns from the real-log
/// batches, where the logged items (rated, reward > 0) and the negatives (unrated, reward 0) say
/// how much the real pool's counted popularity is worth. Measured: 0.367 with its own π, 0.208
/// with a shared one (most-popular 0.633, random 0.221); still rising at 1,200 and 2,400
/// iterations (0.415, 0.436). On the real data it does not close the gap to most-popular (README,
/// "DQN-R and popularity").
#[test]
fn the_real_pools_own_pi_learns_popularity_from_the_logs() {
    use s2r_stages::neural::irs::train::Negatives;
    let w = popularity_world(true);
    let neg = || Some(Negatives { per_step: 4, rated: w.rated.clone() });
    let shared = TrainOptions { item_bias: false, popularity: true, real_negatives: neg(), ..w.options() };
    let per_pool = TrainOptions { popularity_per_pool: true, real_negatives: neg(), ..shared.clone() };
    let (shared, per_pool) = (w.dqn_r(&shared), w.dqn_r(&per_pool));
    let (popular, random) = w.baselines();
    eprintln!(
        "validation reward: own π {per_pool:.4}, shared π {shared:.4}, most popular {popular:.4}, random {random:.4}"
    );
    assert!(per_pool > shared + 0.1, "own π {per_pool} vs shared {shared}");
    assert!(per_pool > random + 0.1, "own π {per_pool} vs random {random}");
}

#[test]
fn popularity_is_standardised_per_pool() {
    use s2r_stages::neural::irs::episode::popularity;
    // ln(1 + n): 0, ln 2, ln 4, ln 8 → mean 0, unit variance, in count order.
    let p = popularity(&[0, 1, 3, 7]);
    let mean = p.iter().sum::<f32>() / 4.0;
    let var = p.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / 4.0;
    assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "{p:?}");
    // Equal log steps stay equal steps: ln 2 apart each.
    assert!(((p[1] - p[0]) - (p[3] - p[2])).abs() < 1e-5 && p[0] < p[1], "{p:?}");
    assert_eq!(popularity(&[4, 4, 4]), vec![0.0; 3]);
    assert!(popularity(&[]).is_empty());
}
