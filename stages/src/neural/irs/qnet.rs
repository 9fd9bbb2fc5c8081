//! The Q network: an LSTM over x_t = [e_{a_t}, r_t] (h_0 = 0), Q(s, a) = ⟨g(s), W e_a⟩ + b over
//! every item of the active domain.

use tch::nn::{self, Module, RNN};
use tch::Tensor;

/// The Q network.
pub struct QNet {
    pub(crate) lstm: nn::LSTM,
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

impl QNet {
    /// The LSTM width.
    pub fn lstm_hidden(&self) -> i64 {
        self.g.ws.size()[1]
    }
}
