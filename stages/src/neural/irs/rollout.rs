//! Batched sessions with a policy: ε-greedy collection on simulated users, and greedy sessions
//! for evaluation.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::nn;
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
    let h0 = Tensor::zeros([b, net.lstm_hidden()], (Kind::Float, dev));
    let mut state = (h0.shallow_clone(), h0);
    // On the CPU the greedy pick reads Q on the host (a copy of B × n floats, which the host then
    // scans skipping the served items); on an accelerator Q is masked and reduced there, and only
    // the B picks come back.
    let on_host = dev == tch::Device::Cpu;
    let n = dom.n_items as usize;
    let mut mask = (!on_host).then(|| Tensor::zeros([b, dom.n_items], (Kind::Bool, dev)));
    // The served items on the host, for ε's random picks and the host's greedy ones.
    let mut taken = vec![false; users.len() * n];
    let mut eps: Vec<Episode> =
        users.iter().map(|_| Episode { actions: Vec::with_capacity(t), rewards: Vec::with_capacity(t) }).collect();
    tch::no_grad(|| {
        let proj = net.item_proj(dom);
        let steps = t.min(n);
        for step in 0..steps {
            let q = net.q_with(&state.0, &proj, dom);
            let greedy: Greedy = match &mask {
                Some(m) => Greedy::Picked(
                    Vec::<i64>::try_from(
                        &q.masked_fill(m, f64::NEG_INFINITY).argmax(1, false).to_device(tch::Device::Cpu),
                    )
                    .expect("int tensor"),
                ),
                None => Greedy::Scores(Vec::<f32>::try_from(q.view([-1])).expect("float tensor")),
            };
            let mut acts = Vec::with_capacity(users.len());
            for i in 0..users.len() {
                let served = &taken[i * n..(i + 1) * n];
                let a = if epsilon > 0.0 && rng.random::<f64>() < epsilon {
                    loop {
                        let a = rng.random_range(0..dom.n_items);
                        if !served[a as usize] {
                            break a;
                        }
                    }
                } else {
                    match &greedy {
                        Greedy::Picked(g) => g[i],
                        Greedy::Scores(q) => best_unserved(&q[i * n..(i + 1) * n], served),
                    }
                };
                acts.push(a);
            }
            let mut rews = vec![0f32; users.len()];
            session.step(&acts, &mut rews);
            for (i, (e, (&a, &r))) in eps.iter_mut().zip(acts.iter().zip(&rews)).enumerate() {
                e.actions.push(a);
                e.rewards.push(r);
                taken[i * n + a as usize] = true;
            }
            if step + 1 == steps {
                break; // the state after the last response is never used
            }
            let a = Tensor::from_slice(&acts).to_device(dev);
            if let Some(m) = mask.as_mut() {
                let _ = m.index_put_(
                    &[Some(Tensor::arange(b, (Kind::Int64, dev))), Some(a.shallow_clone())],
                    &Tensor::from(true).to_device(dev),
                    false,
                );
            }
            let x = Tensor::cat(
                &[dom.items.index_select(0, &a), Tensor::from_slice(&rews).to_device(dev).unsqueeze(-1)],
                1,
            );
            state = net.step(&x, &state);
        }
    });
    eps
}

/// A step's greedy picks: made on the device, or to be made on the host from Q.
enum Greedy {
    /// One item per user.
    Picked(Vec<i64>),
    /// Q of every item, `B × n` row-major.
    Scores(Vec<f32>),
}

/// The first item of highest `q` among those not `served`: `argmax` of Q with the served items at
/// −∞, as libtorch computes it (the first of equal maxima; a NaN counts as the maximum).
fn best_unserved(q: &[f32], served: &[bool]) -> i64 {
    let mut best: Option<(usize, f32)> = None;
    for (i, (&v, &s)) in q.iter().zip(served).enumerate() {
        if s {
            continue;
        }
        match best {
            None => best = Some((i, v)),
            Some((_, m)) if m.is_nan() => break,
            Some((_, m)) if v > m || v.is_nan() => best = Some((i, v)),
            _ => {}
        }
    }
    best.map_or(0, |(i, _)| i as i64)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_pick_equals_libtorchs_masked_argmax() {
        // Rows with ties (values on a coarse grid), served items and a NaN: the host scan must
        // pick what `masked_fill(−∞).argmax` picks on the device path, so both paths roll out the
        // same sessions.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (b, n) = (200usize, 37usize);
        let mut q: Vec<f32> = (0..b * n).map(|_| f32::from(rng.random_range(0u8..6)) * 0.5).collect();
        let served: Vec<bool> = (0..b * n).map(|k| k % n != 0 && rng.random::<f64>() < 0.4).collect();
        q[5 * n + 9] = f32::NAN;
        let qt = Tensor::from_slice(&q).view([b as i64, n as i64]);
        let mask = Tensor::from_slice(&served).view([b as i64, n as i64]);
        let want = Vec::<i64>::try_from(qt.masked_fill(&mask, f64::NEG_INFINITY).argmax(1, false)).unwrap();
        let got: Vec<i64> =
            (0..b).map(|i| best_unserved(&q[i * n..(i + 1) * n], &served[i * n..(i + 1) * n])).collect();
        assert_eq!(got, want);
        let ties = (0..b).filter(|&i| q[i * n..(i + 1) * n].iter().filter(|&&v| v == 2.5).count() > 1).count();
        assert!(ties > 10, "the rows must hold ties ({ties})");
    }
}
