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

/// Cumulative masks of recommended items: `B × T × n` with true where a_0..a_t were recommended.
fn cumulative_mask(actions: &Tensor, n: i64) -> Tensor {
    let one_hot = actions.one_hot(n).to_kind(Kind::Float); // B × T × n
    one_hot.cumsum(1, Kind::Float).gt(0.0)
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
    let q = net.q(&s.narrow(1, 0, t), dom); // B × T × n
    let q_sa = q.gather(2, &actions.unsqueeze(-1), false).squeeze_dim(-1);
    let (next, future) = tch::no_grad(|| {
        let st = target.states(&dom.items, &actions, &rewards);
        let qn = target.q(&st.narrow(1, 1, t), dom); // Q_target(s_{t+1}, ·)
        let best = match bootstrap {
            Bootstrap::Max => {
                // Double DQN: a plain max over hundreds of never-seen items overestimates.
                let mask = cumulative_mask(&actions, dom.n_items);
                let online_next = net.q(&s.narrow(1, 1, t).detach(), dom).masked_fill(&mask, f64::NEG_INFINITY);
                let a_star = online_next.argmax(2, true);
                let best = qn.gather(2, &a_star, false).squeeze_dim(-1);
                // A pool exhausted by the session has no next action.
                let exhausted = online_next.amax(&[2i64][..], false).isinf();
                best.masked_fill(&exhausted, 0.0)
            }
            Bootstrap::Logged => {
                // a_{t+1} for t < T − 1 (the last step's value is masked as terminal below).
                let next_a = Tensor::cat(&[actions.narrow(1, 1, t - 1), actions.narrow(1, t - 1, 1)], 1);
                qn.gather(2, &next_a.unsqueeze(-1), false).squeeze_dim(-1)
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
        let q_neg = q.gather(2, neg, false); // B × T × k
        let target_neg = future.unsqueeze(-1).expand_as(&q_neg);
        let per = q_neg.huber_loss(&target_neg, tch::Reduction::None, 1.0) * w;
        td += per.sum(Kind::Float) / w.sum(Kind::Float).clamp_min(1.0);
    }
    if conservative > 0.0 {
        // CQL(H) (Kumar et al. 2020): push down a soft maximum of Q over the pool and up the
        // logged action. Logged sessions hold rated items only, so without it nothing tells the
        // policy that the items the logs never show are the ones users leave unrated.
        let gap = (q.logsumexp(&[2i64][..], false) - &q_sa).mean(Kind::Float);
        td + gap * conservative
    } else {
        td
    }
}
