//! Batched sessions with a policy: ε-greedy collection on simulated users, and greedy sessions
//! for evaluation.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::nn::{self, RNN};
use tch::{Kind, Tensor};

use crate::env::session::Env;
use crate::neural::irs::episode::{Domain, Episode};
use crate::neural::irs::qnet::{ItemBias, QNet};

/// Runs `users.len()` sessions of length `t` at once: ε-greedy over `dom`'s items (no repeats),
/// served by `env` (its response stream `stream`); the policy observes each reward.
#[allow(clippy::too_many_arguments)] // the policy, the pool, the environment and the exploration
pub fn rollout(
    net: &QNet,
    dom: &Domain,
    env: &dyn Env,
    users: &[usize],
    t: usize,
    epsilon: f64,
    rng: &mut ChaCha8Rng,
    stream: u64,
) -> Vec<Episode> {
    let mut session = env.start(users, stream);
    let dev = dom.items.device();
    let b = users.len() as i64;
    let mut state = net.lstm.zero_state(b);
    let mut h = Tensor::zeros([b, net.lstm_hidden()], (Kind::Float, dev));
    let mut mask = Tensor::zeros([b, dom.n_items], (Kind::Bool, dev));
    // The same mask on the host, for ε's random picks (no device → host copy per step).
    let mut taken = vec![false; users.len() * dom.n_items as usize];
    let mut eps: Vec<Episode> =
        users.iter().map(|_| Episode { actions: Vec::with_capacity(t), rewards: Vec::with_capacity(t) }).collect();
    tch::no_grad(|| {
        let proj = net.item_proj(dom);
        for _ in 0..t.min(dom.n_items as usize) {
            let q = net.q_with(&h, &proj, dom).masked_fill(&mask, f64::NEG_INFINITY);
            let greedy: Vec<i64> =
                Vec::<i64>::try_from(&q.argmax(1, false).to_device(tch::Device::Cpu)).expect("int tensor");
            let mut acts = Vec::with_capacity(users.len());
            for i in 0..users.len() {
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
                acts.push(a);
            }
            let mut rews = vec![0f32; users.len()];
            session.step(&acts, &mut rews);
            for (i, (e, (&a, &r))) in eps.iter_mut().zip(acts.iter().zip(&rews)).enumerate() {
                e.actions.push(a);
                e.rewards.push(r);
                taken[i * dom.n_items as usize + a as usize] = true;
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

/// Greedy sessions of the policy in `net_vs` for `users` of `env` (response stream 0).
pub fn greedy_with_feedback(
    net_vs: &nn::VarStore,
    dom: &Domain,
    users: &[usize],
    t: usize,
    hidden: i64,
    bias: ItemBias,
    env: &dyn Env,
) -> Vec<Vec<i64>> {
    let d = dom.items.size()[1];
    let mut vs = nn::VarStore::new(dom.items.device());
    let net = QNet::new(&vs.root(), d, hidden, bias);
    vs.copy(net_vs).expect("same architecture");
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    rollout(&net, dom, env, users, t, 0.0, &mut rng, 0).into_iter().map(|e| e.actions).collect()
}
