//! Batched sessions with a policy: ε-greedy collection on simulated users, and greedy sessions
//! for evaluation.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::nn;
use tch::{Kind, Tensor};

use crate::env::session::Env;
use crate::neural::irs::episode::{Domain, Episode};
use crate::neural::irs::host_step::HostStepper;
use crate::neural::irs::qnet::{ItemBias, QNet, Stepper};

/// Runs `users.len()` sessions of length `t` at once: ε-greedy over `dom`'s items (no repeats),
/// served by `env` (its response stream `stream`); the policy observes each reward.
///
/// On the CPU the network runs as a [`HostStepper`] (Q read and picked on the host, in place);
/// on an accelerator as a [`Stepper`], where Q is masked and reduced on the device and only the
/// picks come back. Both give the same sessions up to float rounding.
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
    let on_host = dom.items.device() == tch::Device::Cpu;
    tch::no_grad(|| {
        let mut policy: Box<dyn Greedy> = if on_host {
            Box::new(HostGreedy { net: HostStepper::new(net.stepper(dom), users.len()), n: dom.n_items as usize })
        } else {
            Box::new(DeviceGreedy::new(net.stepper(dom), dom, users.len()))
        };
        run(policy.as_mut(), dom.n_items, env, users, t, epsilon, rng, stream)
    })
}

/// What [`run`] asks of the network: the greedy picks of some sessions, and the step after each
/// response.
trait Greedy {
    /// The greedy pick (the first unserved item of highest Q) of each session in `greedy`, in that
    /// order, given each session's served items (`eps[i].actions`, flagged in `taken`, `n` per
    /// session). `first`: no session has been served yet (every state is h_0).
    fn picks(&mut self, greedy: &[usize], first: bool, eps: &[Episode], taken: &[bool]) -> Vec<i64>;
    /// Every session was served `acts` and responded `rews`.
    fn observe(&mut self, acts: &[i64], rews: &[f32]);
}

/// The loop of [`rollout`] over a network `policy`.
#[allow(clippy::too_many_arguments)]
fn run(
    policy: &mut dyn Greedy,
    n_items: i64,
    env: &dyn Env,
    users: &[usize],
    t: usize,
    epsilon: f64,
    rng: &mut ChaCha8Rng,
    stream: u64,
) -> Vec<Episode> {
    let mut session = env.start(users, stream);
    let n = n_items as usize;
    // The served items on the host, for ε's random picks and the host's greedy ones.
    let mut taken = vec![false; users.len() * n];
    let mut eps: Vec<Episode> =
        users.iter().map(|_| Episode { actions: Vec::with_capacity(t), rewards: Vec::with_capacity(t) }).collect();
    let steps = t.min(n);
    let mut acts = vec![0i64; users.len()];
    let mut rews = vec![0f32; users.len()];
    let mut greedy = Vec::with_capacity(users.len());
    for step in 0..steps {
        // ε first, user by user (the random picks draw in the order they always did); Q is then
        // computed for the users who exploit only.
        greedy.clear();
        for (i, a) in acts.iter_mut().enumerate() {
            if epsilon > 0.0 && rng.random::<f64>() < epsilon {
                let served = &taken[i * n..(i + 1) * n];
                *a = loop {
                    let a = rng.random_range(0..n_items);
                    if !served[a as usize] {
                        break a;
                    }
                };
            } else {
                greedy.push(i);
            }
        }
        if !greedy.is_empty() {
            let picks = policy.picks(&greedy, step == 0, &eps, &taken);
            for (&i, &a) in greedy.iter().zip(&picks) {
                acts[i] = a;
            }
        }
        session.step(&acts, &mut rews);
        for (i, (e, (&a, &r))) in eps.iter_mut().zip(acts.iter().zip(&rews)).enumerate() {
            e.actions.push(a);
            e.rewards.push(r);
            taken[i * n + a as usize] = true;
        }
        if step + 1 == steps {
            break; // the state after the last response is never used
        }
        policy.observe(&acts, &rews);
    }
    eps
}

/// [`Greedy`] on the CPU: Q rows on the host, picked in place by [`best_unserved_fast`].
struct HostGreedy {
    net: HostStepper,
    n: usize,
}

impl Greedy for HostGreedy {
    fn picks(&mut self, greedy: &[usize], first: bool, eps: &[Episode], taken: &[bool]) -> Vec<i64> {
        let n = self.n;
        // At the first step every state is h_0 = 0 and nothing is served, so every exploiting
        // session has the same Q row and the same pick: one row is computed.
        if first {
            let row = self.net.q(None, 1);
            let pick = best_unserved_fast(row, &[], &taken[..n]);
            return vec![pick; greedy.len()];
        }
        let all = greedy.len() == eps.len();
        let q = self.net.q((!all).then_some(greedy), greedy.len());
        q.chunks_exact_mut(n)
            .zip(greedy)
            .map(|(row, &i)| best_unserved_fast(row, &eps[i].actions, &taken[i * n..(i + 1) * n]))
            .collect()
    }

    fn observe(&mut self, acts: &[i64], rews: &[f32]) {
        self.net.step(acts, rews);
    }
}

/// [`Greedy`] on an accelerator: the state, Q and the served items' mask stay on the device.
struct DeviceGreedy {
    net: Stepper,
    state: (Tensor, Tensor),
    mask: Tensor,
    q_buf: Tensor,
    first: bool,
}

impl DeviceGreedy {
    fn new(net: Stepper, dom: &Domain, b: usize) -> Self {
        let dev = dom.items.device();
        let h0 = Tensor::zeros([b as i64, net.w_hh_t.size()[0]], (Kind::Float, dev));
        Self {
            net,
            state: (h0.shallow_clone(), h0),
            mask: Tensor::zeros([b as i64, dom.n_items], (Kind::Bool, dev)),
            q_buf: Tensor::empty([b as i64, dom.n_items], (Kind::Float, dev)),
            first: true,
        }
    }
}

impl Greedy for DeviceGreedy {
    fn picks(&mut self, greedy: &[usize], first: bool, _eps: &[Episode], _taken: &[bool]) -> Vec<i64> {
        let dev = self.q_buf.device();
        let b = self.mask.size()[0] as usize;
        let k = if first { 1 } else { greedy.len() };
        let rows = (!first && k < b).then(|| {
            let idx: Vec<i64> = greedy.iter().map(|&i| i as i64).collect();
            Tensor::from_slice(&idx).to_device(dev)
        });
        let (h, m) = match &rows {
            Some(r) => (self.state.0.index_select(0, r), self.mask.index_select(0, r)),
            None => (self.state.0.narrow(0, 0, k as i64), self.mask.narrow(0, 0, k as i64)),
        };
        let q = self.q_buf.narrow(0, 0, k as i64);
        self.net.q_into(&h, &q);
        let picks = q.masked_fill(&m, f64::NEG_INFINITY).argmax(1, false).to_device(tch::Device::Cpu);
        let picks = Vec::<i64>::try_from(&picks).expect("int tensor");
        if first {
            vec![picks[0]; greedy.len()]
        } else {
            picks
        }
    }

    fn observe(&mut self, acts: &[i64], rews: &[f32]) {
        let dev = self.q_buf.device();
        let b = acts.len() as i64;
        let acts_t = Tensor::from_slice(acts).to_device(dev);
        let _ = self.mask.index_put_(
            &[Some(Tensor::arange(b, (Kind::Int64, dev))), Some(acts_t)],
            &Tensor::from(true).to_device(dev),
            false,
        );
        let rews = Tensor::from_slice(rews).to_device(dev);
        self.state = self.net.step(acts, &rews, &self.state, self.first);
        self.first = false;
    }
}

/// [`best_unserved`] of a row whose `served` items are listed in `served_items` (and flagged in
/// `served`), computed by vectorisable passes: the served items are set to −∞ in `q` (which is
/// overwritten), then the first NaN, else the first maximum, is the pick. A row whose unserved
/// maximum is −∞ goes to [`best_unserved`], so the pick is always an unserved item.
fn best_unserved_fast(q: &mut [f32], served_items: &[i64], served: &[bool]) -> i64 {
    for &a in served_items {
        q[a as usize] = f32::NEG_INFINITY;
    }
    // One pass for the lanes' maxima and whether any value is NaN; no early exits, so that it
    // vectorises.
    const L: usize = 16;
    let (mut lanes, mut nan) = ([f32::NEG_INFINITY; L], [false; L]);
    let chunks = q.chunks_exact(L);
    let tail = chunks.remainder();
    for c in chunks {
        for ((m, x), &v) in lanes.iter_mut().zip(nan.iter_mut()).zip(c) {
            *m = if v > *m { v } else { *m };
            *x |= v.is_nan();
        }
    }
    if nan.iter().any(|&x| x) || tail.iter().any(|v| v.is_nan()) {
        return q.iter().position(|v| v.is_nan()).expect("a NaN is in the row") as i64;
    }
    let max = tail.iter().chain(&lanes).fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    if max == f32::NEG_INFINITY {
        return best_unserved(q, served);
    }
    // The first maximum: the first chunk holding it, found a chunk at a time.
    let first =
        q.chunks(L).position(|c| c.iter().fold(false, |f, &v| f | (v == max))).expect("the maximum is in the row");
    (first * L + q[first * L..].iter().position(|&v| v == max).expect("in this chunk")) as i64
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
    fn the_host_and_the_device_policies_roll_out_the_same_sessions() {
        // The CPU's `HostGreedy` and the accelerators' `DeviceGreedy` (run here on the CPU) must
        // serve the same items: ε's draws, the first step's shared pick, subsets of exploiting
        // users, no repeats, the state after each response.
        use crate::env::session::Replay;
        use crate::neural::irs::episode::Side;
        let cpu = tch::Device::Cpu;
        tch::manual_seed(9);
        let vs = nn::VarStore::new(cpu);
        let (d, h, n, b, t) = (8i64, 16i64, 40i64, 12usize, 15usize);
        let net = crate::neural::irs::qnet::testing::random_net(&vs, d, h, ItemBias::default(), 0.5);
        let dom = Domain::raw(Tensor::randn([n, d], (Kind::Float, cpu)), Side::Sim);
        let reward = |u: usize, a: i64| ((u as i64 * 7 + a * 3) % 5) as f32 / 4.0;
        let env = Replay::new(30, &reward);
        let users: Vec<usize> = (0..b).map(|i| (i * 7) % 30).collect();
        let sessions = |host: bool| {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            tch::no_grad(|| {
                let mut policy: Box<dyn Greedy> = if host {
                    Box::new(HostGreedy { net: HostStepper::new(net.stepper(&dom), b), n: n as usize })
                } else {
                    Box::new(DeviceGreedy::new(net.stepper(&dom), &dom, b))
                };
                run(policy.as_mut(), n, &env, &users, t, 0.3, &mut rng, 0)
            })
        };
        let (host, device) = (sessions(true), sessions(false));
        for (i, (a, b)) in host.iter().zip(&device).enumerate() {
            assert_eq!(a.actions, b.actions, "session {i}");
            assert_eq!(a.rewards, b.rewards, "session {i}");
            let mut seen = a.actions.clone();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), t, "session {i} repeats an item");
        }
        // The greedy part is not one fixed list: sessions differ.
        assert!(host.iter().any(|e| e.actions != host[0].actions));
    }

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

    #[test]
    fn the_fast_pick_equals_the_scan() {
        // Rows with ties, served items, NaNs (served and not), −∞ values and rows whose every
        // unserved item is −∞: the vectorised pick must be the scan's pick on every row.
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let n = 53usize; // not a multiple of the 16 lanes: the tail counts too
        let mut checked = [0usize; 3]; // NaN rows, −∞ fallbacks, ordinary rows
        for row in 0..3000 {
            let mut q: Vec<f32> = (0..n).map(|_| f32::from(rng.random_range(0u8..6)) * 0.5 - 1.0).collect();
            let served_items: Vec<i64> = (0..n as i64).filter(|_| rng.random::<f64>() < 0.3).collect();
            let mut served = vec![false; n];
            for &a in &served_items {
                served[a as usize] = true;
            }
            match row % 5 {
                0 => q[rng.random_range(0..n)] = f32::NAN,
                1 => q.iter_mut().zip(&served).filter(|(_, &s)| !s).for_each(|(v, _)| *v = f32::NEG_INFINITY),
                2 => q[rng.random_range(0..n)] = f32::NEG_INFINITY,
                _ => {}
            }
            let want = best_unserved(&q, &served);
            let unserved_nan = q.iter().zip(&served).any(|(v, &s)| v.is_nan() && !s);
            let got = best_unserved_fast(&mut q.clone(), &served_items, &served);
            assert_eq!(got, want, "row {row}");
            assert!(!served[got as usize] || served.iter().all(|&s| s), "row {row}: a served pick");
            let all_inf = q.iter().zip(&served).all(|(&v, &s)| s || v == f32::NEG_INFINITY);
            checked[if unserved_nan {
                0
            } else if all_inf {
                1
            } else {
                2
            }] += 1;
        }
        assert!(checked.iter().all(|&c| c > 100), "every kind of row is checked: {checked:?}");
    }
}
