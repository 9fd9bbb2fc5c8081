//! `irs.train` and `irs.eval` between Arrow and tensors: item vectors in, simulated users and
//! real logs built from the splits, the trained network, curves and model metadata out.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Float32Array, Float64Array, StringArray, UInt32Array};
use tch::nn;
use tch::Tensor;

use crate::api::artifact::{Artifact, Inputs, Outputs};
use crate::api::context::Context;
use crate::api::error::StageError;
use crate::data::ratings::Ratings;
use crate::data::sessions::{logged_sessions, ratings_by_user};
use crate::data::table::{batch, column, f64_column, read_vectors, vectors};
use crate::env::session::Replay;
use crate::env::world::{logs_from_table, world_from_table, Dynamics, Population, World};
use crate::eval::metrics::{infer_y_max, online_session, session, summarize, RewardMap, Rule, SessionMetrics};
use crate::eval::tables::metric_tables;
use crate::neural::irs::config::{ClfSimData, EvalConfig, Method, TrainConfig};
use crate::neural::irs::episode::{popularity, Domain, Episode, Side};
use crate::neural::irs::joint::Joint;
use crate::neural::irs::qnet::{ItemBias, QNet};
use crate::neural::irs::rollout::rollout;
use crate::neural::irs::train::{train, CurveRow, DeltaROptions, Negatives, Snapshot, TrainOptions, Trained};
use crate::neural::torch::{load_weights, read_safetensors, tch_device, weights_bytes};

/// Item vectors of `name`: normalised to unit mean norm (`Domain::new`), or as stored (`raw`).
fn vectors_tensor(
    inputs: &Inputs,
    name: &str,
    device: tch::Device,
    raw: bool,
    side: Side,
) -> Result<(Vec<u32>, Domain), StageError> {
    let (ids, flat, d) = read_vectors(inputs.table(name)?, name)?;
    let n = ids.len() as i64;
    if n == 0 {
        return Err(StageError::Data(format!("`{name}` has no item vectors")));
    }
    let items = Tensor::from_slice(&flat).view([n, d as i64]).to_device(device);
    Ok((ids, if raw { Domain::raw(items, side) } else { Domain::new(items, side) }))
}

/// What `irs.eval` needs to rebuild a trained policy: the `model` output of `irs.train`, a
/// key/value table (`hidden`, `dim`, `item_bias`, `session_len`, `rating_max`, `reward_scale`,
/// `reward_offset`, `real_sessions`, `alpha`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelMeta {
    /// LSTM width.
    pub hidden: i64,
    /// Item vector width D.
    pub dim: i64,
    /// Whether Q has per-item biases (the real pool's is `b_real` in the weights).
    pub item_bias: bool,
    /// Whether Q has the popularity term (the real pool's `pop` is a column of `real_item_vecs`).
    pub popularity: bool,
    /// Whether the real pool has its own π (`pop_real` in the weights).
    pub popularity_per_pool: bool,
    /// Session length T.
    pub session_len: usize,
    /// y_max of the reward map.
    pub rating_max: f32,
    /// The reward map the policy was trained with (its LSTM reads these rewards).
    pub reward: RewardMap,
    /// Real logged sessions seen in training.
    pub real_sessions: usize,
    /// α of r̃ = r + α·Δr (0 without Δr).
    pub alpha: f64,
}

impl ModelMeta {
    /// As the `model` table.
    pub fn to_table(&self) -> Result<arrow::record_batch::RecordBatch, StageError> {
        let mut rows = vec![
            ("hidden", self.hidden as f64),
            ("dim", self.dim as f64),
            ("item_bias", f64::from(u8::from(self.item_bias))),
            ("session_len", self.session_len as f64),
            ("rating_max", f64::from(self.rating_max)),
            ("reward_scale", self.reward.affine().0),
            ("reward_offset", self.reward.affine().1),
            ("real_sessions", self.real_sessions as f64),
            ("alpha", self.alpha),
        ];
        if self.popularity {
            // Written only when on, so a model without the term keeps the table it had before.
            rows.push(("popularity", 1.0));
        }
        if self.popularity_per_pool {
            rows.push(("popularity_per_pool", 1.0));
        }
        batch(vec![
            ("key", Arc::new(StringArray::from(rows.iter().map(|m| m.0).collect::<Vec<_>>()))),
            ("value", Arc::new(Float64Array::from(rows.iter().map(|m| m.1).collect::<Vec<_>>()))),
        ])
    }

    /// From the `model` table (every key required, except the reward map: models from before it
    /// was stored were trained with y/y_max).
    pub fn from_table(model: &arrow::record_batch::RecordBatch) -> Result<Self, StageError> {
        let keys = column::<StringArray>(model, "model", "key")?;
        let vals = f64_column(model, "model", "value")?;
        let get = |k: &str| {
            (0..model.num_rows())
                .find(|&i| keys.value(i) == k)
                .map(|i| vals[i])
                .ok_or_else(|| StageError::Input(format!("model has no `{k}`")))
        };
        let reward = match (get("reward_scale"), get("reward_offset")) {
            (Ok(a), Ok(b)) => RewardMap::from_affine(a, b)
                .ok_or_else(|| StageError::Input(format!("model has an unknown reward map r = {a}·y/y_max + {b}")))?,
            _ => RewardMap::Normalized,
        };
        Ok(Self {
            reward,
            item_bias: get("item_bias").is_ok_and(|v| v != 0.0),
            popularity: get("popularity").is_ok_and(|v| v != 0.0),
            popularity_per_pool: get("popularity_per_pool").is_ok_and(|v| v != 0.0),
            hidden: get("hidden")? as i64,
            dim: get("dim")? as i64,
            session_len: get("session_len")? as usize,
            rating_max: get("rating_max")? as f32,
            real_sessions: get("real_sessions")? as usize,
            alpha: get("alpha")?,
        })
    }
}

/// Greedy T-step sessions of `net` over `dom` (item ids `ids`) for every user of `by_user`; the
/// policy's feedback is `feedback` of the user's rating (0 unrated), the metrics follow `rule`.
fn greedy_sessions(
    net: &QNet,
    dom: &Domain,
    ids: &[u32],
    by_user: &BTreeMap<u32, HashMap<u32, f32>>,
    t: usize,
    feedback: &dyn Fn(f32) -> f32,
    rule: Rule,
) -> Vec<(u32, SessionMetrics)> {
    let users: Vec<&u32> = by_user.keys().collect();
    let idx: Vec<usize> = (0..users.len()).collect();
    let reward = |u: usize, a: i64| by_user[users[u]].get(&ids[a as usize]).map_or(0.0, |&y| feedback(y));
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let sessions = rollout(net, dom, &Replay::new(users.len(), &reward), &idx, t, 0.0, &mut rng, 0);
    sessions
        .iter()
        .zip(users)
        .map(|(e, u)| {
            (*u, session(&e.actions.iter().map(|&a| ids[a as usize]).collect::<Vec<_>>(), &by_user[u], rule, t))
        })
        .collect()
}

fn episodes(logs: &[(u32, Vec<i64>, Vec<f32>)]) -> Vec<Episode> {
    logs.iter().map(|(_, actions, rewards)| Episode { actions: actions.clone(), rewards: rewards.clone() }).collect()
}

/// `irs.train`: simulated users from `sim`, real logs from `real_train`, the method's vectors
/// (and DARec's maps for `s2r`); progress per iteration, cancellable between iterations.
pub fn run_train(ctx: &Context, inputs: &Inputs, p: &TrainConfig) -> Result<Outputs, StageError> {
    if inputs.has("world") {
        return run_train_world(ctx, inputs, p);
    }
    for name in ["sim", "real_train"] {
        if !inputs.has(name) {
            return Err(StageError::Input(format!(
                "bind `{name}` (a replay: data.split's outputs) or `world` and `logs` (an interactive world)"
            )));
        }
    }
    let device = tch_device(ctx.device());
    let joint = p.method == Method::S2r;
    if p.method == Method::Oracle && !inputs.has("truth") {
        return Err(StageError::Input(
            "method `oracle` exists only for synthetic worlds: bind `truth` to data.synth's `truth` and `sim` to \
             ratings made with the real dynamics"
                .into(),
        ));
    }
    let (sim_ids, mut sim) = vectors_tensor(inputs, "sim_item_vecs", device, joint, Side::Sim)?;
    let (real_ids, mut real) = vectors_tensor(inputs, "real_item_vecs", device, joint, Side::Real)?;
    if sim.items.size()[1] != real.items.size()[1] {
        return Err(StageError::Input(format!(
            "`sim_item_vecs` have {} dimensions, `real_item_vecs` {}",
            sim.items.size()[1],
            real.items.size()[1]
        )));
    }
    let joint = load_joint(ctx, inputs, p, device)?;
    let sim_r = Ratings::from_batch(inputs.table("sim")?, "sim")?;
    let real_r = Ratings::from_batch(inputs.table("real_train")?, "real_train")?;
    let y_max = p.rating_max.unwrap_or_else(|| infer_y_max([&sim_r, &real_r]));
    let to_reward = |y: f32| p.reward.of(y, y_max) as f32;
    if p.popularity {
        sim = sim.with_pop(Some(pool_popularity(&sim_ids, &sim_r, device)));
        real = real.with_pop(Some(pool_popularity(&real_ids, &real_r, device)));
    }
    // Simulated users: every user with sim ratings replays them (unrated → 0).
    let sim_index: HashMap<u32, i64> = sim_ids.iter().enumerate().map(|(i, &x)| (x, i as i64)).collect();
    let mut users: Vec<u32> = sim_r.user.clone();
    users.sort_unstable();
    users.dedup();
    let uidx: HashMap<u32, usize> = users.iter().enumerate().map(|(i, &u)| (u, i)).collect();
    let mut rewards: Vec<HashMap<i64, f32>> = vec![HashMap::new(); users.len()];
    for k in 0..sim_r.len() {
        if let Some(&i) = sim_index.get(&sim_r.item[k]) {
            rewards[uidx[&sim_r.user[k]]].insert(i, to_reward(sim_r.rating[k]));
        }
    }
    if users.is_empty() {
        return Err(StageError::Data("no simulated users: `sim` has no rating of an item with a vector".into()));
    }
    // Real logs: each shared user's real ratings in time order, cut into sessions of T.
    let real_index: HashMap<u32, i64> = real_ids.iter().enumerate().map(|(i, &x)| (x, i as i64)).collect();
    let logged = logged_sessions(&real_r, &real_index, to_reward, p.session_len);
    let logs = episodes(&logged);
    // For negatives: each log's user's rated positions in `real_train` (all of them, not only the
    // session's), so a sampled item is one the replayed user would answer with 0.
    let real_negatives = (p.real_negatives > 0).then(|| {
        let mut rated: HashMap<u32, Vec<i64>> = HashMap::new();
        for k in 0..real_r.len() {
            if let Some(&i) = real_index.get(&real_r.item[k]) {
                rated.entry(real_r.user[k]).or_default().push(i);
            }
        }
        for v in rated.values_mut() {
            v.sort_unstable();
            v.dedup();
        }
        Negatives { per_step: p.real_negatives, rated: logged.iter().map(|l| rated[&l.0].clone()).collect() }
    });
    // The sim users' own logged sessions, for `clf_sim_data: logs`.
    if p.clf_sim_data == ClfSimData::Behaviour {
        return Err(StageError::Input("`clf_sim_data: behaviour` exists in worlds only: bind `world`".into()));
    }
    let sim_logs = if p.clf_sim_data == ClfSimData::Logs {
        let l = episodes(&logged_sessions(&sim_r, &sim_index, to_reward, p.session_len));
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
    let rated_only = sim_logs.is_some();
    let opts = train_options(p, real_negatives, sim_logs, rated_only);
    ctx.progress(0.0, "training");
    let reward = |u: usize, a: i64| rewards[u].get(&a).copied().unwrap_or(0.0);
    let n = p.iterations;
    // Validation sessions during training, exactly as `irs.eval` would score the model then.
    let val = if inputs.has("val") {
        let v = Ratings::from_batch(inputs.table("val")?, "val")?;
        Some(ratings_by_user(&v))
    } else {
        None
    };
    let val_rule = Rule { reward: p.reward, ..Rule::for_scale(y_max) };
    let val_curve: RefCell<Vec<(usize, crate::eval::metrics::Summary)>> = RefCell::new(Vec::new());
    let report = |snap: &Snapshot| {
        ctx.check_cancelled()?;
        let row = snap.row;
        let done = row.iteration + 1;
        if let (Some(by_user), Some(items)) = (&val, snap.real_items) {
            if done.is_multiple_of(p.val_every) || done == n {
                let dom =
                    Domain::raw(items.detach(), Side::Real).with_pop(real.pop.as_ref().map(Tensor::shallow_clone));
                let rows = greedy_sessions(snap.net, &dom, &real_ids, by_user, p.session_len, &to_reward, val_rule);
                val_curve.borrow_mut().push((done, summarize(&rows.iter().map(|r| r.1).collect::<Vec<_>>())));
            }
        }
        if done.is_multiple_of(10) || done == n {
            ctx.progress(done as f64 / n as f64, &format!("iteration {done}/{n} td {:.4}", row.td_loss));
        }
        Ok(())
    };
    let trained =
        train(&sim, &Replay::new(users.len(), &reward), Some((&real, &logs)), &opts, joint.as_ref(), device, &report)?;
    ctx.check_cancelled()?;
    let meta = ModelMeta {
        hidden: p.hidden,
        dim: sim.items.size()[1],
        item_bias: p.item_bias,
        popularity: p.popularity,
        popularity_per_pool: p.popularity_per_pool,
        session_len: p.session_len,
        rating_max: y_max,
        reward: p.reward,
        real_sessions: logs.len(),
        alpha: if p.has_delta_r() { p.alpha } else { 0.0 },
    };
    train_outputs(ctx, &trained, real_ids, real.pop.as_ref(), &meta, val_curve.into_inner())
}

/// Standardised log popularity ([`popularity`]) of the items `ids` counted in `ratings`.
fn pool_popularity(ids: &[u32], ratings: &Ratings, device: tch::Device) -> Tensor {
    let index: HashMap<u32, usize> = ids.iter().enumerate().map(|(i, &x)| (x, i)).collect();
    let mut counts = vec![0u32; ids.len()];
    for it in &ratings.item {
        if let Some(&i) = index.get(it) {
            counts[i] += 1;
        }
    }
    Tensor::from_slice(&popularity(&counts)).to_device(device)
}

/// DARec's maps and classifiers for joint training (`s2r`; None for the other methods).
fn load_joint(
    ctx: &Context,
    inputs: &Inputs,
    p: &TrainConfig,
    device: tch::Device,
) -> Result<Option<Joint>, StageError> {
    if p.method != Method::S2r {
        return Ok(None);
    }
    let Artifact::Weights(w) = inputs.one("darec_weights")? else {
        return Err(StageError::Input("`darec_weights` must be adapt.darec's weights".into()));
    };
    let named = read_safetensors(w, ctx.scratch(), "darec_weights")?;
    Ok(Some(Joint {
        darec: named.into_iter().map(|(n, t)| (n, t.to_device(device))).collect(),
        dom_weight: p.dom_weight,
    }))
}

/// The trainer's options from `irs.train`'s params, with the data-dependent parts: negatives on
/// the real logs, the classifiers' sim side (None: the sim rollouts), and whether Δr applies to
/// rated steps only.
fn train_options(
    p: &TrainConfig,
    real_negatives: Option<Negatives>,
    sim_logs: Option<Vec<Episode>>,
    rated_only: bool,
) -> TrainOptions {
    TrainOptions {
        iterations: p.iterations,
        batch: p.batch,
        session_len: p.session_len,
        gamma: p.gamma,
        lr: p.lr,
        target_every: p.target_every,
        k_interval: p.k_interval,
        hidden: p.hidden,
        item_bias: p.item_bias,
        item_bias_lr: p.item_bias_lr.unwrap_or(p.lr),
        popularity: p.popularity,
        popularity_per_pool: p.popularity_per_pool,
        real_bootstrap: p.real_bootstrap,
        real_conservative: p.real_conservative,
        real_negatives,
        seed: p.seed,
        delta_r: p.has_delta_r().then_some(DeltaROptions {
            alpha: p.alpha,
            warmup: p.delta_r_warmup,
            noise: p.clf_noise,
            hidden: p.clf_hidden,
            recent: p.clf_recent,
            lr: p.clf_lr,
            sim_logs,
            rated_only,
            estimator: p.delta_r_estimator,
            resp_penalty: p.resp_penalty,
        }),
    }
}

/// `irs.train`'s outputs: the weights, the real items as the policy sees them (their vectors, and
/// their popularity `pop` when Q has the term), its metadata and the curves.
fn train_outputs(
    ctx: &Context,
    trained: &Trained,
    real_ids: Vec<u32>,
    real_pop: Option<&Tensor>,
    meta: &ModelMeta,
    vc: Vec<(usize, crate::eval::metrics::Summary)>,
) -> Result<Outputs, StageError> {
    let (vs, curves) = (&trained.vs, &trained.curves);
    let f = |k: fn(&CurveRow) -> f64| Arc::new(Float64Array::from(curves.iter().map(k).collect::<Vec<_>>()));
    let curves_t = batch(vec![
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
        ("dr_exact", f(|c| c.dr_exact)),
        ("dr_corr", f(|c| c.dr_corr)),
        ("dr_bored", f(|c| c.dr_bored)),
        ("dr_fresh", f(|c| c.dr_fresh)),
        ("bored_share", f(|c| c.bored_share)),
    ])?;
    let g = |k: fn(&crate::eval::metrics::Summary) -> f64| {
        Arc::new(Float64Array::from(vc.iter().map(|(_, s)| k(s)).collect::<Vec<_>>()))
    };
    let val_t = batch(vec![
        ("iteration", Arc::new(UInt32Array::from(vc.iter().map(|v| v.0 as u32).collect::<Vec<_>>()))),
        ("users", Arc::new(UInt32Array::from(vc.iter().map(|v| v.1.users as u32).collect::<Vec<_>>()))),
        ("reward", g(|s| s.reward)),
        ("precision", g(|s| s.precision)),
        ("recall", g(|s| s.recall)),
        ("f1", g(|s| s.f1)),
    ])?;
    let real_flat = Vec::<f32>::try_from(trained.real_items.to_device(tch::Device::Cpu).view([-1]))
        .map_err(|e| StageError::Failed(e.to_string()))?;
    let mut real_vecs = vectors(real_ids, real_flat, trained.real_items.size()[1] as usize)?;
    if let Some(pop) = real_pop {
        let pop =
            Vec::<f32>::try_from(pop.to_device(tch::Device::Cpu)).map_err(|e| StageError::Failed(e.to_string()))?;
        real_vecs = batch(vec![
            ("id", real_vecs.column(0).clone()),
            ("vector", real_vecs.column(1).clone()),
            ("pop", Arc::new(Float32Array::from(pop))),
        ])?;
    }
    Ok(Outputs::from([
        ("weights".into(), Artifact::Weights(weights_bytes(vs, ctx.scratch())?)),
        ("real_item_vecs".into(), Artifact::Table(real_vecs)),
        ("model".into(), Artifact::Table(meta.to_table()?)),
        ("curves".into(), Artifact::Table(curves_t)),
        ("val_curve".into(), Artifact::Table(val_t)),
    ]))
}

/// The pool's item vectors of a world, checked against the world's pool for `d` (`raw`: not
/// rescaled, for joint training).
fn world_pool(
    inputs: &Inputs,
    name: &str,
    world: &World,
    d: Dynamics,
    device: tch::Device,
    side: Side,
    raw: bool,
) -> Result<(Vec<u32>, Domain), StageError> {
    let (ids, dom) = vectors_tensor(inputs, name, device, raw, side)?;
    let pool: Vec<u32> = world.p.pool(d).iter().map(|&i| i + 1).collect();
    if ids != pool {
        return Err(StageError::Input(format!(
            "`{name}` are not the vectors of this world's {} pool ({} ids, the pool has {}): bind world.synth's `{name}`",
            if d == Dynamics::Sim { "sim" } else { "real" },
            ids.len(),
            pool.len()
        )));
    }
    Ok((ids, dom))
}

/// Greedy online sessions of `net` for every user of `pop` in the real dynamics of `world`.
fn online_sessions(net: &QNet, dom: &Domain, world: &World, pop: Population) -> Vec<(u32, SessionMetrics)> {
    let env = world.env(Dynamics::Real, pop);
    let users: Vec<usize> = (0..world.users(pop)).collect();
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let mut rows = Vec::with_capacity(users.len());
    // Batches of 512 users: the responses do not depend on the batching (per-user streams).
    for chunk in users.chunks(512) {
        let eps = rollout(net, dom, &env, chunk, world.p.session_len, 0.0, &mut rng, 0);
        rows.extend(chunk.iter().zip(eps).map(|(&u, e)| (u as u32 + 1, online_session(&e.rewards))));
    }
    rows
}

/// `irs.train` in an interactive world (`world` bound): simulated users interact with the sim
/// dynamics (the oracle's with the real dynamics), the real logs are the world's behaviour-policy
/// sessions, validation is online with the world's validation users.
fn run_train_world(ctx: &Context, inputs: &Inputs, p: &TrainConfig) -> Result<Outputs, StageError> {
    let device = tch_device(ctx.device());
    if p.real_negatives > 0 || p.clf_sim_data == ClfSimData::Logs || p.popularity {
        return Err(StageError::Input(
            "`real_negatives`, `popularity` and `clf_sim_data: logs` are replay options (they count or sample rated \
             items); a world's users answer every item"
                .into(),
        ));
    }
    let world = world_from_table(inputs.table("world")?)?;
    let smallest = world.p.pool(Dynamics::Sim).len().min(world.p.pool(Dynamics::Real).len());
    if p.session_len > smallest {
        return Err(StageError::Input(format!(
            "`session_len` {} exceeds a pool of the world ({smallest} items)",
            p.session_len
        )));
    }
    // Joint training maps the raw vectors (DARec's maps were fitted on them).
    let joint = load_joint(ctx, inputs, p, device)?;
    let raw = joint.is_some();
    let (_, sim) = world_pool(inputs, "sim_item_vecs", &world, Dynamics::Sim, device, Side::Sim, raw)?;
    let (real_ids, real) = world_pool(inputs, "real_item_vecs", &world, Dynamics::Real, device, Side::Real, raw)?;
    if sim.items.size()[1] != real.items.size()[1] {
        return Err(StageError::Input("`sim_item_vecs` and `real_item_vecs` differ in width".into()));
    }
    let position: HashMap<u32, i64> = real_ids.iter().enumerate().map(|(k, &id)| (id - 1, k as i64)).collect();
    let logged = logs_from_table(inputs.table("logs")?)?;
    let mut logs = Vec::new();
    for l in &logged {
        // Sessions cut into T steps (as the replay logs are).
        for c in 0..l.items.len() / p.session_len {
            let r = c * p.session_len..(c + 1) * p.session_len;
            let actions: Option<Vec<i64>> = l.items[r.clone()].iter().map(|i| position.get(i).copied()).collect();
            let actions =
                actions.ok_or_else(|| StageError::Input("`logs` serve items outside the real pool".into()))?;
            logs.push(Episode { actions, rewards: l.clicks[r].to_vec() });
        }
    }
    // The classifiers' sim side for `clf_sim_data: behaviour`: the behaviour policy's sessions
    // with the sim users and dynamics, over the sim pool.
    let sim_behaviour = (p.clf_sim_data == ClfSimData::Behaviour).then(|| {
        let pool = world.p.pool(Dynamics::Sim);
        let pos: HashMap<u32, i64> = pool.iter().enumerate().map(|(k, &i)| (i, k as i64)).collect();
        world
            .behaviour_sessions(Dynamics::Sim, Population::Sim, world.p.sim_users, 1)
            .into_iter()
            .map(|l| Episode { actions: l.items.iter().map(|i| pos[i]).collect(), rewards: l.clicks })
            .collect::<Vec<_>>()
    });
    // The oracle: the same DQN interacting with the real dynamics (over the real pool, so in the
    // categories setting it also trains on the items it is tested on).
    let (sim, env) = if p.method == Method::Oracle {
        (Domain::raw(real.items.shallow_clone(), Side::Sim), world.env(Dynamics::Real, Population::Sim))
    } else {
        (sim, world.env(Dynamics::Sim, Population::Sim))
    };
    let opts = train_options(p, None, sim_behaviour, false);
    let n = p.iterations;
    let val_curve: RefCell<Vec<(usize, crate::eval::metrics::Summary)>> = RefCell::new(Vec::new());
    let report = |snap: &Snapshot| {
        ctx.check_cancelled()?;
        let done = snap.row.iteration + 1;
        if done.is_multiple_of(p.val_every) || done == n {
            if let Some(items) = snap.real_items {
                let dom = Domain::raw(items.detach(), Side::Real);
                let rows = online_sessions(snap.net, &dom, &world, Population::Val);
                val_curve.borrow_mut().push((done, summarize(&rows.iter().map(|r| r.1).collect::<Vec<_>>())));
            }
        }
        if done.is_multiple_of(10) || done == n {
            ctx.progress(done as f64 / n as f64, &format!("iteration {done}/{n} td {:.4}", snap.row.td_loss));
        }
        Ok(())
    };
    ctx.progress(0.0, "training in the world");
    let trained = train(&sim, &env, Some((&real, &logs)), &opts, joint.as_ref(), device, &report)?;
    ctx.check_cancelled()?;
    let meta = ModelMeta {
        hidden: p.hidden,
        dim: sim.items.size()[1],
        item_bias: p.item_bias,
        popularity: false,
        popularity_per_pool: false,
        session_len: p.session_len,
        rating_max: 1.0,
        reward: RewardMap::Normalized,
        real_sessions: logs.len(),
        alpha: if p.has_delta_r() { p.alpha } else { 0.0 },
    };
    train_outputs(ctx, &trained, real_ids, None, &meta, val_curve.into_inner())
}

/// `irs.eval`: greedy sessions of the trained policy for the users of `test`.
pub fn run_eval(ctx: &Context, inputs: &Inputs, p: &EvalConfig) -> Result<Outputs, StageError> {
    let device = tch_device(ctx.device());
    if p.users.is_some() && !inputs.has("world") {
        return Err(StageError::Input("`users` selects a world's users: bind `world`".into()));
    }
    // irs.train's `real_item_vecs`: exactly the vectors the policy was trained with.
    let (ids, real) = vectors_tensor(inputs, "real_item_vecs", device, true, Side::Real)?;
    let meta = ModelMeta::from_table(inputs.table("model")?)?;
    let (hidden, t, y_max) = (meta.hidden, meta.session_len, meta.rating_max);
    let mut vs = nn::VarStore::new(device);
    let bias = ItemBias {
        sim: None,
        real: meta.item_bias.then_some(real.n_items),
        popularity: meta.popularity,
        popularity_per_pool: meta.popularity_per_pool,
    };
    let real = if meta.popularity {
        let t = inputs.table("real_item_vecs")?;
        let pop = column::<Float32Array>(t, "real_item_vecs", "pop")?;
        if pop.len() as i64 != real.n_items {
            return Err(StageError::Input("`real_item_vecs.pop` is not one value per item".into()));
        }
        real.with_pop(Some(Tensor::from_slice(pop.values()).to_device(device)))
    } else {
        real
    };
    let net = QNet::new(&vs.root(), real.items.size()[1], hidden, bias);
    let Artifact::Weights(w) = inputs.one("weights")? else {
        return Err(StageError::Input("`weights` must be a weights artifact".into()));
    };
    load_weights(&mut vs, w, ctx.scratch())?;
    if inputs.has("world") {
        let world = world_from_table(inputs.table("world")?)?;
        if ids != world.p.pool(Dynamics::Real).iter().map(|&i| i + 1).collect::<Vec<_>>() {
            return Err(StageError::Input("`real_item_vecs` are not of this world's real pool".into()));
        }
        let pop = p.users.unwrap_or_default().population();
        ctx.progress(0.0, &format!("{} online sessions", world.users(pop)));
        return metric_tables(&p.method, &online_sessions(&net, &real, &world, pop));
    }
    if !inputs.has("test") {
        return Err(StageError::Input("bind `test` (replay users) or `world` (an interactive world)".into()));
    }
    let test = Ratings::from_batch(inputs.table("test")?, "test")?;
    let by_user = ratings_by_user(&test);
    let mut rule = Rule::for_scale(y_max);
    rule.reward = p.reward;
    if let Some(r) = p.relevant_above {
        rule.relevant_above = r;
    }
    let feedback = |y: f32| meta.reward.of(y, y_max) as f32;
    let rows = greedy_sessions(&net, &real, &ids, &by_user, t, &feedback, rule);
    metric_tables(&p.method, &rows)
}
