//! The Q network: an LSTM over x_t = [e_{a_t}, r_t] (h_0 = 0), Q(s, a) = ⟨g(s), W e_a⟩ + b + b_a
//! over every item of the active domain, where b_a is a per-item bias of that domain's pool
//! (`item_bias`; without it Q has the scalar b only).
//!
//! The item term can only transfer what the two domains' vectors share, and the vectors come from
//! two SVDs whose bases agree at best in the leading direction. A per-item bias of the real pool
//! learns only from the logged sessions, which hold rated items only: it learns what rated items
//! are worth, not which items go unrated, so it cannot learn popularity from them. Measured on the
//! quickstart and the anime sample, it changed validation reward by less than the seed spread
//! (README, "DQN-R"), so it is off by default.

use tch::nn::{self, Module, RNN};
use tch::Tensor;

use crate::neural::irs::episode::{Domain, Side};

/// The optimizer parameter group of the per-item biases (every other variable is in group 0).
pub const BIAS_GROUP: usize = 1;

/// Pool sizes of the per-item biases (`None`: no bias for that side).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemBias {
    /// Items of the sim pool.
    pub sim: Option<i64>,
    /// Items of the real pool.
    pub real: Option<i64>,
}

/// The Q network.
pub struct QNet {
    pub(crate) lstm: nn::LSTM,
    g: nn::Linear,
    w: nn::Linear,
    b: Tensor,
    b_sim: Option<Tensor>,
    b_real: Option<Tensor>,
}

impl QNet {
    /// Layers under `p` for item vectors of width `d`, an LSTM of width `hidden` and the per-item
    /// biases `bias` (variables `b_sim`, `b_real`, zero at start, in parameter group
    /// [`BIAS_GROUP`] so they can learn at their own rate).
    pub fn new(p: &nn::Path, d: i64, hidden: i64, bias: ItemBias) -> Self {
        Self {
            lstm: nn::lstm(p / "lstm", d + 1, hidden, Default::default()),
            g: nn::linear(p / "g", hidden, d, Default::default()),
            w: nn::linear(p / "w", d, d, nn::LinearConfig { bias: false, ..Default::default() }),
            b: p.zeros("b", &[1]),
            b_sim: bias.sim.map(|n| p.set_group(BIAS_GROUP).zeros("b_sim", &[n])),
            b_real: bias.real.map(|n| p.set_group(BIAS_GROUP).zeros("b_real", &[n])),
        }
    }

    /// Q of every item of `dom` for states `h` (`… × hidden`) → `… × n_items`.
    pub fn q(&self, h: &Tensor, dom: &Domain) -> Tensor {
        self.q_with(h, &self.item_proj(dom), dom)
    }

    /// The items' side of the bilinear term, W e_a for every item of `dom` (`n_items × D`): the
    /// same for every state, so a rollout computes it once rather than at every step.
    pub fn item_proj(&self, dom: &Domain) -> Tensor {
        self.w.forward(&dom.items)
    }

    /// [`QNet::q`] with the items' side `proj` = [`QNet::item_proj`] of `dom` given.
    pub fn q_with(&self, h: &Tensor, proj: &Tensor, dom: &Domain) -> Tensor {
        let q = self.g.forward(h).matmul(&proj.tr()) + &self.b;
        let bias = match dom.side {
            Side::Sim => self.b_sim.as_ref(),
            Side::Real => self.b_real.as_ref(),
        };
        match bias {
            Some(b) => q + b,
            None => q,
        }
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

impl QNet {
    /// The LSTM width.
    pub fn lstm_hidden(&self) -> i64 {
        self.g.ws.size()[1]
    }
}
