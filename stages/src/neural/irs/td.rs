//! The TD loss over whole replayed episodes, Huber loss: double-DQN targets over the items not
//! yet recommended (sim rollouts), or the logged next action (real logs).

use tch::{Kind, Tensor};

pub use crate::neural::irs::config::Bootstrap;
use crate::neural::irs::episode::{batch_tensors, Domain, Episode};
use crate::neural::irs::qnet::QNet;

/// How a batch's TD targets are formed.
#[derive(Debug, Clone, Copy)]
pub struct TdRule {
    /// Discount γ.
    pub gamma: f64,
    /// How the next state is valued.
    pub bootstrap: Bootstrap,
    /// Weight of the conservative (CQL) term (0 = none).
    pub conservative: f64,
}

/// Sets `q` (`B × T × n`, Q at s_{t+1}) to −∞ at every item recommended up to step t: the
/// B·T(T+1)/2 entries (b, t, a_{b,j}) for j ≤ t, written by index rather than through a
/// materialised `B × T × n` cumulative mask.
fn mask_served(q: &mut Tensor, eps: &[Episode]) {
    let t = eps[0].actions.len();
    let n = eps.len() * t * (t + 1) / 2;
    let (mut bi, mut ti, mut ai) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for (b, e) in eps.iter().enumerate() {
        for step in 0..t {
            for &a in &e.actions[..=step] {
                bi.push(b as i64);
                ti.push(step as i64);
                ai.push(a);
            }
        }
    }
    let dev = q.device();
    let idx = [bi, ti, ai].map(|v| Some(Tensor::from_slice(&v).to_device(dev)));
    let _ = q.index_put_(&idx, &Tensor::from(f32::NEG_INFINITY).to_device(dev), false);
}

/// Huber TD loss of `episodes` in `dom` (γ-discounted; the next state valued as `rule.bootstrap`
/// says; plus the CQL term when `rule.conservative` > 0).
/// `bonus` (`B × T`, e.g. α·Δr) is added to the rewards of the TD target only: the LSTM still
/// sees the observed rewards. `negatives` (`B × T × k` items and their 0/1 weights) are extra
/// actions of reward 0 at each step, whose target is the step's discounted next value (the
/// session goes on as logged); their Huber loss (weighted mean) is added.
pub fn td_loss(
    net: &QNet,
    target: &QNet,
    dom: &Domain,
    eps: &[Episode],
    rule: TdRule,
    bonus: Option<&Tensor>,
    negatives: Option<&(Tensor, Tensor)>,
) -> Tensor {
    let TdRule { gamma, bootstrap, conservative } = rule;
    let dev = dom.items.device();
    let t = eps[0].actions.len() as i64;
    let b = eps.len() as i64;
    let (actions, rewards) = batch_tensors(eps, dev);
    let s = net.states(&dom.items, &actions, &rewards); // B × (T+1) × H
    let proj = net.item_proj(dom);
    // Q over the whole pool with a gradient only where a term needs it (the negatives, CQL's
    // soft maximum); otherwise the loss sees Q(s_t, a_t) alone, and its gradient flows through
    // the B·T taken items rather than a `B × T × n` product.
    let q = (negatives.is_some() || conservative > 0.0).then(|| net.q_with(&s.narrow(1, 0, t), &proj, dom));
    let q_sa = match &q {
        Some(q) => q.gather(2, &actions.unsqueeze(-1), false).squeeze_dim(-1),
        None => net.q_at(&s.narrow(1, 0, t), &proj, dom, &actions),
    };
    let (next, future) = tch::no_grad(|| {
        let st = target.states(&dom.items, &actions, &rewards).narrow(1, 1, t); // s_{t+1} for the target
        let tproj = target.item_proj(dom);
        let best = match bootstrap {
            Bootstrap::Max => {
                // Double DQN: a plain max over hundreds of never-seen items overestimates. The
                // online network picks the next action, the target values only that one.
                let mut online_next = match &q {
                    // The online Q at s_1 … s_{T−1} is the one above; only s_T's is new.
                    Some(q) => {
                        let last = net.q_with(&s.narrow(1, t, 1).detach(), &proj, dom);
                        Tensor::cat(&[q.narrow(1, 1, t - 1).detach(), last], 1)
                    }
                    None => net.q_with(&s.narrow(1, 1, t).detach(), &proj.detach(), dom),
                };
                mask_served(&mut online_next, eps);
                let a_star = online_next.argmax(2, true);
                let best = target.q_at(&st, &tproj, dom, &a_star.squeeze_dim(-1));
                // A pool exhausted by the session has no next action (its argmax is −∞).
                let exhausted = online_next.gather(2, &a_star, false).squeeze_dim(-1).isinf();
                best.masked_fill(&exhausted, 0.0)
            }
            Bootstrap::Logged => {
                // a_{t+1} for t < T − 1 (the last step's value is masked as terminal below).
                let next_a = Tensor::cat(&[actions.narrow(1, 1, t - 1), actions.narrow(1, t - 1, 1)], 1);
                target.q_at(&st, &tproj, dom, &next_a)
            }
        };
        // The last step is terminal.
        let terminal =
            Tensor::ones([b, t], (Kind::Float, dev)).index_fill(1, &Tensor::from_slice(&[t - 1]).to_device(dev), 0.0);
        let r = match bonus {
            Some(x) => &rewards + x,
            None => rewards.shallow_clone(),
        };
        let future = best * terminal * gamma;
        (r + &future, future)
    });
    let mut td = q_sa.huber_loss(&next, tch::Reduction::Mean, 1.0);
    if let Some((neg, w)) = negatives {
        let q_neg = q.as_ref().expect("computed with negatives").gather(2, neg, false); // B × T × k
        let target_neg = future.unsqueeze(-1).expand_as(&q_neg);
        let per = q_neg.huber_loss(&target_neg, tch::Reduction::None, 1.0) * w;
        td += per.sum(Kind::Float) / w.sum(Kind::Float).clamp_min(1.0);
    }
    if conservative > 0.0 {
        // CQL(H) (Kumar et al. 2020): push down a soft maximum of Q over the pool and up the
        // logged action. Logged sessions hold rated items only, so without it nothing tells the
        // policy that the items the logs never show are the ones users leave unrated.
        let q = q.as_ref().expect("computed with CQL");
        let gap = (q.logsumexp(&[2i64][..], false) - &q_sa).mean(Kind::Float);
        td + gap * conservative
    } else {
        td
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use tch::nn;

    use super::*;
    use crate::neural::irs::episode::Side;
    use crate::neural::irs::qnet::ItemBias;

    /// Episodes of `t` distinct random items of `n` with random rewards.
    fn episodes(rng: &mut ChaCha8Rng, b: usize, t: usize, n: i64) -> Vec<Episode> {
        (0..b)
            .map(|_| {
                let mut items: Vec<i64> = (0..n).collect();
                let (picked, _) = rand::seq::SliceRandom::partial_shuffle(&mut items[..], rng, t);
                Episode { actions: picked.to_vec(), rewards: (0..t).map(|_| rng.random_range(-1.0..1.0)).collect() }
            })
            .collect()
    }

    #[test]
    fn masking_by_index_masks_exactly_the_items_served_so_far() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (b, t, n) = (3, 6, 10i64);
        let eps = episodes(&mut rng, b, t, n);
        let mut q = Tensor::zeros([b as i64, t as i64, n], (Kind::Float, tch::Device::Cpu));
        mask_served(&mut q, &eps);
        let got = Vec::<bool>::try_from(q.isinf().view([-1])).unwrap();
        for (bi, e) in eps.iter().enumerate() {
            for step in 0..t {
                for item in 0..n {
                    let served = e.actions[..=step].contains(&item);
                    assert_eq!(
                        got[(bi * t + step) * n as usize + item as usize],
                        served,
                        "b {bi} t {step} item {item}"
                    );
                }
            }
        }
    }

    /// The direct form of the loss, with its gradient: Q over the whole pool for every state, the
    /// taken and the bootstrapped actions gathered from it, a materialised cumulative mask and the
    /// max's −∞ test — what td_loss computed before it reused Q, masked by index and gathered only
    /// the actions it needs.
    fn direct(net: &QNet, target: &QNet, dom: &Domain, eps: &[Episode], bootstrap: Bootstrap) -> Tensor {
        let cpu = tch::Device::Cpu;
        let (actions, rewards) = batch_tensors(eps, cpu);
        let (b, t) = (actions.size()[0], actions.size()[1]);
        let s = net.states(&dom.items, &actions, &rewards);
        let q_sa = net.q(&s.narrow(1, 0, t), dom).gather(2, &actions.unsqueeze(-1), false).squeeze_dim(-1);
        let best = tch::no_grad(|| {
            let qn = target.q(&target.states(&dom.items, &actions, &rewards).narrow(1, 1, t), dom);
            match bootstrap {
                Bootstrap::Max => {
                    let mask = actions.one_hot(dom.n_items).to_kind(Kind::Float).cumsum(1, Kind::Float).gt(0.0);
                    let online_next = net.q(&s.narrow(1, 1, t), dom).masked_fill(&mask, f64::NEG_INFINITY);
                    let best = qn.gather(2, &online_next.argmax(2, true), false).squeeze_dim(-1);
                    best.masked_fill(&online_next.amax(&[2i64][..], false).isinf(), 0.0)
                }
                Bootstrap::Logged => {
                    let next_a = Tensor::cat(&[actions.narrow(1, 1, t - 1), actions.narrow(1, t - 1, 1)], 1);
                    qn.gather(2, &next_a.unsqueeze(-1), false).squeeze_dim(-1)
                }
            }
        });
        let terminal = Tensor::ones([b, t], (Kind::Float, cpu)).index_fill(1, &Tensor::from_slice(&[t - 1]), 0.0);
        q_sa.huber_loss(&(&rewards + best * terminal * 0.9), tch::Reduction::Mean, 1.0)
    }

    /// The gradient of `loss` with respect to every variable of `vs`, flattened, by name.
    fn gradients(vs: &nn::VarStore, loss: &Tensor) -> Vec<(String, Vec<f32>)> {
        for v in vs.trainable_variables() {
            let mut g = v.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        loss.backward();
        let mut out: Vec<(String, Vec<f32>)> = vs
            .variables()
            .into_iter()
            .map(|(k, v)| {
                // A variable the loss does not reach (the other pool's bias) has no gradient.
                let g = v.grad();
                let g = if g.defined() { g.reshape([-1]) } else { v.zeros_like().reshape([-1]) };
                (k, Vec::<f32>::try_from(g).unwrap())
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn the_td_loss_and_its_gradient_equal_their_direct_form() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let (d, h, n, t) = (8i64, 16i64, 12i64, 7usize);
        let cpu = tch::Device::Cpu;
        tch::manual_seed(1);
        let (vs, tvs) = (nn::VarStore::new(cpu), nn::VarStore::new(cpu));
        let bias = ItemBias { sim: Some(n), real: Some(n), ..Default::default() };
        let net = QNet::new(&vs.root(), d, h, bias);
        let target = QNet::new(&tvs.root(), d, h, bias);
        // Item biases away from 0, so the gathered bias is part of what is compared.
        tch::no_grad(|| {
            for (_, mut v) in vs.variables().into_iter().chain(tvs.variables()).filter(|(k, _)| k.starts_with("b_")) {
                v.copy_(&Tensor::randn([n], (Kind::Float, cpu)));
            }
        });
        let items = Tensor::randn([n, d], (Kind::Float, cpu));
        // t = n: the last step's next state has no item left (the exhausted case).
        for (side, bootstrap, b, t) in [
            (Side::Sim, Bootstrap::Max, 5, t),
            (Side::Sim, Bootstrap::Max, 2, n as usize),
            (Side::Real, Bootstrap::Logged, 5, t),
        ] {
            let dom = Domain::new(items.shallow_clone(), side);
            let eps = episodes(&mut rng, b, t, n);
            let rule = TdRule { gamma: 0.9, bootstrap, conservative: 0.0 };
            let got = td_loss(&net, &target, &dom, &eps, rule, None, None);
            let want = direct(&net, &target, &dom, &eps, bootstrap);
            let (g, w) = (got.double_value(&[]), want.double_value(&[]));
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{bootstrap:?} b {b} t {t}: {g} vs {w}");
            let (gg, wg) = (gradients(&vs, &got), gradients(&vs, &want));
            let mut nonzero = 0;
            for ((name, x), (_, y)) in gg.iter().zip(&wg) {
                // Equal up to float rounding, relative to the variable's largest entry.
                let scale = y.iter().fold(0f32, |m, c| m.max(c.abs()));
                for (a, c) in x.iter().zip(y) {
                    assert!((a - c).abs() <= 1e-4 * scale, "{bootstrap:?} {name}: {a} vs {c} (largest {scale})");
                    nonzero += usize::from(*c != 0.0);
                }
            }
            assert!(nonzero > 100, "the gradients compared are mostly zero ({nonzero})");
        }
    }
}
