//! Training the LSTM-DQN (docs/design.md §6): ε-greedy batched rollouts on simulated users,
//! whole-episode replay, double-DQN targets with a target network, a batch of real logged
//! sessions every `k_interval` iterations; with Δr, the two domain classifiers train every
//! iteration and correct the sim rewards in the TD targets; with joint training, DARec's item
//! maps are fine-tuned with the policy.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Tensor};

use crate::api::error::StageError;
use crate::env::session::{Env, ExactRatio};
use crate::neural::irs::config::DeltaREstimator;
use crate::neural::irs::dynamics::DynClf;
use crate::neural::irs::episode::{batch_tensors, Domain, Episode};
use crate::neural::irs::joint::{Items, Joint, Maps};
use crate::neural::irs::qnet::{ItemBias, QNet, BIAS_GROUP};
use crate::neural::irs::response::{click_responses, RespModel};
use crate::neural::irs::rollout::rollout;
use crate::neural::irs::state_clf::{StateClf, Transitions};
use crate::neural::irs::td::{td_loss, Bootstrap, TdRule};
use crate::neural::layers::dann_lambda;
use crate::neural::torch::{finite, seeded, to_device};

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
    /// Per-item biases b_a of each pool in Q (else a scalar b only).
    pub item_bias: bool,
    /// Adam learning rate of the per-item biases.
    pub item_bias_lr: f64,
    /// The popularity term π(s)·p_a in Q (both domains then carry `pop`).
    pub popularity: bool,
    /// With it, the real pool's own π, trained by the real-log batches only.
    pub popularity_per_pool: bool,
    /// How the real-log batches' TD targets value the next state.
    pub real_bootstrap: Bootstrap,
    /// Weight of the conservative (CQL) term on real-log batches (0 = none).
    pub real_conservative: f64,
    /// Unrated items as zero-reward actions of the real-log batches, when set.
    pub real_negatives: Option<Negatives>,
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
    /// Recent items whose similarity to the current one the classifiers see (0 = none).
    pub recent: usize,
    /// Classifier learning rate.
    pub lr: f64,
    /// When set, the classifiers compare these sim *logged* sessions (sim users' own ratings in
    /// time order, every step rated) with the real logs, instead of sim rollouts (mostly unrated
    /// steps) — and Δr then applies to rated sim steps only (r > 0), the only kind both saw.
    pub sim_logs: Option<Vec<Episode>>,
    /// Apply Δr to rated steps (r > 0) only (with the replay's `sim_logs`).
    pub rated_only: bool,
    /// How Δr is estimated (the classifiers, the response models, or a world's exact ratio).
    pub estimator: DeltaREstimator,
    /// `Responses`: L2 weight on the real residual's outputs.
    pub resp_penalty: f64,
}

/// What estimates Δr: the domain classifiers (also trained, for their curves, when a world's exact
/// ratio is used) or the response models.
enum DrModel {
    Classifiers(DynClf),
    /// The classifiers on the online Q-network's states.
    States(StateClf),
    Responses(RespModel),
}

impl DrModel {
    fn new(p: &nn::Path, d: i64, h: i64, dr: &DeltaROptions) -> Self {
        match dr.estimator {
            DeltaREstimator::Responses => {
                DrModel::Responses(RespModel::new(p, d, dr.hidden, dr.recent, dr.resp_penalty))
            }
            DeltaREstimator::StateClassifiers => DrModel::States(StateClf::new(p, h, d, dr.hidden)),
            _ => DrModel::Classifiers(DynClf::new(p, d, dr.hidden, dr.recent)),
        }
    }
    fn loss(
        &self,
        net: &QNet,
        sim: (&Tensor, &[Episode]),
        real: (&Tensor, &[Episode]),
        noise: f64,
        rng: &mut ChaCha8Rng,
    ) -> (Tensor, f64, f64) {
        match self {
            DrModel::Classifiers(c) => c.loss(sim, real, noise, rng),
            DrModel::States(c) => {
                let dev = sim.0.device();
                let (sa, sr) = batch_tensors(sim.1, dev);
                let (ra, rr) = batch_tensors(real.1, dev);
                let (ss, rs) = tch::no_grad(|| (net.states(sim.0, &sa, &sr), net.states(real.0, &ra, &rr)));
                let sim_tr = Transitions { states: &ss, actions: &sa, items: sim.0 };
                let real_tr = Transitions { states: &rs, actions: &ra, items: real.0 };
                c.loss(&sim_tr, &real_tr, noise, rng)
            }
            DrModel::Responses(m) => m.loss(sim, real, noise, rng),
        }
    }
    fn delta_r(&self, net: &QNet, items: &Tensor, actions: &Tensor, rewards: &Tensor) -> Tensor {
        match self {
            DrModel::Classifiers(c) => c.delta_r(items, actions, rewards),
            DrModel::States(c) => {
                let states = tch::no_grad(|| net.states(items, actions, rewards));
                c.delta_r(&Transitions { states: &states, actions, items })
            }
            DrModel::Responses(m) => m.delta_r(items, actions, rewards),
        }
    }
}

/// Negative sampling on the real logs (as SNQN, Xin et al. 2022, does for Q-learning on logged
/// sessions): at every logged step, `per_step` items the log's user did not rate become extra
/// actions with reward 0 — exactly what the replay reward pays for an unrated item — and the
/// session goes on as logged (their target bootstraps from the logged next state). The logs alone
/// hold rated items only, so nothing else tells Q which real items go unrated.
#[derive(Debug, Clone)]
pub struct Negatives {
    /// Items sampled per logged step.
    pub per_step: usize,
    /// For each real log (in the logs' order), the positions its user rated, sorted.
    pub rated: Vec<Vec<i64>>,
}

impl Negatives {
    /// `B × T × per_step` sampled unrated positions of `n` items for the logs `picked`, and
    /// their weights (0 where a user rated so much that no unrated item was found).
    fn sample(&self, picked: &[usize], t: usize, n: i64, rng: &mut ChaCha8Rng) -> (Tensor, Tensor) {
        let k = self.per_step;
        let mut items = Vec::with_capacity(picked.len() * t * k);
        let mut weights = Vec::with_capacity(items.capacity());
        for &l in picked {
            let rated = &self.rated[l];
            for _ in 0..t * k {
                let found = (0..100).map(|_| rng.random_range(0..n)).find(|a| rated.binary_search(a).is_err());
                items.push(found.unwrap_or(0));
                weights.push(if found.is_some() { 1f32 } else { 0.0 });
            }
        }
        let shape = [picked.len() as i64, t as i64, k as i64];
        (Tensor::from_slice(&items).view(shape), Tensor::from_slice(&weights).view(shape))
    }
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
    /// Mean exact log-ratio ln p_real/p_sim of the sim batch's steps, where the simulator knows
    /// both dynamics (a world; NaN elsewhere and before Δr applies).
    pub dr_exact: f64,
    /// Pearson correlation of Δr with the exact log-ratio over the sim batch's steps (NaN where
    /// not measured or where either is constant).
    pub dr_corr: f64,
    /// Mean Δr on the steps whose topic was bored (the dynamics differ there; NaN if none).
    pub dr_bored: f64,
    /// Mean Δr on the other steps (the exact ratio is 0 there; NaN if none).
    pub dr_fresh: f64,
    /// Share of the sim batch's steps that were bored.
    pub bored_share: f64,
}

impl Default for CurveRow {
    fn default() -> Self {
        Self {
            iteration: 0,
            td_loss: 0.0,
            sim_reward: 0.0,
            epsilon: 0.0,
            clf_loss: 0.0,
            acc_sa: 0.0,
            acc_sas: 0.0,
            dr_mean: 0.0,
            dr_std: 0.0,
            dom_loss: 0.0,
            dr_exact: f64::NAN,
            dr_corr: f64::NAN,
            dr_bored: f64::NAN,
            dr_fresh: f64::NAN,
            bored_share: f64::NAN,
        }
    }
}

impl CurveRow {
    /// Fills the exact-ratio columns from Δr (`delta`, the batch's steps in order) and the
    /// environment's exact ratios of the same steps.
    fn against_exact(&mut self, delta: &[f32], exact: &[ExactRatio]) {
        let truth: Vec<f32> = exact.iter().flat_map(|e| e.log_ratio.iter().copied()).collect();
        let bored: Vec<bool> = exact.iter().flat_map(|e| e.bored.iter().copied()).collect();
        if truth.len() != delta.len() || delta.is_empty() {
            return;
        }
        let mean = |v: &mut dyn Iterator<Item = f64>| {
            let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
            if n == 0 {
                f64::NAN
            } else {
                s / n as f64
            }
        };
        let on = |want: bool| delta.iter().zip(&bored).filter(move |(_, &b)| b == want).map(|(&d, _)| f64::from(d));
        self.dr_exact = mean(&mut truth.iter().map(|&x| f64::from(x)));
        self.dr_bored = mean(&mut on(true));
        self.dr_fresh = mean(&mut on(false));
        self.bored_share = bored.iter().filter(|&&b| b).count() as f64 / bored.len() as f64;
        let md = mean(&mut delta.iter().map(|&x| f64::from(x)));
        let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
        for (&d, &t) in delta.iter().zip(&truth) {
            let (x, y) = (f64::from(d) - md, f64::from(t) - self.dr_exact);
            sxy += x * y;
            sxx += x * x;
            syy += y * y;
        }
        self.dr_corr = if sxx > 0.0 && syy > 0.0 { sxy / (sxx * syy).sqrt() } else { f64::NAN };
    }
}

/// The exact log-ratios of a batch's steps as a `B × T` tensor (`size`), every episode full length.
fn exact_tensor(exact: &[ExactRatio], size: Vec<i64>, device: tch::Device) -> Result<Tensor, StageError> {
    let flat: Vec<f32> = exact.iter().flat_map(|e| e.log_ratio.iter().copied()).collect();
    if flat.len() as i64 != size.iter().product::<i64>() {
        return Err(StageError::Failed(format!(
            "exact ratios of {} steps for a batch of {size:?} (sessions shorter than the others)",
            flat.len()
        )));
    }
    Ok(Tensor::from_slice(&flat).view(size.as_slice()).to_device(device))
}

/// What the per-iteration hook sees: the curve row, and the policy and real item vectors as they
/// are after this iteration's step (for validation curves).
pub struct Snapshot<'a> {
    /// This iteration's curve row.
    pub row: &'a CurveRow,
    /// The online Q network.
    pub net: &'a QNet,
    /// The real-domain item vectors the policy sees now (after joint fine-tuning), if any.
    pub real_items: Option<&'a Tensor>,
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

fn failed(e: impl std::fmt::Display) -> StageError {
    StageError::Failed(e.to_string())
}

/// Trains a DQN on the simulated users of `sim_env` over `sim`, plus logged `real_logs` over `real`
/// every `k_interval` iterations; with `o.delta_r`, the classifiers train on sim replay vs real
/// logs and sim rewards in the TD targets become r + α·Δr after the warm-up; with `joint`, `sim`
/// and `real` hold the raw vectors and DARec's maps are fine-tuned with L_rl + L_dom.
#[allow(clippy::too_many_arguments)] // the domains, the simulator, the options and the hooks
pub fn train(
    sim: &Domain,
    sim_env: &dyn Env,
    real: Option<(&Domain, &[Episode])>,
    o: &TrainOptions,
    joint: Option<&Joint>,
    device: tch::Device,
    on_iteration: &dyn Fn(&Snapshot) -> Result<(), StageError>,
) -> Result<Trained, StageError> {
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let n_sim_users = sim_env.n_users();
    if n_sim_users == 0 {
        return Err(StageError::Data("the simulator has no users".into()));
    }
    let d = sim.items.size()[1];
    let cpu = tch::Device::Cpu;
    let (mut vs, mut tvs, mut cvs) = (nn::VarStore::new(cpu), nn::VarStore::new(cpu), nn::VarStore::new(cpu));
    let bias = if o.item_bias {
        ItemBias {
            sim: Some(sim.n_items),
            real: real.map(|r| r.0.n_items),
            popularity: o.popularity,
            popularity_per_pool: o.popularity_per_pool,
        }
    } else {
        ItemBias { popularity: o.popularity, popularity_per_pool: o.popularity_per_pool, ..Default::default() }
    };
    if o.popularity && (sim.pop.is_none() || real.is_some_and(|r| r.0.pop.is_none())) {
        return Err(StageError::Input("the popularity term needs each pool's item popularity".into()));
    }
    let (net, target, clf) = seeded(o.seed, || {
        (
            QNet::new(&vs.root(), d, o.hidden, bias),
            QNet::new(&tvs.root(), d, o.hidden, bias),
            o.delta_r.as_ref().map(|dr| DrModel::new(&cvs.root(), d, o.hidden, dr)),
        )
    });
    to_device(&mut [&mut vs, &mut tvs, &mut cvs], device);
    tvs.copy(&vs).map_err(failed)?;
    let mut opt = nn::Adam::default().build(&vs, o.lr).map_err(failed)?;
    if o.item_bias {
        // A bias moves only when its item is in a batch, by at most ~lr per step under Adam.
        opt.set_lr_group(BIAS_GROUP, o.item_bias_lr);
    }
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
    if o.delta_r.as_ref().is_some_and(|dr| dr.estimator == DeltaREstimator::Exact)
        && sim_env.exact_log_ratio(0, &[], &[]).is_none()
    {
        return Err(StageError::Input(
            "`delta_r_estimator: exact` needs a world with known dynamics (a replay has no exact ratio)".into(),
        ));
    }
    if o.delta_r.as_ref().is_some_and(|dr| dr.estimator == DeltaREstimator::Responses) && !click_responses(logs) {
        return Err(StageError::Input(
            "`delta_r_estimator: responses` models click responses (rewards in [0, 1]); the real logs have others \
             (a replay's rating rewards: use the classifiers)"
                .into(),
        ));
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
    let n_real = real.map_or(0, |r| r.0.n_items);
    let mut replay: Vec<Episode> = Vec::new();
    // The simulated user of each replayed episode (for the exact ratios of a world).
    let mut replay_users: Vec<usize> = Vec::new();
    let cap = 20_000;
    let mut curves = Vec::with_capacity(o.iterations);
    let sim_rule = TdRule { gamma: o.gamma, bootstrap: Bootstrap::Max, conservative: 0.0 };
    let real_rule = TdRule { gamma: o.gamma, bootstrap: o.real_bootstrap, conservative: o.real_conservative };
    items.refresh();
    for it in 0..o.iterations {
        let sim_dom = sim.with_items(items.sim.shallow_clone());
        let epsilon = (1.0 - it as f64 / (0.5 * o.iterations as f64).max(1.0)).max(0.05);
        let users: Vec<usize> = (0..o.batch).map(|_| rng.random_range(0..n_sim_users)).collect();
        // Each iteration's sessions get their own response stream (of this seed).
        let stream = o.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ it as u64;
        let fresh = rollout(&net, &sim_dom, sim_env, &users, o.session_len, epsilon, &mut rng, stream);
        let sim_r = fresh
            .iter()
            .map(|e| e.rewards.iter().map(|&r| f64::from(r)).sum::<f64>() / e.rewards.len() as f64)
            .sum::<f64>()
            / fresh.len() as f64;
        for (e, &u) in fresh.into_iter().zip(&users) {
            if replay.len() < cap {
                replay.push(e);
                replay_users.push(u);
            } else {
                let i = rng.random_range(0..cap);
                replay[i] = e;
                replay_users[i] = u;
            }
        }
        let mut row = CurveRow { iteration: it, sim_reward: sim_r, epsilon, ..Default::default() };
        // The classifiers: sim replay (label 0) vs real logs (label 1), noisy inputs.
        if let (Some(clf), Some(copt), Some(dr)) = (&clf, copt.as_mut(), &o.delta_r) {
            let source: &[Episode] = dr.sim_logs.as_deref().unwrap_or(&replay);
            let bs: Vec<Episode> = (0..o.batch).map(|_| source[rng.random_range(0..source.len())].clone()).collect();
            let br: Vec<Episode> = (0..o.batch).map(|_| logs[rng.random_range(0..logs.len())].clone()).collect();
            let real_items = items.real.as_ref().expect("checked: real logs exist").detach();
            let (loss, acc_sa, acc_sas) =
                clf.loss(&net, (&items.sim.detach(), &bs), (&real_items, &br), dr.noise, &mut rng);
            row.clf_loss = finite(&loss, "classifier loss (D_sa + D_sas)", it)?;
            row.acc_sa = acc_sa;
            row.acc_sas = acc_sas;
            copt.backward_step(&loss);
        }
        let use_real = o.k_interval > 0 && it % o.k_interval == o.k_interval - 1 && !logs.is_empty();
        let loss = if use_real {
            let real_dom = real.expect("logs need the real domain").0;
            let dom = real_dom.with_items(items.real.as_ref().expect("logs need the real domain").shallow_clone());
            let picked: Vec<usize> = (0..o.batch).map(|_| rng.random_range(0..logs.len())).collect();
            let batch: Vec<Episode> = picked.iter().map(|&l| logs[l].clone()).collect();
            let neg = o.real_negatives.as_ref().map(|ng| {
                let (a, w) = ng.sample(&picked, o.session_len, n_real, &mut rng);
                (a.to_device(device), w.to_device(device))
            });
            td_loss(&net, &target, &dom, &batch, real_rule, None, neg.as_ref())
        } else {
            let picked: Vec<usize> = (0..o.batch).map(|_| rng.random_range(0..replay.len())).collect();
            let batch: Vec<Episode> = picked.iter().map(|&k| replay[k].clone()).collect();
            let bonus = match (&clf, &o.delta_r) {
                (Some(clf), Some(dr)) if it >= dr.warmup => {
                    let (a, r) = batch_tensors(&batch, device);
                    let exact: Option<Vec<ExactRatio>> = picked
                        .iter()
                        .map(|&k| sim_env.exact_log_ratio(replay_users[k], &replay[k].actions, &replay[k].rewards))
                        .collect();
                    let mut delta = match (dr.estimator, &exact) {
                        (
                            DeltaREstimator::Classifiers
                            | DeltaREstimator::StateClassifiers
                            | DeltaREstimator::Responses,
                            _,
                        ) => clf.delta_r(&net, &items.sim.detach(), &a, &r),
                        (DeltaREstimator::Exact, Some(exact)) => exact_tensor(exact, a.size(), device)?,
                        (DeltaREstimator::Exact, None) => unreachable!("checked before training"),
                    };
                    if dr.rated_only {
                        delta *= r.gt(0.0).to_kind(Kind::Float);
                    }
                    row.dr_mean = finite(&delta.mean(Kind::Float), "Δr", it)?;
                    row.dr_std = delta.std(false).double_value(&[]);
                    if let Some(exact) = exact {
                        let flat = Vec::<f32>::try_from(delta.to_device(tch::Device::Cpu).view([-1]))
                            .map_err(|e| StageError::Failed(e.to_string()))?;
                        row.against_exact(&flat, &exact);
                    }
                    Some(delta * dr.alpha)
                }
                _ => None,
            };
            td_loss(&net, &target, &sim_dom, &batch, sim_rule, bonus.as_ref(), None)
        };
        row.td_loss = finite(&loss, "TD loss", it)?;
        match (&items.maps, mopt.as_mut()) {
            (Some(m), Some(mopt)) => {
                let lambda = dann_lambda(it as f64 / o.iterations.max(1) as f64);
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
        items.refresh();
        on_iteration(&Snapshot { row: &row, net: &net, real_items: items.real.as_ref() })?;
        curves.push(row);
    }
    let real_items = items.real.map_or_else(|| items.sim.zeros_like().narrow(0, 0, 0), |t| t.detach());
    Ok(Trained { vs, curves, real_items })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::session::Replay;
    use crate::neural::irs::episode::Side;

    fn tiny_world() -> (Domain, Domain, Vec<Episode>) {
        let items = |n: i64, seed: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let v: Vec<f32> = (0..n * 8).map(|_| rng.random::<f32>() - 0.5).collect();
            Domain::new(Tensor::from_slice(&v).view([n, 8]), if seed == 1 { Side::Sim } else { Side::Real })
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
            item_bias: true,
            item_bias_lr: 1e-2,
            popularity: false,
            popularity_per_pool: false,
            real_bootstrap: Bootstrap::Logged,
            real_conservative: 1.0,
            real_negatives: None,
            seed: 1,
            delta_r: delta_r.then_some(DeltaROptions {
                alpha: 0.8,
                warmup: 5,
                noise: 1.0,
                hidden: 8,
                recent: 0,
                lr: 1e-3,
                sim_logs: None,
                rated_only: false,
                estimator: DeltaREstimator::Classifiers,
                resp_penalty: 0.01,
            }),
        }
    }

    #[test]
    fn training_reports_every_iteration_and_stops_when_told() {
        let (sim, real, logs) = tiny_world();
        let seen = std::cell::Cell::new(0usize);
        let stop_at_3 = |snap: &Snapshot| {
            seen.set(seen.get() + 1);
            if snap.row.iteration == 3 {
                Err(StageError::Cancelled)
            } else {
                Ok(())
            }
        };
        let err = train(
            &sim,
            &Replay::new(5, &|_, _| 0.5),
            Some((&real, &logs)),
            &tiny_options(true),
            None,
            tch::Device::Cpu,
            &stop_at_3,
        )
        .err()
        .expect("cancelled");
        assert!(matches!(err, StageError::Cancelled), "{err}");
        assert_eq!(seen.get(), 4, "iterations 0..=3 reported, nothing after the stop");
    }

    #[test]
    fn a_non_finite_loss_stops_training_naming_the_loss_and_iteration() {
        let (sim, real, logs) = tiny_world();
        let nan_reward = |_: usize, a: i64| if a == 3 { f32::NAN } else { 0.5 };
        let err = train(
            &sim,
            &Replay::new(5, &nan_reward),
            Some((&real, &logs)),
            &tiny_options(false),
            None,
            tch::Device::Cpu,
            &|_| Ok(()),
        )
        .err()
        .expect("NaN reward");
        assert!(matches!(&err, StageError::NonFinite { loss, iteration: 0 } if loss == "TD loss"), "{err}");
        // A NaN in the real logs reaches the dynamics classifiers first.
        let mut bad = logs.clone();
        for e in &mut bad {
            e.rewards[2] = f32::INFINITY;
        }
        let err = train(
            &sim,
            &Replay::new(5, &|_, _| 0.5),
            Some((&real, &bad)),
            &tiny_options(true),
            None,
            tch::Device::Cpu,
            &|_| Ok(()),
        )
        .err()
        .expect("inf reward in the logs");
        assert!(
            matches!(&err, StageError::NonFinite { loss, iteration: 0 } if loss.starts_with("classifier loss")),
            "{err}"
        );
        assert!(err.to_string().contains("iteration 0"), "{err}");
    }

    #[test]
    fn the_response_and_state_estimators_train_and_the_exact_one_needs_a_world() {
        let (sim, real, logs) = tiny_world();
        let reward = |u: usize, a: i64| if (a as usize + u).is_multiple_of(3) { 1.0 } else { 0.0 };
        let with = |estimator: DeltaREstimator, logs: &[Episode]| {
            let mut o = tiny_options(true);
            o.delta_r.as_mut().unwrap().estimator = estimator;
            train(&sim, &Replay::new(5, &reward), Some((&real, logs)), &o, None, tch::Device::Cpu, &|_| Ok(()))
        };
        let t = with(DeltaREstimator::Responses, &logs).unwrap();
        assert!(t.curves[5..].iter().all(|c| c.dr_mean.is_finite()) && t.curves[5..].iter().any(|c| c.dr_std > 0.0));
        // The classifiers on the Q-network's states: Δr after the warm-up, deterministic.
        let (a, b) = (
            with(DeltaREstimator::StateClassifiers, &logs).unwrap(),
            with(DeltaREstimator::StateClassifiers, &logs).unwrap(),
        );
        assert!(a.curves[..5].iter().all(|c| c.dr_mean == 0.0) && a.curves[5..].iter().any(|c| c.dr_std > 0.0));
        assert!(a.curves.iter().all(|c| c.clf_loss.is_finite() && c.clf_loss > 0.0));
        assert!(a
            .curves
            .iter()
            .zip(&b.curves)
            .all(|(x, y)| x.clf_loss.to_bits() == y.clf_loss.to_bits() && x.dr_mean.to_bits() == y.dr_mean.to_bits()));
        // Rating rewards (a replay's TPGR map gives −1..1) are not clicks.
        let mut ratings = logs.clone();
        ratings[0].rewards[0] = -0.6;
        let err = with(DeltaREstimator::Responses, &ratings).err().expect("not clicks");
        assert!(matches!(&err, StageError::Input(m) if m.contains("click responses")), "{err}");
        let err = with(DeltaREstimator::Exact, &logs).err().expect("a replay has no exact ratio");
        assert!(matches!(&err, StageError::Input(m) if m.contains("known dynamics")), "{err}");
    }

    #[test]
    fn delta_r_methods_train_and_are_deterministic_and_need_real_logs() {
        let (sim, real, logs) = tiny_world();
        let reward = |u: usize, a: i64| if (a as usize + u).is_multiple_of(3) { 1.0 } else { 0.0 };
        let run = || {
            train(
                &sim,
                &Replay::new(5, &reward),
                Some((&real, &logs)),
                &tiny_options(true),
                None,
                tch::Device::Cpu,
                &|_| Ok(()),
            )
            .unwrap()
        };
        let (a, b) = (run(), run());
        assert!(a
            .curves
            .iter()
            .zip(&b.curves)
            .all(|(x, y)| x.td_loss.to_bits() == y.td_loss.to_bits() && x.dr_mean.to_bits() == y.dr_mean.to_bits()));
        assert!(a.curves[..5].iter().all(|c| c.dr_mean == 0.0), "no Δr during the warm-up");
        assert!(a.curves[5..].iter().any(|c| c.dr_std > 0.0), "Δr applied after the warm-up");
        assert!(a.curves.iter().all(|c| c.dr_exact.is_nan() && c.dr_corr.is_nan()), "a replay has no exact ratio");
        let err = train(
            &sim,
            &Replay::new(5, &reward),
            Some((&real, &[])),
            &tiny_options(true),
            None,
            tch::Device::Cpu,
            &|_| Ok(()),
        )
        .err()
        .expect("no logs");
        assert!(err.to_string().contains("real logged sessions"), "{err}");
        // With the classifiers on sim logs (every step rated), Δr touches rated sim steps only.
        let mut o = tiny_options(true);
        let sim_logs: Vec<Episode> = (0..6)
            .map(|k| Episode { actions: (0..8).map(|i| (i + 2 * k) % 30).collect(), rewards: vec![0.8; 8] })
            .collect();
        o.delta_r.as_mut().unwrap().sim_logs = Some(sim_logs);
        o.delta_r.as_mut().unwrap().rated_only = true;
        let zero = |_: usize, _: i64| 0.0;
        let t =
            train(&sim, &Replay::new(5, &zero), Some((&real, &logs)), &o, None, tch::Device::Cpu, &|_| Ok(())).unwrap();
        assert!(t.curves.iter().all(|c| c.dr_mean == 0.0 && c.dr_std == 0.0), "no rated sim step, no Δr");
        let t = train(&sim, &Replay::new(5, &reward), Some((&real, &logs)), &o, None, tch::Device::Cpu, &|_| Ok(()))
            .unwrap();
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
            let (s, r) =
                (Domain::new(sim.items.to_device(dev), Side::Sim), Domain::new(real.items.to_device(dev), Side::Real));
            let t = train(&s, &Replay::new(5, &reward), Some((&r, &logs)), &tiny_options(true), None, dev, &|_| Ok(()))
                .unwrap();
            let sessions = crate::neural::irs::rollout::greedy_with_feedback(
                &t.vs,
                &r,
                &[0, 1, 2, 3, 4],
                8,
                8,
                ItemBias { sim: Some(30), real: Some(20), ..Default::default() },
                &Replay::new(5, &reward),
            );
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
