//! The TD loss: double-DQN targets over whole replayed episodes, Huber loss, recommended items
//! masked.

use tch::{Kind, Tensor};

use crate::neural::irs::episode::{batch_tensors, Domain, Episode};
use crate::neural::irs::qnet::QNet;

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
    let (actions, rewards) = batch_tensors(eps, dev);
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
