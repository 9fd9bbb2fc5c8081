//! The Q network: an LSTM over x_t = [e_{a_t}, r_t] (h_0 = 0) and, over every item of the active
//! domain, Q(s, a) = ⟨g(s), W e_a⟩ + b + b_a + π(s)·p_a, where b_a is a per-item bias of that
//! domain's pool (`item_bias`; without it Q has the scalar b only) and p_a the item's
//! standardised log popularity in its pool's training ratings, weighted by a linear function π of
//! the state (`popularity`; else no such term).
//!
//! The popularity term is what lets a policy learnt on simulated users carry "how much popularity
//! is worth, and when in a session" to the real pool: π is learnt in the simulator, where serving
//! unrated items costs, and p_a is counted in each pool's own ratings, so it needs no transfer of
//! item identities. Off by default (README, "DQN-R and popularity": it helps where the item
//! vectors transfer little, and not enough to reach most-popular on the anime sample). With
//! `popularity_per_pool` the real pool has its own π, which only the real-log batches train.
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

/// Q's item-level terms: pool sizes of the per-item biases (`None`: no bias for that side), and
/// whether Q has the popularity term π(s)·p_a.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemBias {
    /// Items of the sim pool.
    pub sim: Option<i64>,
    /// Items of the real pool.
    pub real: Option<i64>,
    /// The popularity term (each domain then carries its items' `pop`).
    pub popularity: bool,
    /// With the popularity term: the real pool has its own π (`pop_real`), which only the
    /// real-log batches train; else one π serves both pools.
    pub popularity_per_pool: bool,
}

/// A linear layer that starts at zero (weights and bias): π, so that the network begins as one
/// without the popularity term.
fn zero_linear() -> nn::LinearConfig {
    nn::LinearConfig { ws_init: nn::Init::Const(0.0), bs_init: Some(nn::Init::Const(0.0)), bias: true }
}

/// The Q network.
pub struct QNet {
    lstm: nn::LSTM,
    /// The LSTM's own variables (w_ih, w_hh, b_ih, b_hh), shared with `lstm`, which a rollout
    /// folds and steps one step at a time ([`QNet::stepper`]).
    cell: [Tensor; 4],
    g: nn::Linear,
    w: nn::Linear,
    b: Tensor,
    b_sim: Option<Tensor>,
    b_real: Option<Tensor>,
    /// π: the state → the weight of the items' popularity (of both pools, or of the sim pool
    /// when the real one has its own).
    pop: Option<nn::Linear>,
    /// The real pool's own π (`popularity_per_pool`).
    pop_real: Option<nn::Linear>,
}

impl QNet {
    /// Layers under `p` for item vectors of width `d`, an LSTM of width `hidden` and the per-item
    /// biases `bias` (variables `b_sim`, `b_real`, zero at start, in parameter group
    /// [`BIAS_GROUP`] so they can learn at their own rate) and popularity weight π (`pop`, zero at
    /// start: the network begins as one without the term).
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
            pop: bias.popularity.then(|| nn::linear(p / "pop", hidden, 1, zero_linear())),
            pop_real: (bias.popularity && bias.popularity_per_pool)
                .then(|| nn::linear(p / "pop_real", hidden, 1, zero_linear())),
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
        let q = match self.item_bias(dom) {
            Some(b) => q + b,
            None => q,
        };
        match self.popularity(dom) {
            Some((pi, p)) => q + pi.forward(h) * p,
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
        let q = match self.item_bias(dom) {
            Some(bias) => q + bias.index_select(0, &flat).view([b, t]),
            None => q,
        };
        match self.popularity(dom) {
            Some((pi, p)) => q + pi.forward(h).squeeze_dim(-1) * p.index_select(0, &flat).view([b, t]),
            None => q,
        }
    }

    /// π and the items' popularity of `dom`, if the network has the term. A network with it needs
    /// a domain that carries `pop` (the trainer and `irs.eval` attach it).
    fn popularity<'a>(&'a self, dom: &'a Domain) -> Option<(&'a nn::Linear, &'a Tensor)> {
        let pi = match (dom.side, &self.pop_real) {
            (Side::Real, Some(pi)) => Some(pi),
            _ => self.pop.as_ref(),
        };
        pi.map(|pi| (pi, dom.pop.as_ref().expect("a Q with a popularity term needs the pool's `pop`")))
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

    /// What a rollout over `dom` needs of the network, folded once for the whole rollout (the
    /// weights do not change within one). Call it without gradient.
    pub fn stepper(&self, dom: &Domain) -> Stepper {
        let [w_ih, w_hh, b_ih, b_hh] = &self.cell;
        let d = dom.items.size()[1];
        // The LSTM input x = [e_a, r]: W_ih x + b_ih + b_hh = (W_ih[:, :D] e_a + b_ih + b_hh) + r W_ih[:, D].
        let w_x_t = w_ih.narrow(1, 0, d).tr();
        let b_x = b_ih + b_hh;
        let w_r = w_ih.select(1, d);
        let x_items = Tensor::empty([dom.n_items, w_x_t.size()[1]], (Kind::Float, dom.items.device()));
        // ⟨G h + g_b, W e_a⟩ = ⟨h, Gᵀ W e_a⟩ + ⟨g_b, W e_a⟩.
        let proj = self.item_proj(dom);
        let q_items = proj.matmul(&self.g.ws);
        let mut q_const = proj.matmul(self.g.bs.as_ref().expect("g has a bias")) + &self.b;
        if let Some(b) = self.item_bias(dom) {
            q_const += b;
        }
        let pop = self.popularity(dom).map(|(pi, p)| {
            (pi.ws.shallow_clone(), pi.bs.as_ref().expect("π has a bias").shallow_clone(), p.shallow_clone())
        });
        Stepper {
            items: dom.items.shallow_clone(),
            w_x_t,
            b_x,
            x_items,
            x_done: vec![false; dom.n_items as usize],
            w_r,
            w_hh_t: w_hh.tr(),
            q_items_t: q_items.tr(),
            q_const,
            pop,
        }
    }
}

/// The network folded for a rollout over one pool ([`QNet::stepper`]): Q of every item is one
/// product of the state with an `H × n` matrix, and the LSTM's input projection of an item is
/// computed once per rollout, when the item is first served, instead of once per user and step
/// (a rollout serves a fraction of the pool: ≈ 36 % in the irs bench). Equal to
/// [`QNet::q_with`] and to the LSTM's sequence kernel ([`QNet::states`]) up to float rounding
/// (the products are associated differently, and tanh is computed through the sigmoid).
pub struct Stepper {
    /// The pool's item vectors, `n × D`.
    pub(super) items: Tensor,
    /// `D × 4H`: W_ih[:, :D]ᵀ.
    pub(super) w_x_t: Tensor,
    /// `4H`: b_ih + b_hh.
    pub(super) b_x: Tensor,
    /// `n × 4H`: W_ih[:, :D] e_a + b_ih + b_hh, for the items in `x_done`.
    pub(super) x_items: Tensor,
    /// Which rows of `x_items` are computed.
    pub(super) x_done: Vec<bool>,
    /// `4H`: the reward's column of W_ih.
    pub(super) w_r: Tensor,
    /// `H × 4H`: W_hhᵀ.
    pub(super) w_hh_t: Tensor,
    /// `H × n`: (Gᵀ W e_a) for every item.
    pub(super) q_items_t: Tensor,
    /// `n`: ⟨g_b, W e_a⟩ + b (+ b_a).
    pub(super) q_const: Tensor,
    /// π's weight (`1 × H`) and bias, and the pool's popularity (`n`).
    pub(super) pop: Option<(Tensor, Tensor, Tensor)>,
}

impl Stepper {
    /// Q of every item for states `h` (`B × H`), written into `out` (`B × n`, contiguous): a
    /// rollout reuses one buffer for every step.
    pub fn q_into(&self, h: &Tensor, out: &Tensor) {
        let _ = self.q_const.addmm_out(out, h, &self.q_items_t);
        if let Some((w, b, p)) = &self.pop {
            let mut out = out.shallow_clone();
            let _ = out.g_add_(&(h.matmul(&w.tr()).g_add(b) * p));
        }
    }

    /// One LSTM step: the served `actions` (`B` items of the pool), their `rewards` (`B`) and
    /// the state (h, c) → the next (h, c). `h_zero`: h is all zeros (the first step), so its
    /// product is skipped.
    pub fn step(&mut self, actions: &[i64], rewards: &Tensor, hc: &(Tensor, Tensor), h_zero: bool) -> (Tensor, Tensor) {
        let mut new: Vec<i64> = Vec::new();
        for &a in actions {
            if !std::mem::replace(&mut self.x_done[a as usize], true) {
                new.push(a);
            }
        }
        let dev = self.items.device();
        if !new.is_empty() {
            let new = Tensor::from_slice(&new).to_device(dev);
            let rows = self.items.index_select(0, &new).matmul(&self.w_x_t) + &self.b_x;
            let _ = self.x_items.index_copy_(0, &new, &rows);
        }
        let actions = Tensor::from_slice(actions).to_device(dev);
        let x = self.x_items.index_select(0, &actions) + rewards.unsqueeze(-1) * &self.w_r;
        let gates = if h_zero { x } else { x.addmm(&hc.0, &self.w_hh_t) };
        // tanh(x) = 2σ(2x) − 1: one sigmoid over all four gates (the cell gate doubled first),
        // and one for c; libtorch's tanh (MKL's accurate mode) cost as much as both sigmoids.
        let hid = gates.size()[1] / 4;
        let _ = gates.narrow(1, 2 * hid, hid).g_mul_scalar_(2.0);
        let s = gates.sigmoid();
        let g = s.chunk(4, 1);
        let c = &g[1] * &hc.1 + &g[0] * (&g[2] * 2.0 - 1.0);
        let h = &g[3] * ((&c * 2.0).sigmoid() * 2.0 - 1.0);
        (h, c)
    }
}

/// Test fixtures shared by the network's, the host stepper's and the rollout's tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A Q network on the CPU under `vs` whose every variable (the per-item biases, b and π
    /// included, which start at 0) is drawn from N(0, `scale`²), so that every term is part of
    /// what a test compares.
    pub fn random_net(vs: &nn::VarStore, d: i64, hidden: i64, bias: ItemBias, scale: f64) -> QNet {
        let net = QNet::new(&vs.root(), d, hidden, bias);
        tch::no_grad(|| {
            for (_, mut v) in vs.variables() {
                v.copy_(&(Tensor::randn_like(&v) * scale));
            }
        });
        net
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_popularity_term_is_pi_times_p_in_q_and_q_at() {
        use crate::neural::irs::episode::{popularity, Side};
        let cpu = tch::Device::Cpu;
        tch::manual_seed(5);
        let vs = nn::VarStore::new(cpu);
        let (d, h, n, b, t) = (6i64, 10i64, 9i64, 3i64, 4i64);
        let net = QNet::new(&vs.root(), d, h, ItemBias { popularity: true, ..Default::default() });
        // π starts at 0; away from it, so the term is part of what is compared.
        tch::no_grad(|| {
            for (name, mut v) in vs.variables() {
                if name.starts_with("pop") {
                    v.copy_(&Tensor::randn_like(&v));
                }
            }
        });
        let p = Tensor::from_slice(&popularity(&[0, 1, 2, 3, 5, 8, 13, 21, 34]));
        let dom = Domain::new(Tensor::randn([n, d], (Kind::Float, cpu)), Side::Real).with_pop(Some(p.shallow_clone()));
        let hs = Tensor::randn([b, t, h], (Kind::Float, cpu));
        let actions = Tensor::randint(n, [b, t], (Kind::Int64, cpu));
        tch::no_grad(|| {
            let full = net.q(&hs, &dom);
            let at = net.q_at(&hs, &net.item_proj(&dom), &dom, &actions);
            let gathered = full.gather(2, &actions.unsqueeze(-1), false).squeeze_dim(-1);
            assert!((&gathered - &at).abs().max().double_value(&[]) < 1e-5);
            // The popularity term is π(h)·p exactly.
            let pi = net.pop.as_ref().unwrap().forward(&hs);
            let term = &pi * &p;
            assert!(term.abs().max().double_value(&[]) > 0.1, "a zero term compares nothing");
            let rest = net.g.forward(&hs).matmul(&net.item_proj(&dom).tr()) + &net.b;
            assert!((&full - &rest - term).abs().max().double_value(&[]) < 1e-5);
        });
    }

    #[test]
    fn with_popularity_per_pool_each_pool_reads_its_own_pi() {
        use crate::neural::irs::episode::{popularity, Side};
        let cpu = tch::Device::Cpu;
        tch::manual_seed(8);
        let vs = nn::VarStore::new(cpu);
        let (d, h, n, b, t) = (6i64, 10i64, 9i64, 3i64, 4i64);
        let bias = ItemBias { popularity: true, popularity_per_pool: true, ..Default::default() };
        // Both π start at 0; drawn away from it (with the rest), so each pool's term is compared.
        let net = testing::random_net(&vs, d, h, bias, 0.5);
        let p = Tensor::from_slice(&popularity(&[0, 1, 2, 3, 5, 8, 13, 21, 34]));
        let items = Tensor::randn([n, d], (Kind::Float, cpu));
        let hs = Tensor::randn([b, t, h], (Kind::Float, cpu));
        tch::no_grad(|| {
            for (side, pi) in [(Side::Sim, &net.pop), (Side::Real, &net.pop_real)] {
                let dom = Domain::raw(items.shallow_clone(), side).with_pop(Some(p.shallow_clone()));
                let full = net.q(&hs, &dom);
                let rest = net.g.forward(&hs).matmul(&net.item_proj(&dom).tr()) + &net.b;
                let term = pi.as_ref().unwrap().forward(&hs) * &p;
                assert!((&full - &rest - term).abs().max().double_value(&[]) < 1e-5, "{side:?}");
                // The rollout's folded network reads the same π.
                let h0 = hs.select(1, 0).contiguous();
                let out = Tensor::empty([b, n], (Kind::Float, cpu));
                net.stepper(&dom).q_into(&h0, &out);
                assert!((&out - full.select(1, 0)).abs().max().double_value(&[]) < 1e-5, "{side:?}");
            }
            // The two π differ, so the two pools' terms do.
            let (a, c) = (net.pop.as_ref().unwrap(), net.pop_real.as_ref().unwrap());
            assert!((&a.ws - &c.ws).abs().max().double_value(&[]) > 0.1);
        });
    }

    #[test]
    fn the_stepper_equals_the_sequence_kernel_and_q() {
        // The rollout steps the LSTM and reads Q through `QNet::stepper`; training unrolls the
        // LSTM with `QNet::states` and reads Q with `q_with`. Both must be the same function of
        // the history (up to float rounding), with per-item biases and the popularity term.
        use crate::neural::irs::episode::{popularity, Side};
        let cpu = tch::Device::Cpu;
        tch::manual_seed(3);
        let vs = nn::VarStore::new(cpu);
        let (d, h, n, b, t) = (6i64, 10i64, 9i64, 4i64, 5i64);
        let bias = ItemBias { sim: None, real: Some(n), popularity: true, popularity_per_pool: false };
        let net = QNet::new(&vs.root(), d, h, bias);
        // The biases and π start at 0; away from it, so they are part of what is compared.
        tch::no_grad(|| {
            for (name, mut v) in vs.variables() {
                if name.starts_with("pop") || name == "b_real" || name == "b" {
                    v.copy_(&Tensor::randn_like(&v));
                }
            }
        });
        let p = Tensor::from_slice(&popularity(&[0, 1, 2, 3, 5, 8, 13, 21, 34]));
        let items = Tensor::randn([n, d], (Kind::Float, cpu));
        let dom = Domain::raw(items.shallow_clone(), Side::Real).with_pop(Some(p));
        let actions = Tensor::randint(n, [b, t], (Kind::Int64, cpu));
        let rewards = Tensor::rand([b, t], (Kind::Float, cpu));
        let states = tch::no_grad(|| net.states(&items, &actions, &rewards));
        let mut stepper = tch::no_grad(|| net.stepper(&dom));
        let zero = Tensor::zeros([b, h], (Kind::Float, cpu));
        let mut hc = (zero.shallow_clone(), zero);
        let q = Tensor::empty([b, n], (Kind::Float, cpu));
        for step in 0..t {
            let want_q = tch::no_grad(|| net.q(&hc.0, &dom));
            tch::no_grad(|| stepper.q_into(&hc.0, &q));
            let diff = (&q - &want_q).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "step {step}: max |ΔQ| {diff}");
            let a = Vec::<i64>::try_from(actions.select(1, step)).unwrap();
            hc = tch::no_grad(|| stepper.step(&a, &rewards.select(1, step), &hc, step == 0));
            let want = states.select(1, step + 1);
            let diff = (&hc.0 - &want).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "step {step}: max |Δh| {diff}");
            assert!(want.abs().max().double_value(&[]) > 1e-3, "a state of zeros compares nothing");
        }
    }
}
