//! The RL hot loops side by side with PyTorch (`cargo bench --features torch --bench irs`):
//! the shapes and the work per step of `../shared/ref/dqn_step.py` and
//! `../shared/ref/darc_classifier.py`, at 1 and 2 threads.
//!
//! - **DQN train step**: B = 64 episodes × T = 32 over 1,000 items, D = H = 128: the online and
//!   target LSTMs over the unrolled episodes, Q over every item, the masked max, the Huber TD loss,
//!   backward, Adam (lr 10⁻³); the target synced every 100 steps; 16 pre-sampled batches of
//!   distinct random items, rewards looked up from the ratings. Ours is `irs.train`'s step:
//!   double-DQN targets (one more online Q over the next states than the reference's plain max)
//!   and gradient clipping at norm 10; the reference's g is an MLP (H → H → D), ours one linear
//!   layer (H → D).
//! - **Rollout**: 64 users × 32 steps, ε = 0.1, masked Q, rewards rating/5 looked up from 750k
//!   sparse ratings (5,000 users, ~150 ratings each, Zipf-like popularity), the LSTM stepped on
//!   each observed reward. Ours is `irs.train`'s rollout against the replay environment.
//! - **Classifier update**: 256 sim + 256 real transitions (8 + 8 episodes × 32 steps), Gaussian
//!   input noise σ = 1, both classifiers' cross-entropy, backward, Adam (lr 3·10⁻⁴). Ours has the
//!   classifiers' own LSTM encoder of the history (the reference's states are given vectors), so
//!   it does more work per transition.
//! - **Δr evaluation**: the classifiers without noise over a 64 × 32 block (ours evaluates the
//!   residual head only, which is what Δr is; the reference evaluates both heads).
//! - **The same two loops on given states** (`delta_r_estimator: state_classifiers`): the
//!   classifiers as two MLPs over (s, a, s′) — s = the Q-network's LSTM state (H = 128, computed
//!   once outside the timed loops, as the reference's s is a given tensor), a = the item vector
//!   (D = 128), width 32 — the reference's shapes. Two differences of work remain: ours draws the
//!   noise once for [s, a, s′] (shared by both heads; the reference draws it for [s, a] and
//!   [s, a, s′] apart), and its Δr is the residual head alone.
//!
//! With `S2R_REF_PYTHON` naming a Python with torch 2.11 (../shared/ref/README.md) the reference
//! scripts run in the same bench run, alternating with ours round by round (`S2R_BENCH_ROUNDS`,
//! default 3), and the table carries the ratio of the medians (ours / reference, > 1 = faster).
//! `S2R_REF_DIR` overrides the scripts' folder (default `../shared/ref` beside the repository).
//! `S2R_BENCH_PROFILE=rollout` runs only the rollout (3,000 batches at 1 thread) and prints its
//! rate, for a profiler attached to the process; `=classifier` the history classifiers' update
//! and Δr (10,000 each), `=states` the classifiers on given states (20 × 1,000 each).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use s2r_stages::env::session::Replay;
use s2r_stages::neural::irs::dynamics::DynClf;
use s2r_stages::neural::irs::episode::{batch_tensors, Domain, Episode, Side};
use s2r_stages::neural::irs::qnet::{ItemBias, QNet};
use s2r_stages::neural::irs::rollout::rollout;
use s2r_stages::neural::irs::state_clf::{StateClf, Transitions};
use s2r_stages::neural::irs::td::{td_loss, Bootstrap, TdRule};
use s2r_stages::tch::nn::OptimizerConfig;
use s2r_stages::tch::{self, nn, Tensor};

const N_ITEMS: usize = 1000;
const DIM: i64 = 128;
const B: usize = 64;
const T: usize = 32;
const USERS: usize = 5000;

/// One loop's rates over rounds (units per second).
#[derive(Default)]
struct Rates {
    ours: Vec<f64>,
    reference: Vec<f64>,
}

fn summary(x: &[f64]) -> String {
    if x.is_empty() {
        return "—".into();
    }
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    format!("{:.1} ({:.1}–{:.1})", median(x), s[0], s[s.len() - 1])
}

fn median(x: &[f64]) -> f64 {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// The reference's ratings: per user ~150 items (normal approximation of its Poisson) drawn
/// without replacement by Zipf-like popularity 1/(rank + 10) (Gumbel top-k), ratings
/// round(3.5 + item bias + noise) clipped to 1..=5. Returns per-user item → rating/5.
fn ratings(rng: &mut ChaCha8Rng) -> (Vec<HashMap<i64, f32>>, usize) {
    let mut order: Vec<usize> = (0..N_ITEMS).collect();
    rand::seq::SliceRandom::shuffle(&mut order[..], rng);
    let logp: Vec<f64> = order.iter().map(|&r| -((r + 11) as f64).ln()).collect();
    let bias: Vec<f64> = (0..N_ITEMS).map(|_| 0.7 * normal(rng)).collect();
    let mut total = 0;
    let table = (0..USERS)
        .map(|_| {
            let k = (150.0 + 150f64.sqrt() * normal(rng)).round().clamp(1.0, N_ITEMS as f64) as usize;
            let mut keys: Vec<(f64, usize)> =
                (0..N_ITEMS).map(|i| (logp[i] - (-rng.random::<f64>().max(1e-300).ln()).ln(), i)).collect();
            keys.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            total += k;
            keys[..k]
                .iter()
                .map(|&(_, i)| {
                    let y = (3.5 + bias[i] + normal(rng)).round().clamp(1.0, 5.0);
                    (i as i64, (y / 5.0) as f32)
                })
                .collect()
        })
        .collect();
    (table, total)
}

/// B episodes of T distinct random items each for random users, rewards from `table`.
fn episodes(rng: &mut ChaCha8Rng, table: &[HashMap<i64, f32>], b: usize) -> Vec<Episode> {
    (0..b)
        .map(|_| {
            let u = rng.random_range(0..table.len());
            let mut items: Vec<i64> = (0..N_ITEMS as i64).collect();
            let (picked, _) = rand::seq::SliceRandom::partial_shuffle(&mut items[..], rng, T);
            let actions = picked.to_vec();
            let rewards = actions.iter().map(|a| table[u].get(a).copied().unwrap_or(0.0)).collect();
            Episode { actions, rewards }
        })
        .collect()
}

/// Our four loops, one round: (train steps/s, rollout episodes/s, classifier updates/s,
/// Δr evaluations/s).
struct Ours {
    items: Domain,
    table: Vec<HashMap<i64, f32>>,
    batches: Vec<Vec<Episode>>,
    clf_batches: Vec<(Vec<Episode>, Vec<Episode>)>,
    block: (Tensor, Tensor),
    /// The classifier batches and the block as given states (an untrained Q-network's LSTM, H =
    /// 128), for the classifiers on states: [(sim states, sim actions), (real …)] and the block's.
    given: Given,
}

/// What `delta_r_estimator: state_classifiers` is given: the Q-network's states `B × (T+1) × H`
/// and the actions of each batch, computed once outside the timed loops (the reference's s, a,
/// s′ are given tensors too).
struct Given {
    batches: Vec<[(Tensor, Tensor); 2]>,
    block: (Tensor, Tensor),
}

impl Ours {
    fn new() -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let t0 = Instant::now();
        let (table, n) = ratings(&mut rng);
        eprintln!(
            "irs bench: {n} ratings of {USERS} users over {N_ITEMS} items in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        let v: Vec<f32> = (0..N_ITEMS as i64 * DIM).map(|_| normal(&mut rng) as f32 / (DIM as f32).sqrt()).collect();
        let items = Domain::raw(Tensor::from_slice(&v).view([N_ITEMS as i64, DIM]), Side::Sim);
        let batches = (0..16).map(|_| episodes(&mut rng, &table, B)).collect();
        let clf_batches: Vec<(Vec<Episode>, Vec<Episode>)> =
            (0..64).map(|_| (episodes(&mut rng, &table, 256 / T), episodes(&mut rng, &table, 256 / T))).collect();
        let block = batch_tensors(&episodes(&mut rng, &table, B), tch::Device::Cpu);
        let qvs = nn::VarStore::new(tch::Device::Cpu);
        let q = QNet::new(&qvs.root(), DIM, 128, ItemBias::default());
        let states = |eps: &[Episode]| {
            let (a, r) = batch_tensors(eps, tch::Device::Cpu);
            (tch::no_grad(|| q.states(&items.items, &a, &r)), a)
        };
        let given = Given {
            batches: clf_batches.iter().map(|(s, r)| [states(s), states(r)]).collect(),
            block: (tch::no_grad(|| q.states(&items.items, &block.0, &block.1)), block.0.shallow_clone()),
        };
        Self { items, table, batches, clf_batches, block, given }
    }

    /// `n` ε-greedy rollouts of B random users × T steps against the replay of `self.table`, the
    /// k-th with exploration stream k.
    fn rollouts(&self, net: &QNet, n: usize, rng: &mut ChaCha8Rng) {
        let reward = |u: usize, a: i64| self.table[u].get(&a).copied().unwrap_or(0.0);
        let env = Replay::new(USERS, &reward);
        for k in 0..n {
            let users: Vec<usize> = (0..B).map(|_| rng.random_range(0..USERS)).collect();
            let mut r = ChaCha8Rng::seed_from_u64(k as u64);
            std::hint::black_box(rollout(net, &self.items, &env, &users, T, 0.1, &mut r, 0));
        }
    }

    fn round(&self) -> [f64; 6] {
        let cpu = tch::Device::Cpu;
        // DQN: warm-up 20 steps, 200 timed (the reference's counts).
        let (vs, mut tvs) = (nn::VarStore::new(cpu), nn::VarStore::new(cpu));
        let net = QNet::new(&vs.root(), DIM, 128, ItemBias::default());
        let target = QNet::new(&tvs.root(), DIM, 128, ItemBias::default());
        tvs.copy(&vs).unwrap();
        let mut opt = nn::Adam::default().build(&vs, 1e-3).unwrap();
        let rule = TdRule { gamma: 0.9, bootstrap: Bootstrap::Max, conservative: 0.0 };
        let mut step = 0usize;
        let mut train = |n: usize| {
            for _ in 0..n {
                let loss = td_loss(&net, &target, &self.items, &self.batches[step % 16], rule, None, None);
                opt.backward_step_clip_norm(&loss, 10.0);
                step += 1;
                if step.is_multiple_of(100) {
                    tvs.copy(&vs).unwrap();
                }
            }
        };
        train(20);
        let t0 = Instant::now();
        train(200);
        let train_rate = 200.0 / t0.elapsed().as_secs_f64();

        let mut rng = ChaCha8Rng::seed_from_u64(1);
        self.rollouts(&net, 3, &mut rng);
        let t0 = Instant::now();
        self.rollouts(&net, 30, &mut rng);
        let rollout_rate = 30.0 * B as f64 / t0.elapsed().as_secs_f64();

        let (clf_rate, dr_rate) = self.history_classifiers(1000);
        let (state_clf_rate, state_dr_rate) = self.state_classifiers(1000);
        [train_rate, rollout_rate, clf_rate, dr_rate, state_clf_rate, state_dr_rate]
    }

    /// The default classifiers (their own LSTM encoder of the history): updates/s over `n`
    /// updates after 50, then Δr evaluations/s over `n` after 20.
    fn history_classifiers(&self, n: usize) -> (f64, f64) {
        let cvs = nn::VarStore::new(tch::Device::Cpu);
        let clf = DynClf::new(&cvs.root(), DIM, 32, 0);
        let mut copt = nn::Adam::default().build(&cvs, 3e-4).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut k = 0usize;
        let update = |n: usize| {
            for _ in 0..n {
                let (s, r) = &self.clf_batches[k % self.clf_batches.len()];
                let (loss, _, _) = clf.loss((&self.items.items, s), (&self.items.items, r), 1.0, &mut rng);
                copt.backward_step(&loss);
                k += 1;
            }
        };
        let clf_rate = rate(update, 50, n);
        let (a, r) = &self.block;
        let eval = |n: usize| {
            for _ in 0..n {
                let _ = std::hint::black_box(clf.delta_r(&self.items.items, a, r));
            }
        };
        (clf_rate, rate(eval, 20, n))
    }

    /// The classifiers on given states (`delta_r_estimator: state_classifiers`): updates/s and
    /// Δr evaluations/s, as [`Ours::history_classifiers`] times them.
    fn state_classifiers(&self, n: usize) -> (f64, f64) {
        let cvs = nn::VarStore::new(tch::Device::Cpu);
        let clf = StateClf::new(&cvs.root(), 128, DIM, 32);
        let mut copt = nn::Adam::default().build(&cvs, 3e-4).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let items = &self.items.items;
        let mut k = 0usize;
        let update = |n: usize| {
            for _ in 0..n {
                let [(ss, sa), (rs, ra)] = &self.given.batches[k % self.given.batches.len()];
                let sim = Transitions { states: ss, actions: sa, items };
                let real = Transitions { states: rs, actions: ra, items };
                let (loss, _, _) = clf.loss(&sim, &real, 1.0, &mut rng);
                copt.backward_step(&loss);
                k += 1;
            }
        };
        let clf_rate = rate(update, 50, n);
        let (s, a) = &self.given.block;
        let block = Transitions { states: s, actions: a, items };
        let eval = |n: usize| {
            for _ in 0..n {
                let _ = std::hint::black_box(clf.delta_r(&block));
            }
        };
        (clf_rate, rate(eval, 20, n))
    }
}

/// Units of work per second of `work(n)` (which does n units) over `n` units, after `warm` units.
fn rate(mut work: impl FnMut(usize), warm: usize, n: usize) -> f64 {
    work(warm);
    let t0 = Instant::now();
    work(n);
    n as f64 / t0.elapsed().as_secs_f64()
}

/// `S2R_BENCH_PROFILE=rollout`: only the rollout, 3,000 batches (~1.5 min), for a profiler
/// attached to the process (`perf record -g -p PID`).
fn profile_rollout(ours: &Ours) {
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let net = QNet::new(&vs.root(), DIM, 128, ItemBias::default());
    let t0 = Instant::now();
    ours.rollouts(&net, 3000, &mut ChaCha8Rng::seed_from_u64(1));
    println!("rollout: {:.0} episodes/s", 3000.0 * B as f64 / t0.elapsed().as_secs_f64());
}

/// `S2R_BENCH_PROFILE=classifier`: only the classifier update and the Δr evaluation (10,000 each
/// at 1 thread), for a profiler attached to the process.
fn profile_classifier(ours: &Ours) {
    let (u, d) = ours.history_classifiers(10_000);
    println!("classifier update: {u:.0} updates/s\nΔr evaluation: {d:.0} evaluations/s");
}

/// One round of the reference scripts at `threads`: the same four rates, from their JSON.
fn reference(py: &str, dir: &std::path::Path, threads: usize) -> Result<[f64; 4], String> {
    let run = |script: &str| -> Result<serde_json::Value, String> {
        let out = Command::new(py)
            .arg(dir.join(script))
            .args(["--threads", &threads.to_string(), "--repeats", "1"])
            .output()
            .map_err(|e| format!("{py}: {e}"))?;
        if !out.status.success() {
            return Err(format!("{script}: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let line = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(line.trim().lines().last().unwrap_or("")).map_err(|e| format!("{script}: {e}"))
    };
    let dqn = run("dqn_step.py")?;
    let darc = run("darc_classifier.py")?;
    let get = |v: &serde_json::Value, k: &str| v[k]["median"].as_f64().ok_or_else(|| format!("no {k} in {v}"));
    Ok([
        get(&dqn, "train_steps_per_s")?,
        get(&dqn, "rollout_episodes_per_s")?,
        get(&darc, "updates_per_s")?,
        get(&darc, "delta_r_evals_per_s")?,
    ])
}

fn main() {
    let rounds: usize = std::env::var("S2R_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let py = std::env::var("S2R_REF_PYTHON").ok().filter(|s| !s.is_empty());
    let dir = std::env::var_os("S2R_REF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/ref"));
    if py.is_none() {
        eprintln!("irs bench: S2R_REF_PYTHON is not set, so the reference scripts do not run (ours only)");
    }
    let ours = Ours::new();
    match std::env::var("S2R_BENCH_PROFILE").as_deref() {
        Ok("rollout") => {
            tch::set_num_threads(1);
            return profile_rollout(&ours);
        }
        Ok("states") => {
            tch::set_num_threads(1);
            for _ in 0..20 {
                let (u, d) = ours.state_classifiers(1000);
                println!("on given states: {u:.0} updates/s, {d:.0} Δr evaluations/s");
            }
            return;
        }
        Ok("classifier") => {
            tch::set_num_threads(1);
            return profile_classifier(&ours);
        }
        _ => {}
    }
    let names = [
        "DQN train step (B 64 × T 32, 1,000 items, D = H = 128), steps/s",
        "ε-greedy rollout (64 users × 32 steps, 750k ratings), episodes/s",
        "classifier update (256 + 256, σ = 1), updates/s",
        "Δr evaluation (64 × 32 block), evaluations/s",
        "classifier update on given states (256 + 256, σ = 1), updates/s",
        "Δr evaluation on given states (64 × 32 block), evaluations/s",
    ];
    // The reference's classifier rows stand beside both of ours: [train, rollout, clf, Δr, clf, Δr].
    let ref_of = [0usize, 1, 2, 3, 2, 3];
    println!("| loop | threads | ours: median (min–max) | PyTorch: median (min–max) | ours / PyTorch |");
    println!("|---|---:|---:|---:|---:|");
    for threads in [1usize, 2] {
        tch::set_num_threads(threads as i32);
        let mut rates: Vec<Rates> = (0..names.len()).map(|_| Rates::default()).collect();
        for r in 0..rounds {
            let o = ours.round();
            eprintln!("irs bench: threads {threads}, round {}: ours {o:.1?}", r + 1);
            for (x, v) in rates.iter_mut().zip(o) {
                x.ours.push(v);
            }
            if let Some(py) = &py {
                match reference(py, &dir, threads) {
                    Ok(v) => {
                        eprintln!("irs bench: threads {threads}, round {}: PyTorch {v:.1?}", r + 1);
                        for (x, &i) in rates.iter_mut().zip(&ref_of) {
                            x.reference.push(v[i]);
                        }
                    }
                    Err(e) => eprintln!("irs bench: the reference failed: {e}"),
                }
            }
        }
        for (name, x) in names.iter().zip(&rates) {
            let ratio = if x.reference.is_empty() {
                "—".to_string()
            } else {
                format!("{:.2}×", median(&x.ours) / median(&x.reference))
            };
            println!("| {name} | {threads} | {} | {} | {ratio} |", summary(&x.ours), summary(&x.reference));
        }
    }
}
