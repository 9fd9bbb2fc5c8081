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
use crate::torch::finite;

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
/// `bonus` (`B × T`, e.g. α·Δr) is added to the rewards of the TD target only: the LSTM still
/// sees the observed rewards.
pub fn td_loss(net: &QNet, target: &QNet, dom: &Domain, eps: &[Episode], gamma: f64, bonus: Option<&Tensor>) -> Tensor {
    let dev = dom.items.device();
    let t = eps[0].actions.len() as i64;
    let b = eps.len() as i64;
    let (actions, rewards) = crate::dynamics::batch_tensors(eps, dev);
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
        let r = match bonus {
            Some(x) => &rewards + x,
            None => rewards.shallow_clone(),
        };
        r + best * terminal * gamma
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
    /// Dynamics adaptation (Δr), when the method has it.
    pub delta_r: Option<DeltaROptions>,
}

/// Dynamics-adaptation options (see `dynamics.rs`).
#[derive(Debug, Clone)]
pub struct DeltaROptions {
    /// r̃ = r + α·Δr.
    pub alpha: f64,
    /// Iterations before Δr is applied (the classifiers train from the start).
    pub warmup: usize,
    /// Std of the Gaussian noise on the classifiers' inputs while training them.
    pub noise: f64,
    /// Classifier width.
    pub hidden: i64,
    /// Classifier learning rate.
    pub lr: f64,
    /// When set, the classifiers compare these sim *logged* sessions (sim users' own ratings in
    /// time order, every step rated) with the real logs, instead of sim rollouts (mostly unrated
    /// steps) — and Δr then applies to rated sim steps only (r > 0), the only kind both saw.
    pub sim_logs: Option<Vec<Episode>>,
}

/// Joint training (S2R-Rec): item maps initialised from DARec's, fine-tuned with the policy.
pub struct Joint {
    /// DARec's weights by name (`fvs.*`, `fvr.*`, `dv.*` are used).
    pub darec: Vec<(String, Tensor)>,
    /// Weight of the domain loss L_dom (through gradient reversal into the maps).
    pub dom_weight: f64,
}

/// One row of the training curves.
#[derive(Debug, Clone, Copy, Default)]
pub struct CurveRow {
    /// Iteration.
    pub iteration: usize,
    /// TD loss.
    pub td_loss: f64,
    /// Mean reward per step of the sim episodes collected.
    pub sim_reward: f64,
    /// ε used.
    pub epsilon: f64,
    /// Classifier loss (0 without Δr).
    pub clf_loss: f64,
    /// D_sa accuracy on the training batch (noisy inputs).
    pub acc_sa: f64,
    /// D_sas accuracy on the training batch.
    pub acc_sas: f64,
    /// Mean Δr on the sim batch (0 before the warm-up ends or without Δr).
    pub dr_mean: f64,
    /// Std of Δr on the sim batch.
    pub dr_std: f64,
    /// Domain loss of the item maps (joint training only).
    pub dom_loss: f64,
}

/// A trained policy.
pub struct Trained {
    /// The Q network (variables `lstm`, `g`, `w`, `b`).
    pub vs: nn::VarStore,
    /// Curves, one row per iteration.
    pub curves: Vec<CurveRow>,
    /// The real-domain item vectors the policy was trained with (after joint fine-tuning).
    pub real_items: Tensor,
}

/// Item vectors of the two domains: fixed, or mapped by trainable maps (joint training).
struct Items {
    sim: Tensor,
    real: Option<Tensor>,
    maps: Option<Maps>,
}

struct Maps {
    vs: nn::VarStore,
    fvs: nn::Linear,
    fvr: nn::Linear,
    dv: nn::Sequential,
    raw_sim: Tensor,
    raw_real: Tensor,
    scale_sim: f64,
    scale_real: f64,
}

impl Maps {
    fn new(j: &Joint, raw_sim: &Tensor, raw_real: &Tensor) -> Result<Self, StageError> {
        let d = raw_sim.size()[1];
        let by_name: std::collections::HashMap<&str, &Tensor> = j.darec.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let hidden = by_name.get("dv.l1.weight").map(|t| t.size()[0]).ok_or_else(|| {
            StageError::Input("`darec_weights` has no `dv.l1.weight` (not adapt.darec weights?)".into())
        })?;
        let vs = nn::VarStore::new(raw_sim.device());
        let fvs = nn::linear(vs.root() / "fvs", d, d, Default::default());
        let fvr = nn::linear(vs.root() / "fvr", d, d, Default::default());
        let dv = crate::darec::classifier(vs.root() / "dv", d, hidden);
        for (name, mut var) in vs.variables() {
            let src = by_name
                .get(name.as_str())
                .ok_or_else(|| StageError::Input(format!("`darec_weights` has no `{name}`")))?;
            if src.size() != var.size() {
                return Err(StageError::Input(format!(
                    "`darec_weights` `{name}` is {:?}, the maps need {:?} (same `dim` as the item vectors?)",
                    src.size(),
                    var.size()
                )));
            }
            tch::no_grad(|| var.copy_(&src.to_device(var.device())));
        }
        let norm = |t: Tensor| t.norm_scalaropt_dim(2, &[1i64][..], false).mean(Kind::Float).double_value(&[]);
        let (scale_sim, scale_real) = tch::no_grad(|| {
            (1.0 / norm(fvs.forward(raw_sim)).max(1e-12), 1.0 / norm(fvr.forward(raw_real)).max(1e-12))
        });
        Ok(Self {
            vs,
            fvs,
            fvr,
            dv,
            raw_sim: raw_sim.shallow_clone(),
            raw_real: raw_real.shallow_clone(),
            scale_sim,
            scale_real,
        })
    }

    /// L_dom: D_V on the mapped vectors behind a gradient reversal layer.
    fn dom_loss(&self, lambda: f64) -> Tensor {
        let s = self.dv.forward(&crate::darec::grl(&self.fvs.forward(&self.raw_sim), lambda));
        let r = self.dv.forward(&crate::darec::grl(&self.fvr.forward(&self.raw_real), lambda));
        let bce = |l: &Tensor, y: f64| {
            l.binary_cross_entropy_with_logits::<Tensor>(&l.full_like(y), None, None, tch::Reduction::Mean)
        };
        bce(&s, 0.0) + bce(&r, 1.0)
    }
}

impl Items {
    fn refresh(&mut self) {
        if let Some(m) = &self.maps {
            self.sim = m.fvs.forward(&m.raw_sim) * m.scale_sim;
            self.real = Some(m.fvr.forward(&m.raw_real) * m.scale_real);
        }
    }
}

fn failed(e: impl std::fmt::Display) -> StageError {
    StageError::Failed(e.to_string())
}

/// Trains a DQN on simulated users (`sim_reward`) over `sim`, plus logged `real_logs` over `real`
/// every `k_interval` iterations; with `o.delta_r`, the classifiers train on sim replay vs real
/// logs and sim rewards in the TD targets become r + α·Δr after the warm-up; with `joint`, `sim`
/// and `real` hold the raw vectors and DARec's maps are fine-tuned with L_rl + L_dom.
pub fn train(
    sim: &Domain,
    n_sim_users: usize,
    sim_reward: &dyn Fn(usize, i64) -> f32,
    real: Option<(&Domain, &[Episode])>,
    o: &TrainOptions,
    joint: Option<&Joint>,
    device: tch::Device,
) -> Result<Trained, StageError> {
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let d = sim.items.size()[1];
    let cpu = tch::Device::Cpu;
    let (mut vs, mut tvs, mut cvs) = (nn::VarStore::new(cpu), nn::VarStore::new(cpu), nn::VarStore::new(cpu));
    let (net, target, clf) = crate::torch::seeded(o.seed, || {
        (
            QNet::new(&vs.root(), d, o.hidden),
            QNet::new(&tvs.root(), d, o.hidden),
            o.delta_r.as_ref().map(|dr| crate::dynamics::DynClf::new(&cvs.root(), d, dr.hidden)),
        )
    });
    crate::torch::to_device(&mut [&mut vs, &mut tvs, &mut cvs], device);
    tvs.copy(&vs).map_err(failed)?;
    let mut opt = nn::Adam::default().build(&vs, o.lr).map_err(failed)?;
    let mut copt = match &o.delta_r {
        Some(dr) => Some(nn::Adam::default().build(&cvs, dr.lr).map_err(failed)?),
        None => None,
    };
    let logs: &[Episode] = real.map_or(&[], |r| r.1);
    if o.delta_r.is_some() && logs.is_empty() {
        return Err(StageError::Data(format!(
            "dynamics adaptation needs real logged sessions, and `real_train` has none of {} ratings",
            o.session_len
        )));
    }
    let mut items = Items { sim: sim.items.shallow_clone(), real: real.map(|r| r.0.items.shallow_clone()), maps: None };
    let mut mopt = None;
    if let Some(j) = joint {
        let r = real.ok_or_else(|| StageError::Input("joint training needs the real domain".into()))?;
        let m = Maps::new(j, &sim.items, &r.0.items)?;
        mopt = Some(nn::Adam::default().build(&m.vs, o.lr).map_err(failed)?);
        items.maps = Some(m);
    }
    let dom_weight = joint.map_or(0.0, |j| j.dom_weight);
    let n_sim = sim.n_items;
    let n_real = real.map_or(0, |r| r.0.n_items);
    let mut replay: Vec<Episode> = Vec::new();
    let cap = 20_000;
    let mut curves = Vec::with_capacity(o.iterations);
    for it in 0..o.iterations {
        items.refresh();
        let sim_dom = Domain { items: items.sim.shallow_clone(), n_items: n_sim };
        let epsilon = (1.0 - it as f64 / (0.5 * o.iterations as f64).max(1.0)).max(0.05);
        let users: Vec<usize> = (0..o.batch).map(|_| rng.random_range(0..n_sim_users)).collect();
        let fresh = rollout(&net, &sim_dom, &users, o.session_len, epsilon, &mut rng, sim_reward);
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
        let mut row = CurveRow { iteration: it, sim_reward: sim_r, epsilon, ..Default::default() };
        // The classifiers: sim replay (label 0) vs real logs (label 1), noisy inputs.
        if let (Some(clf), Some(copt), Some(dr)) = (&clf, copt.as_mut(), &o.delta_r) {
            let source: &[Episode] = dr.sim_logs.as_deref().unwrap_or(&replay);
            let bs: Vec<Episode> = (0..o.batch).map(|_| source[rng.random_range(0..source.len())].clone()).collect();
            let br: Vec<Episode> = (0..o.batch).map(|_| logs[rng.random_range(0..logs.len())].clone()).collect();
            let real_items = items.real.as_ref().expect("checked: real logs exist").detach();
            let (loss, acc_sa, acc_sas) = clf.loss((&items.sim.detach(), &bs), (&real_items, &br), dr.noise, &mut rng);
            row.clf_loss = finite(&loss, "classifier loss (D_sa + D_sas)", it)?;
            row.acc_sa = acc_sa;
            row.acc_sas = acc_sas;
            copt.backward_step(&loss);
        }
        let use_real = o.k_interval > 0 && it % o.k_interval == o.k_interval - 1 && !logs.is_empty();
        let loss = if use_real {
            let dom = Domain {
                items: items.real.as_ref().expect("logs need the real domain").shallow_clone(),
                n_items: n_real,
            };
            let batch: Vec<Episode> = (0..o.batch).map(|_| logs[rng.random_range(0..logs.len())].clone()).collect();
            td_loss(&net, &target, &dom, &batch, o.gamma, None)
        } else {
            let batch: Vec<Episode> = (0..o.batch).map(|_| replay[rng.random_range(0..replay.len())].clone()).collect();
            let bonus = match (&clf, &o.delta_r) {
                (Some(clf), Some(dr)) if it >= dr.warmup => {
                    let (a, r) = crate::dynamics::batch_tensors(&batch, device);
                    let mut delta = tch::no_grad(|| clf.logits(&items.sim.detach(), &a, &r, 0.0, &mut rng).delta_r());
                    if dr.sim_logs.is_some() {
                        delta *= r.gt(0.0).to_kind(Kind::Float);
                    }
                    row.dr_mean = finite(&delta.mean(Kind::Float), "Δr", it)?;
                    row.dr_std = delta.std(false).double_value(&[]);
                    Some(delta * dr.alpha)
                }
                _ => None,
            };
            td_loss(&net, &target, &sim_dom, &batch, o.gamma, bonus.as_ref())
        };
        row.td_loss = finite(&loss, "TD loss", it)?;
        match (&items.maps, mopt.as_mut()) {
            (Some(m), Some(mopt)) => {
                let lambda = crate::darec::dann_lambda(it as f64 / o.iterations.max(1) as f64);
                let dom = m.dom_loss(lambda);
                row.dom_loss = finite(&dom, "domain loss L_dom", it)?;
                let total = &loss + dom * dom_weight;
                opt.zero_grad();
                mopt.zero_grad();
                total.backward();
                opt.clip_grad_norm(10.0);
                mopt.clip_grad_norm(10.0);
                opt.step();
                mopt.step();
            }
            _ => opt.backward_step_clip_norm(&loss, 10.0),
        }
        if (it + 1) % o.target_every.max(1) == 0 {
            tvs.copy(&vs).map_err(failed)?;
        }
        curves.push(row);
    }
    items.refresh();
    let real_items = items.real.map_or_else(|| items.sim.zeros_like().narrow(0, 0, 0), |t| t.detach());
    Ok(Trained { vs, curves, real_items })
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

/// Item vectors of `name`: normalised to unit mean norm (`Domain::new`), or as stored (`raw`).
fn vectors_tensor(
    inputs: &crate::Inputs,
    name: &str,
    device: tch::Device,
    raw: bool,
) -> Result<(Vec<u32>, Domain), StageError> {
    let (ids, flat, d) = crate::table::read_vectors(&table(inputs, name)?, name)?;
    let n = ids.len() as i64;
    if n == 0 {
        return Err(StageError::Data(format!("`{name}` has no item vectors")));
    }
    let items = Tensor::from_slice(&flat).view([n, d as i64]).to_device(device);
    Ok((ids, if raw { Domain { items, n_items: n } } else { Domain::new(items) }))
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
    let joint = p.method == "s2r";
    if p.method == "oracle" && !inputs.has("truth") {
        return Err(StageError::Input(
            "method `oracle` exists only for synthetic worlds: bind `truth` to data.synth's `truth` and `sim` to \
             ratings made with the real dynamics"
                .into(),
        ));
    }
    let (sim_ids, sim) = vectors_tensor(inputs, "sim_item_vecs", device, joint)?;
    let (real_ids, real) = vectors_tensor(inputs, "real_item_vecs", device, joint)?;
    if sim.items.size()[1] != real.items.size()[1] {
        return Err(StageError::Input(format!(
            "`sim_item_vecs` have {} dimensions, `real_item_vecs` {}",
            sim.items.size()[1],
            real.items.size()[1]
        )));
    }
    let joint = if joint {
        let crate::Artifact::Weights(w) = inputs.one("darec_weights")? else {
            return Err(StageError::Input("`darec_weights` must be adapt.darec's weights".into()));
        };
        let path = ctx.scratch().join("darec.safetensors");
        std::fs::write(&path, w).map_err(|source| StageError::Io { path: path.clone(), source })?;
        let named = Tensor::read_safetensors(&path)
            .map_err(|e| StageError::Input(format!("cannot read `darec_weights`: {e}")))?;
        Some(Joint {
            darec: named.into_iter().map(|(n, t)| (n, t.to_device(device))).collect(),
            dom_weight: p.dom_weight,
        })
    } else {
        None
    };
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
    let sessions = |by_user: std::collections::BTreeMap<u32, Vec<(i64, i64, f32)>>| {
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
        logs
    };
    let logs = sessions(by_user);
    // The sim users' own logged sessions, for `clf_sim_data: logs`.
    let sim_logs = if p.clf_sim_data == "logs" {
        let mut by_user: std::collections::BTreeMap<u32, Vec<(i64, i64, f32)>> = Default::default();
        for k in 0..sim_r.len() {
            if let Some(&i) = sim_index.get(&sim_r.item[k]) {
                by_user.entry(sim_r.user[k]).or_default().push((sim_r.ts[k], i, sim_r.rating[k] / y_max));
            }
        }
        let l = sessions(by_user);
        if l.is_empty() {
            return Err(StageError::Data(format!(
                "`clf_sim_data: logs` needs sim users with ≥ {} ratings; `sim` has none",
                p.session_len
            )));
        }
        Some(l)
    } else {
        None
    };
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
        delta_r: p.has_delta_r().then_some(DeltaROptions {
            alpha: p.alpha,
            warmup: p.delta_r_warmup,
            noise: p.clf_noise,
            hidden: p.clf_hidden,
            lr: p.clf_lr,
            sim_logs,
        }),
    };
    ctx.progress(0.0, "training");
    let reward = |u: usize, a: i64| rewards[u].get(&a).copied().unwrap_or(0.0);
    let trained = train(&sim, users.len(), &reward, Some((&real, &logs)), &opts, joint.as_ref(), device)?;
    ctx.check_cancelled()?;
    let (vs, curves) = (&trained.vs, &trained.curves);
    let f = |k: fn(&CurveRow) -> f64| Arc::new(Float64Array::from(curves.iter().map(k).collect::<Vec<_>>()));
    let curves_t = crate::table::batch(vec![
        ("iteration", Arc::new(UInt32Array::from(curves.iter().map(|c| c.iteration as u32).collect::<Vec<_>>()))),
        ("td_loss", f(|c| c.td_loss)),
        ("sim_reward", f(|c| c.sim_reward)),
        ("epsilon", f(|c| c.epsilon)),
        ("clf_loss", f(|c| c.clf_loss)),
        ("acc_sa", f(|c| c.acc_sa)),
        ("acc_sas", f(|c| c.acc_sas)),
        ("dr_mean", f(|c| c.dr_mean)),
        ("dr_std", f(|c| c.dr_std)),
        ("dom_loss", f(|c| c.dom_loss)),
    ])?;
    let real_flat = Vec::<f32>::try_from(trained.real_items.to_device(tch::Device::Cpu).view([-1]))
        .map_err(|e| StageError::Failed(e.to_string()))?;
    let real_vecs = crate::table::vectors(real_ids.clone(), real_flat, trained.real_items.size()[1] as usize)?;
    let d = sim.items.size()[1] as f64;
    let model = [
        ("hidden", p.hidden as f64),
        ("dim", d),
        ("session_len", p.session_len as f64),
        ("rating_max", f64::from(y_max)),
        ("real_sessions", logs.len() as f64),
        ("alpha", if p.has_delta_r() { p.alpha } else { 0.0 }),
    ];
    let model = crate::table::batch(vec![
        ("key", Arc::new(StringArray::from(model.iter().map(|m| m.0).collect::<Vec<_>>()))),
        ("value", Arc::new(Float64Array::from(model.iter().map(|m| m.1).collect::<Vec<_>>()))),
    ])?;
    Ok(crate::Outputs::from([
        ("weights".into(), Artifact::Weights(crate::torch::weights_bytes(vs, ctx.scratch())?)),
        ("real_item_vecs".into(), Artifact::Table(real_vecs)),
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
    // irs.train's `real_item_vecs`: exactly the vectors the policy was trained with.
    let (ids, real) = vectors_tensor(inputs, "real_item_vecs", device, true)?;
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
            _ => unreachable!(),
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
            delta_r: None,
        };
        let Trained { vs, curves, .. } = train(
            &sim,
            fs.users.len(),
            &|u, a| sim_r[u].get(&a).copied().unwrap_or(0.0),
            None,
            &opts,
            None,
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
        let again = |o: &TrainOptions| {
            train(
                &sim,
                fs.users.len(),
                &|u, a| sim_r[u].get(&a).copied().unwrap_or(0.0),
                None,
                &TrainOptions { iterations: 20, ..o.clone() },
                None,
                tch::Device::Cpu,
            )
            .unwrap()
            .curves
        };
        let (a, b) = (again(&opts), again(&opts));
        assert!(a.iter().zip(&b).all(|(a, b)| a.td_loss.to_bits() == b.td_loss.to_bits()));
    }

    fn tiny_world() -> (Domain, Domain, Vec<Episode>) {
        let items = |n: i64, seed: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let v: Vec<f32> = (0..n * 8).map(|_| rng.random::<f32>() - 0.5).collect();
            Domain::new(Tensor::from_slice(&v).view([n, 8]))
        };
        let logs = (0..6)
            .map(|k| Episode { actions: (0..8).map(|i| (i + k) % 20).collect(), rewards: vec![0.6; 8] })
            .collect();
        (items(30, 1), items(20, 2), logs)
    }

    fn tiny_options(delta_r: bool) -> TrainOptions {
        TrainOptions {
            iterations: 30,
            batch: 4,
            session_len: 8,
            gamma: 0.9,
            lr: 1e-3,
            target_every: 5,
            k_interval: 2,
            hidden: 8,
            seed: 1,
            delta_r: delta_r.then_some(DeltaROptions {
                alpha: 0.8,
                warmup: 5,
                noise: 1.0,
                hidden: 8,
                lr: 1e-3,
                sim_logs: None,
            }),
        }
    }

    #[test]
    fn a_non_finite_loss_stops_training_naming_the_loss_and_iteration() {
        let (sim, real, logs) = tiny_world();
        let nan_reward = |_: usize, a: i64| if a == 3 { f32::NAN } else { 0.5 };
        let err = train(&sim, 5, &nan_reward, Some((&real, &logs)), &tiny_options(false), None, tch::Device::Cpu)
            .err()
            .expect("NaN reward");
        assert!(matches!(&err, StageError::NonFinite { loss, iteration: 0 } if loss == "TD loss"), "{err}");
        // A NaN in the real logs reaches the dynamics classifiers first.
        let mut bad = logs.clone();
        for e in &mut bad {
            e.rewards[2] = f32::INFINITY;
        }
        let err = train(&sim, 5, &|_, _| 0.5, Some((&real, &bad)), &tiny_options(true), None, tch::Device::Cpu)
            .err()
            .expect("inf reward in the logs");
        assert!(
            matches!(&err, StageError::NonFinite { loss, iteration: 0 } if loss.starts_with("classifier loss")),
            "{err}"
        );
        assert!(err.to_string().contains("iteration 0"), "{err}");
    }

    #[test]
    fn delta_r_methods_train_and_are_deterministic_and_need_real_logs() {
        let (sim, real, logs) = tiny_world();
        let reward = |u: usize, a: i64| if (a as usize + u).is_multiple_of(3) { 1.0 } else { 0.0 };
        let run =
            || train(&sim, 5, &reward, Some((&real, &logs)), &tiny_options(true), None, tch::Device::Cpu).unwrap();
        let (a, b) = (run(), run());
        assert!(a
            .curves
            .iter()
            .zip(&b.curves)
            .all(|(x, y)| x.td_loss.to_bits() == y.td_loss.to_bits() && x.dr_mean.to_bits() == y.dr_mean.to_bits()));
        assert!(a.curves[..5].iter().all(|c| c.dr_mean == 0.0), "no Δr during the warm-up");
        assert!(a.curves[5..].iter().any(|c| c.dr_std > 0.0), "Δr applied after the warm-up");
        let err = train(&sim, 5, &reward, Some((&real, &[])), &tiny_options(true), None, tch::Device::Cpu)
            .err()
            .expect("no logs");
        assert!(err.to_string().contains("real logged sessions"), "{err}");
        // With the classifiers on sim logs (every step rated), Δr touches rated sim steps only.
        let mut o = tiny_options(true);
        let sim_logs: Vec<Episode> = (0..6)
            .map(|k| Episode { actions: (0..8).map(|i| (i + 2 * k) % 30).collect(), rewards: vec![0.8; 8] })
            .collect();
        o.delta_r.as_mut().unwrap().sim_logs = Some(sim_logs);
        let zero = |_: usize, _: i64| 0.0;
        let t = train(&sim, 5, &zero, Some((&real, &logs)), &o, None, tch::Device::Cpu).unwrap();
        assert!(t.curves.iter().all(|c| c.dr_mean == 0.0 && c.dr_std == 0.0), "no rated sim step, no Δr");
        let t = train(&sim, 5, &reward, Some((&real, &logs)), &o, None, tch::Device::Cpu).unwrap();
        assert!(t.curves[5..].iter().any(|c| c.dr_std > 0.0));
    }

    /// CUDA and CPU training agree within float tolerance: the same initial weights (models are
    /// built on the CPU, then moved), the same first TD loss, and the same greedy sessions. Needs a
    /// CUDA device: skipped without one, unless `S2R_REQUIRE_CUDA` is set (scripts/gpu-check.sh
    /// sets it, so on the GPU machine it cannot pass without running).
    #[test]
    fn cuda_training_matches_cpu() {
        if !tch::Cuda::is_available() {
            assert!(
                std::env::var_os("S2R_REQUIRE_CUDA").is_none(),
                "S2R_REQUIRE_CUDA is set and CUDA is not available"
            );
            eprintln!("no CUDA device: skipped");
            return;
        }
        let (sim, real, logs) = tiny_world();
        let reward = |u: usize, a: i64| if (a as usize + u).is_multiple_of(3) { 1.0 } else { 0.0 };
        let on = |dev: tch::Device| {
            let (s, r) = (Domain::new(sim.items.to_device(dev)), Domain::new(real.items.to_device(dev)));
            let t = train(&s, 5, &reward, Some((&r, &logs)), &tiny_options(true), None, dev).unwrap();
            let sessions = greedy_with_feedback(&t.vs, &r, &[0, 1, 2, 3, 4], 8, 8, &|u, a| reward(u, a));
            (t.curves, sessions)
        };
        let (cpu, cpu_sessions) = on(tch::Device::Cpu);
        let (gpu, gpu_sessions) = on(tch::Device::Cuda(0));
        let rel = |a: f64, b: f64| (a - b).abs() / a.abs().max(b.abs()).max(1e-12);
        eprintln!("first TD loss: cpu {} cuda {}", cpu[0].td_loss, gpu[0].td_loss);
        assert!(rel(cpu[0].td_loss, gpu[0].td_loss) < 1e-4, "first TD loss {} vs {}", cpu[0].td_loss, gpu[0].td_loss);
        let worst = cpu.iter().zip(&gpu).map(|(a, b)| rel(a.td_loss, b.td_loss)).fold(0.0, f64::max);
        eprintln!("largest relative TD-loss difference over {} iterations: {worst:.2e}", cpu.len());
        assert!(worst < 1e-2, "TD losses diverge: {worst}");
        assert_eq!(cpu_sessions, gpu_sessions, "greedy sessions");
    }
}
