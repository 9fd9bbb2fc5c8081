//! Interactive recommendation with an LSTM-DQN (the `torch` feature): environments, the Q
//! network, ε-greedy batched collection, episode replay and greedy evaluation (design.md §6).
//!
//! State: an LSTM over x_t = [e_{a_t}, r_t], h_0 = 0. Q(s, a) = ⟨g(s), W e_a⟩ + b over every item
//! of the active domain, already-recommended items masked. DQN with whole-episode replay (the LSTM
//! is unrolled over sampled episodes), a target network with double-DQN targets, Huber loss,
//! γ = 0.9. Item vectors are scaled to unit mean norm per domain.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::nn::{self, Module, OptimizerConfig, RNN};
use tch::{Kind, Tensor};

use crate::error::StageError;

/// The Q network.
pub struct QNet {
    lstm: nn::LSTM,
    g: nn::Linear,
    w: nn::Linear,
    b: Tensor,
}

impl QNet {
    /// Layers under `p` for item vectors of width `d` and an LSTM of width `hidden`.
    pub fn new(p: &nn::Path, d: i64, hidden: i64) -> Self {
        Self {
            lstm: nn::lstm(p / "lstm", d + 1, hidden, Default::default()),
            g: nn::linear(p / "g", hidden, d, Default::default()),
            w: nn::linear(p / "w", d, d, nn::LinearConfig { bias: false, ..Default::default() }),
            b: p.zeros("b", &[1]),
        }
    }

    /// Q of every item for states `h` (`… × hidden`) → `… × n_items`.
    pub fn q(&self, h: &Tensor, items: &Tensor) -> Tensor {
        self.g.forward(h).matmul(&self.w.forward(items).tr()) + &self.b
    }

    /// States before each step of a batch of episodes: `[s_0 = 0, h_1 … h_T]` (`B × (T+1) × H`).
    pub fn states(&self, items: &Tensor, actions: &Tensor, rewards: &Tensor) -> Tensor {
        let e = items.index_select(0, &actions.view([-1])).view([actions.size()[0], actions.size()[1], -1]);
        let x = Tensor::cat(&[e, rewards.unsqueeze(-1)], 2);
        let (out, _) = self.lstm.seq(&x);
        let zero = out.zeros_like().narrow(1, 0, 1);
        Tensor::cat(&[zero, out], 1)
    }
}

/// A batch of episodes: actions and rewards, `B × T`.
#[derive(Debug, Clone)]
pub struct Episode {
    /// Item indices into the domain's pool.
    pub actions: Vec<i64>,
    /// Rewards.
    pub rewards: Vec<f32>,
}

/// A domain's items as the policy sees them.
pub struct Domain {
    /// `n_items × D`.
    pub items: Tensor,
    /// Number of items.
    pub n_items: i64,
}

/// Cumulative masks of recommended items: `B × T × n` with true where a_0..a_t were recommended.
fn cumulative_mask(actions: &Tensor, n: i64) -> Tensor {
    let one_hot = actions.one_hot(n).to_kind(Kind::Float); // B × T × n
    one_hot.cumsum(1, Kind::Float).gt(0.0)
}

/// Huber TD loss of `episodes` in `dom` (γ-discounted, masked max over unrecommended items).
pub fn td_loss(net: &QNet, target: &QNet, dom: &Domain, eps: &[Episode], gamma: f64) -> Tensor {
    let dev = dom.items.device();
    let t = eps[0].actions.len() as i64;
    let b = eps.len() as i64;
    let actions =
        Tensor::from_slice(&eps.iter().flat_map(|e| e.actions.clone()).collect::<Vec<_>>()).view([b, t]).to_device(dev);
    let rewards =
        Tensor::from_slice(&eps.iter().flat_map(|e| e.rewards.clone()).collect::<Vec<_>>()).view([b, t]).to_device(dev);
    let s = net.states(&dom.items, &actions, &rewards); // B × (T+1) × H
    let q = net.q(&s.narrow(1, 0, t), &dom.items); // B × T × n
    let q_sa = q.gather(2, &actions.unsqueeze(-1), false).squeeze_dim(-1);
    let next = tch::no_grad(|| {
        // Double DQN: the online network picks a* among the items not yet recommended, the target
        // network values it. A plain max over hundreds of never-seen real items overestimated
        // badly on the real-log batches (TD loss spikes of 10³).
        let mask = cumulative_mask(&actions, dom.n_items);
        let online_next = net.q(&s.narrow(1, 1, t).detach(), &dom.items).masked_fill(&mask, f64::NEG_INFINITY);
        let a_star = online_next.argmax(2, true);
        let st = target.states(&dom.items, &actions, &rewards);
        let qn = target.q(&st.narrow(1, 1, t), &dom.items); // Q_target(s_{t+1}, ·)
        let best = qn.gather(2, &a_star, false).squeeze_dim(-1);
        // The last step is terminal; a pool exhausted by the session has no next action.
        let exhausted = online_next.amax(&[2i64][..], false).isinf();
        let best = best.masked_fill(&exhausted, 0.0);
        let terminal =
            Tensor::ones([b, t], (Kind::Float, dev)).index_fill(1, &Tensor::from_slice(&[t - 1]).to_device(dev), 0.0);
        &rewards + best * terminal * gamma
    });
    q_sa.huber_loss(&next, tch::Reduction::Mean, 1.0)
}

/// Runs `users.len()` sessions of length `t` at once: ε-greedy over `dom`'s items (no repeats),
/// rewards from `reward(user_index, item) `.
pub fn rollout(
    net: &QNet,
    dom: &Domain,
    users: &[usize],
    t: usize,
    epsilon: f64,
    rng: &mut ChaCha8Rng,
    reward: &dyn Fn(usize, i64) -> f32,
) -> Vec<Episode> {
    let dev = dom.items.device();
    let b = users.len() as i64;
    let mut state = net.lstm.zero_state(b);
    let mut h = Tensor::zeros([b, net.lstm_hidden()], (Kind::Float, dev));
    let mut mask = Tensor::zeros([b, dom.n_items], (Kind::Bool, dev));
    let mut eps: Vec<Episode> =
        users.iter().map(|_| Episode { actions: Vec::with_capacity(t), rewards: Vec::with_capacity(t) }).collect();
    tch::no_grad(|| {
        for _ in 0..t.min(dom.n_items as usize) {
            let q = net.q(&h, &dom.items).masked_fill(&mask, f64::NEG_INFINITY);
            let greedy: Vec<i64> =
                Vec::<i64>::try_from(&q.argmax(1, false).to_device(tch::Device::Cpu)).expect("int tensor");
            let taken = Vec::<bool>::try_from(&mask.to_device(tch::Device::Cpu).view([-1])).expect("bool tensor");
            let mut acts = Vec::with_capacity(users.len());
            let mut rews = Vec::with_capacity(users.len());
            for (i, &u) in users.iter().enumerate() {
                let a = if epsilon > 0.0 && rng.random::<f64>() < epsilon {
                    loop {
                        let a = rng.random_range(0..dom.n_items);
                        if !taken[i * dom.n_items as usize + a as usize] {
                            break a;
                        }
                    }
                } else {
                    greedy[i]
                };
                let r = reward(u, a);
                eps[i].actions.push(a);
                eps[i].rewards.push(r);
                acts.push(a);
                rews.push(r);
            }
            let a = Tensor::from_slice(&acts).to_device(dev);
            let _ = mask.index_put_(
                &[Some(Tensor::arange(b, (Kind::Int64, dev))), Some(a.shallow_clone())],
                &Tensor::from(true).to_device(dev),
                false,
            );
            let x = Tensor::cat(
                &[dom.items.index_select(0, &a), Tensor::from_slice(&rews).to_device(dev).unsqueeze(-1)],
                1,
            );
            state = net.lstm.step(&x, &state);
            h = state.h().squeeze_dim(0);
        }
    });
    eps
}

impl Domain {
    /// Item vectors (`n × D`) scaled to unit mean norm: MF vectors VΣ^½ of the two domains come
    /// from different matrices and differ in scale by an order of magnitude; unscaled, the
    /// bilinear Q values (and the TD loss) blew up at D = 128.
    pub fn new(items: Tensor) -> Self {
        let n = items.size()[0];
        let mean_norm = items.norm_scalaropt_dim(2, &[1i64][..], false).mean(Kind::Float).double_value(&[]);
        let items = if mean_norm > 0.0 { items / mean_norm } else { items };
        Self { items, n_items: n }
    }
}

impl QNet {
    fn lstm_hidden(&self) -> i64 {
        self.g.ws.size()[1]
    }
}

/// DQN training options.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Iterations (one gradient step each).
    pub iterations: usize,
    /// Episodes per batch.
    pub batch: usize,
    /// Session length T.
    pub session_len: usize,
    /// Discount.
    pub gamma: f64,
    /// Adam learning rate.
    pub lr: f64,
    /// Copy the online network to the target every this many iterations.
    pub target_every: usize,
    /// A batch of real logged episodes every this many iterations (0 = never).
    pub k_interval: usize,
    /// LSTM width.
    pub hidden: i64,
    /// Seed.
    pub seed: u64,
}

/// One row of the training curves.
#[derive(Debug, Clone, Copy)]
pub struct CurveRow {
    /// Iteration.
    pub iteration: usize,
    /// TD loss.
    pub td_loss: f64,
    /// Mean reward per step of the sim episodes collected.
    pub sim_reward: f64,
    /// ε used.
    pub epsilon: f64,
}

/// Trains a DQN on simulated users (`sim_reward`) over `sim`, plus logged `real_logs` over `real`
/// every `k_interval` iterations. Returns the online network's store and the curves.
pub fn train(
    sim: &Domain,
    n_sim_users: usize,
    sim_reward: &dyn Fn(usize, i64) -> f32,
    real: Option<(&Domain, &[Episode])>,
    o: &TrainOptions,
    device: tch::Device,
) -> Result<(nn::VarStore, Vec<CurveRow>), StageError> {
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let d = sim.items.size()[1];
    let vs = nn::VarStore::new(device);
    let mut tvs = nn::VarStore::new(device);
    let (net, target) =
        crate::torch::seeded(o.seed, || (QNet::new(&vs.root(), d, o.hidden), QNet::new(&tvs.root(), d, o.hidden)));
    tvs.copy(&vs).map_err(|e| StageError::Failed(e.to_string()))?;
    let mut opt = nn::Adam::default().build(&vs, o.lr).map_err(|e| StageError::Failed(e.to_string()))?;
    let mut replay: Vec<Episode> = Vec::new();
    let cap = 20_000;
    let mut curves = Vec::with_capacity(o.iterations);
    for it in 0..o.iterations {
        let epsilon = (1.0 - it as f64 / (0.5 * o.iterations as f64).max(1.0)).max(0.05);
        let users: Vec<usize> = (0..o.batch).map(|_| rng.random_range(0..n_sim_users)).collect();
        let fresh = rollout(&net, sim, &users, o.session_len, epsilon, &mut rng, sim_reward);
        let sim_r = fresh
            .iter()
            .map(|e| e.rewards.iter().map(|&r| f64::from(r)).sum::<f64>() / e.rewards.len() as f64)
            .sum::<f64>()
            / fresh.len() as f64;
        for e in fresh {
            if replay.len() < cap {
                replay.push(e);
            } else {
                let i = rng.random_range(0..cap);
                replay[i] = e;
            }
        }
        let use_real =
            o.k_interval > 0 && it % o.k_interval == o.k_interval - 1 && real.is_some_and(|(_, l)| !l.is_empty());
        let loss = if use_real {
            let (dom, logs) = real.expect("checked");
            let batch: Vec<Episode> = (0..o.batch).map(|_| logs[rng.random_range(0..logs.len())].clone()).collect();
            td_loss(&net, &target, dom, &batch, o.gamma)
        } else {
            let batch: Vec<Episode> = (0..o.batch).map(|_| replay[rng.random_range(0..replay.len())].clone()).collect();
            td_loss(&net, &target, sim, &batch, o.gamma)
        };
        let l = loss.double_value(&[]);
        if !l.is_finite() {
            return Err(StageError::NonFinite { loss: "TD loss".into(), iteration: it });
        }
        opt.backward_step_clip_norm(&loss, 10.0);
        if (it + 1) % o.target_every.max(1) == 0 {
            tvs.copy(&vs).map_err(|e| StageError::Failed(e.to_string()))?;
        }
        curves.push(CurveRow { iteration: it, td_loss: l, sim_reward: sim_r, epsilon });
    }
    Ok((vs, curves))
}

/// Greedy sessions where each user's rewards come from `reward(user_index, item)`.
pub fn greedy_with_feedback(
    net_vs: &nn::VarStore,
    dom: &Domain,
    users: &[usize],
    t: usize,
    hidden: i64,
    reward: &dyn Fn(usize, i64) -> f32,
) -> Vec<Vec<i64>> {
    let d = dom.items.size()[1];
    let mut vs = nn::VarStore::new(dom.items.device());
    let net = QNet::new(&vs.root(), d, hidden);
    vs.copy(net_vs).expect("same architecture");
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    rollout(&net, dom, users, t, 0.0, &mut rng, reward).into_iter().map(|e| e.actions).collect()
}

fn table(inputs: &crate::Inputs, name: &str) -> Result<arrow::record_batch::RecordBatch, StageError> {
    Ok(inputs.table(name)?.clone())
}

fn vectors_tensor(inputs: &crate::Inputs, name: &str, device: tch::Device) -> Result<(Vec<u32>, Domain), StageError> {
    let (ids, flat, d) = crate::table::read_vectors(&table(inputs, name)?, name)?;
    let n = ids.len() as i64;
    let items = Tensor::from_slice(&flat).view([n, d as i64]).to_device(device);
    Ok((ids, Domain::new(items)))
}

/// `irs.train`.
pub fn run_train(
    ctx: &crate::Context,
    inputs: &crate::Inputs,
    p: &crate::kinds::irs_train::TrainParams,
) -> Result<crate::Outputs, StageError> {
    use std::collections::HashMap;
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray, UInt32Array};

    use crate::ratings::Ratings;
    use crate::Artifact;

    let device = crate::torch::tch_device(ctx.device());
    let (sim_ids, sim) = vectors_tensor(inputs, "sim_item_vecs", device)?;
    let (real_ids, real) = vectors_tensor(inputs, "real_item_vecs", device)?;
    let sim_r = Ratings::from_batch(inputs.table("sim")?, "sim")?;
    let real_r = Ratings::from_batch(inputs.table("real_train")?, "real_train")?;
    let observed = sim_r.rating.iter().chain(&real_r.rating).copied().fold(0.0f32, f32::max);
    let y_max = p.rating_max.unwrap_or(if observed <= 5.0 { 5.0 } else { 10.0 });
    // Simulated users: every user with sim ratings replays them (unrated → 0).
    let sim_index: HashMap<u32, i64> = sim_ids.iter().enumerate().map(|(i, &x)| (x, i as i64)).collect();
    let mut users: Vec<u32> = sim_r.user.clone();
    users.sort_unstable();
    users.dedup();
    let uidx: HashMap<u32, usize> = users.iter().enumerate().map(|(i, &u)| (u, i)).collect();
    let mut rewards: Vec<HashMap<i64, f32>> = vec![HashMap::new(); users.len()];
    for k in 0..sim_r.len() {
        if let Some(&i) = sim_index.get(&sim_r.item[k]) {
            rewards[uidx[&sim_r.user[k]]].insert(i, sim_r.rating[k] / y_max);
        }
    }
    if users.is_empty() {
        return Err(StageError::Data("no simulated users: `sim` has no rating of an item with a vector".into()));
    }
    // Real logs: each shared user's real ratings in time order, cut into sessions of ≤ T.
    let real_index: HashMap<u32, i64> = real_ids.iter().enumerate().map(|(i, &x)| (x, i as i64)).collect();
    let mut by_user: std::collections::BTreeMap<u32, Vec<(i64, i64, f32)>> = Default::default();
    for k in 0..real_r.len() {
        if let Some(&i) = real_index.get(&real_r.item[k]) {
            by_user.entry(real_r.user[k]).or_default().push((real_r.ts[k], i, real_r.rating[k] / y_max));
        }
    }
    let mut logs = Vec::new();
    for (_, mut v) in by_user {
        v.sort_by_key(|x| x.0);
        for chunk in v.chunks(p.session_len) {
            if chunk.len() == p.session_len {
                logs.push(Episode {
                    actions: chunk.iter().map(|x| x.1).collect(),
                    rewards: chunk.iter().map(|x| x.2).collect(),
                });
            }
        }
    }
    let opts = TrainOptions {
        iterations: p.iterations,
        batch: p.batch,
        session_len: p.session_len,
        gamma: p.gamma,
        lr: p.lr,
        target_every: p.target_every,
        k_interval: p.k_interval,
        hidden: p.hidden,
        seed: p.seed,
    };
    ctx.progress(0.0, "training");
    let reward = |u: usize, a: i64| rewards[u].get(&a).copied().unwrap_or(0.0);
    let (vs, curves) = train(&sim, users.len(), &reward, Some((&real, &logs)), &opts, device)?;
    ctx.check_cancelled()?;
    let f = |k: fn(&CurveRow) -> f64| Arc::new(Float64Array::from(curves.iter().map(k).collect::<Vec<_>>()));
    let curves_t = crate::table::batch(vec![
        ("iteration", Arc::new(UInt32Array::from(curves.iter().map(|c| c.iteration as u32).collect::<Vec<_>>()))),
        ("td_loss", f(|c| c.td_loss)),
        ("sim_reward", f(|c| c.sim_reward)),
        ("epsilon", f(|c| c.epsilon)),
    ])?;
    let d = sim.items.size()[1] as f64;
    let model = [
        ("hidden", p.hidden as f64),
        ("dim", d),
        ("session_len", p.session_len as f64),
        ("rating_max", f64::from(y_max)),
        ("real_sessions", logs.len() as f64),
    ];
    let model = crate::table::batch(vec![
        ("key", Arc::new(StringArray::from(model.iter().map(|m| m.0).collect::<Vec<_>>()))),
        ("value", Arc::new(Float64Array::from(model.iter().map(|m| m.1).collect::<Vec<_>>()))),
    ])?;
    Ok(crate::Outputs::from([
        ("weights".into(), Artifact::Weights(crate::torch::weights_bytes(&vs, ctx.scratch())?)),
        ("model".into(), Artifact::Table(model)),
        ("curves".into(), Artifact::Table(curves_t)),
    ]))
}

/// `irs.eval`.
pub fn run_eval(
    ctx: &crate::Context,
    inputs: &crate::Inputs,
    p: &crate::kinds::irs_train::EvalParams,
) -> Result<crate::Outputs, StageError> {
    use std::collections::{BTreeMap, HashMap};

    use crate::metrics::{session, Rule};
    use crate::ratings::Ratings;
    use crate::table::{column, f64_column};

    let device = crate::torch::tch_device(ctx.device());
    let (ids, real) = vectors_tensor(inputs, "real_item_vecs", device)?;
    let model = inputs.table("model")?;
    let keys = column::<arrow::array::StringArray>(model, "model", "key")?;
    let vals = f64_column(model, "model", "value")?;
    let get = |k: &str| {
        (0..model.num_rows())
            .find(|&i| keys.value(i) == k)
            .map(|i| vals[i])
            .ok_or_else(|| StageError::Input(format!("model has no `{k}`")))
    };
    let (hidden, t, y_max) = (get("hidden")? as i64, get("session_len")? as usize, get("rating_max")? as f32);
    let mut vs = nn::VarStore::new(device);
    let _net = QNet::new(&vs.root(), real.items.size()[1], hidden);
    let crate::Artifact::Weights(w) = inputs.one("weights")? else {
        return Err(StageError::Input("`weights` must be a weights artifact".into()));
    };
    crate::torch::load_weights(&mut vs, w, ctx.scratch())?;
    let test = Ratings::from_batch(inputs.table("test")?, "test")?;
    let mut by_user: BTreeMap<u32, HashMap<u32, f32>> = BTreeMap::new();
    for k in 0..test.len() {
        by_user.entry(test.user[k]).or_default().insert(test.item[k], test.rating[k]);
    }
    let users: Vec<u32> = by_user.keys().copied().collect();
    let idx: Vec<usize> = (0..users.len()).collect();
    let reward = |u: usize, a: i64| by_user[&users[u]].get(&ids[a as usize]).map_or(0.0, |y| y / y_max);
    let sessions = greedy_with_feedback(&vs, &real, &idx, t, hidden, &reward);
    let mut rule = Rule::for_scale(y_max);
    if let Some(r) = p.relevant_above {
        rule.relevant_above = r;
    }
    let rows: Vec<(u32, crate::metrics::SessionMetrics)> = sessions
        .iter()
        .zip(&users)
        .map(|(s, u)| (*u, session(&s.iter().map(|&a| ids[a as usize]).collect::<Vec<_>>(), &by_user[u], rule, t)))
        .collect();
    crate::kinds::eval_static::metric_tables(&p.method, &rows)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::kinds::data_split::split;
    use crate::kinds::embed_svd::factorize;
    use crate::metrics::{session, summarize, Rule};
    use crate::ratings::{Items, Ratings};
    use crate::stage::{Context, Stage};
    use crate::{Artifact, Inputs};

    fn tensor(v: &[f64], d: usize) -> Tensor {
        Tensor::from_slice(&v.iter().map(|&x| x as f32).collect::<Vec<_>>()).view([-1, d as i64])
    }

    #[test]
    fn dqn_r_learns_on_ml_latest_small_and_beats_random() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context::for_tests(dir.path());
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/ml-latest-small");
        let o = crate::kinds::data_movielens::MovieLens
            .run(&ctx, &Inputs::default(), &serde_json::json!({"path": data}))
            .unwrap();
        let t = |n: &str| match &o[n] {
            Artifact::Table(t) => t.clone(),
            Artifact::Weights(_) => unreachable!(),
        };
        let ratings = Ratings::from_batch(&t("ratings"), "r").unwrap();
        let items = Items::from_batch(&t("items"), "i").unwrap();
        let s = split(&ratings, &items, &serde_json::json!({"sim": "Adventure", "real": "Crime", "seed": 7})).unwrap();
        let fs = factorize(&s.sim, &s.sim_items, 32, 10, 3, 1);
        let fr = factorize(&s.real_train, &s.real_items, 32, 10, 3, 2);
        let sim = Domain::new(tensor(&fs.item_vecs, 32));
        let real = Domain::new(tensor(&fr.item_vecs, 32));
        let mut sim_r: Vec<HashMap<i64, f32>> = vec![HashMap::new(); fs.users.len()];
        for k in 0..s.sim.len() {
            let u = fs.users.binary_search(&s.sim.user[k]).unwrap();
            let i = fs.items.binary_search(&s.sim.item[k]).unwrap() as i64;
            sim_r[u].insert(i, s.sim.rating[k] / 5.0);
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
            seed: 3,
        };
        let (vs, curves) = train(
            &sim,
            fs.users.len(),
            &|u, a| sim_r[u].get(&a).copied().unwrap_or(0.0),
            None,
            &opts,
            tch::Device::Cpu,
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
        let reward = |u: usize, a: i64| test[&users[u]].get(&fr.items[a as usize]).map_or(0.0, |y| y / 5.0);
        let sessions = greedy_with_feedback(&vs, &real, &idx, 32, 64, &reward);
        let rule = Rule::for_scale(5.0);
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
        eprintln!(
            "sim reward {early:.3} → {late:.3}; test reward DQN-R {:.4} vs random {:.4}",
            dqn.reward, random.reward
        );
        assert!(late > early + 0.05, "it learned in the simulator: {early} → {late}");
        assert!(dqn.reward > 2.0 * random.reward, "DQN-R {} vs random {}", dqn.reward, random.reward);
        // Bit-deterministic on CPU for a fixed seed and thread count.
        let (_, again) = train(
            &sim,
            fs.users.len(),
            &|u, a| sim_r[u].get(&a).copied().unwrap_or(0.0),
            None,
            &TrainOptions { iterations: 20, ..opts.clone() },
            tch::Device::Cpu,
        )
        .unwrap();
        let (_, again2) = train(
            &sim,
            fs.users.len(),
            &|u, a| sim_r[u].get(&a).copied().unwrap_or(0.0),
            None,
            &TrainOptions { iterations: 20, ..opts },
            tch::Device::Cpu,
        )
        .unwrap();
        assert!(again.iter().zip(&again2).all(|(a, b)| a.td_loss.to_bits() == b.td_loss.to_bits()));
    }
}
