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
use tch::{Kind, Tensor};

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
    lstm: nn::LSTM,
    /// The LSTM's own variables (w_ih, w_hh, b_ih, b_hh), shared with `lstm`, for one step at a
    /// time by `Tensor::lstm_cell` ([`QNet::step`]).
    cell: [Tensor; 4],
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
        let lp = p / "lstm";
        let lstm = nn::lstm(&lp, d + 1, hidden, Default::default());
        let var = |name: &str| lp.get(name).expect("nn::lstm creates it");
        Self {
            lstm,
            cell: [var("weight_ih_l0"), var("weight_hh_l0"), var("bias_ih_l0"), var("bias_hh_l0")],
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
        match self.item_bias(dom) {
            Some(b) => q + b,
            None => q,
        }
    }

    /// Q of one item per state: `h` (`B × T × hidden`), `actions` (`B × T`, items of `dom`) →
    /// `B × T`, the entries of [`QNet::q_with`] at `actions` without Q over the whole pool (a TD
    /// loss needs Q(s, a) of the taken or the bootstrapped action only; its gradient then flows
    /// through those B·T items rather than through a `B × T × n` product).
    pub fn q_at(&self, h: &Tensor, proj: &Tensor, dom: &Domain, actions: &Tensor) -> Tensor {
        let (b, t) = (actions.size()[0], actions.size()[1]);
        let flat = actions.reshape([-1]);
        let rows = proj.index_select(0, &flat).view([b, t, -1]);
        let q = (self.g.forward(h) * rows).sum_dim_intlist([-1i64].as_slice(), false, Kind::Float) + &self.b;
        match self.item_bias(dom) {
            Some(bias) => q + bias.index_select(0, &flat).view([b, t]),
            None => q,
        }
    }

    /// The per-item bias of `dom`'s pool, if the network has one.
    fn item_bias(&self, dom: &Domain) -> Option<&Tensor> {
        match dom.side {
            Side::Sim => self.b_sim.as_ref(),
            Side::Real => self.b_real.as_ref(),
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
    /// One LSTM step for a batch: inputs `x` (`B × (D+1)`) and the state (h, c) (`B × H` each)
    /// → the next (h, c). The same cell as `lstm`'s, called directly: `nn::LSTM::step` goes
    /// through the sequence kernel (oneDNN's RNN, which looks its primitive up at every call).
    pub fn step(&self, x: &Tensor, hc: &(Tensor, Tensor)) -> (Tensor, Tensor) {
        let [w_ih, w_hh, b_ih, b_hh] = &self.cell;
        x.lstm_cell(&[&hc.0, &hc.1], w_ih, w_hh, Some(b_ih), Some(b_hh))
    }

    /// The LSTM width.
    pub fn lstm_hidden(&self) -> i64 {
        self.g.ws.size()[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cell_steps_equal_the_sequence_kernel() {
        // The rollout steps the LSTM with `QNet::step`; training unrolls it with `QNet::states`.
        // Both must be the same function of the history (up to float rounding).
        let cpu = tch::Device::Cpu;
        tch::manual_seed(3);
        let vs = nn::VarStore::new(cpu);
        let (d, h, n, b, t) = (6i64, 10i64, 9i64, 4i64, 5i64);
        let net = QNet::new(&vs.root(), d, h, ItemBias::default());
        let items = Tensor::randn([n, d], (Kind::Float, cpu));
        let actions = Tensor::randint(n, [b, t], (Kind::Int64, cpu));
        let rewards = Tensor::rand([b, t], (Kind::Float, cpu));
        let states = tch::no_grad(|| net.states(&items, &actions, &rewards));
        let zero = Tensor::zeros([b, h], (Kind::Float, cpu));
        let mut hc = (zero.shallow_clone(), zero);
        for step in 0..t {
            let x = Tensor::cat(
                &[items.index_select(0, &actions.select(1, step)), rewards.select(1, step).unsqueeze(-1)],
                1,
            );
            hc = tch::no_grad(|| net.step(&x, &hc));
            let want = states.select(1, step + 1);
            let diff = (&hc.0 - &want).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "step {step}: max |Δh| {diff}");
            assert!(want.abs().max().double_value(&[]) > 1e-3, "a state of zeros compares nothing");
        }
    }
}
