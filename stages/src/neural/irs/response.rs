//! Δr from two response models instead of two domain classifiers (`delta_r_estimator:
//! responses`; docs/design.md §6, "Dynamics adaptation").
//!
//! In an interactive recommender the next state is the history plus the response:
//! s′ = s ⊕ (a, r). DARC's ratio p_real(s′ | s, a) / p_sim(s′ | s, a) is then the ratio of the two
//! *response* distributions p(r | s, a), and it can be estimated by modelling the responses
//! directly. For click responses (r ∈ {0, 1}; values in [0, 1] are read as click probabilities):
//!
//! - the sim model's click logit is f(s, a), fitted to the sim side's responses (it and the
//!   history encoder see no real data);
//! - the real model's is f(s, a) + h(s, a), with h fitted to the real logs' responses on f's
//!   (fixed) features — so h is the *dynamics residual*: what the real responses need beyond the
//!   sim ones. Keeping the few real sessions out of the encoder and f keeps them from being
//!   memorised (measured: with them in, the real model fitted 98 % of the logged clicks and Δr
//!   was ≈ −1 where the dynamics agree);
//! - Δr = ln p_real(r | s, a) − ln p_sim(r | s, a)
//!   = r·(ln σ(f + h) − ln σ(f)) + (1 − r)·(ln σ(−f − h) − ln σ(−f)).
//!
//! Unlike a domain classifier, a response model is conditioned on (s, a): which policy chose the
//! items of either side does not enter its target, so the learner's rollouts (sim) and a behaviour
//! policy's logs (real) can be compared without the policy difference reading as a dynamics one
//! (README, "Interactive worlds": the classifiers' Δr penalised clicks where nothing differed).
//! h's outputs on the real batch carry an L2 penalty (`penalty`), a prior that the dynamics agree
//! unless the real responses say otherwise. The state is the same as the classifiers': an LSTM
//! over x = [e_a·√D, r·5] of the history, and optionally the similarities to the last W items.

use rand_chacha::ChaCha8Rng;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::neural::irs::dynamics::{encode_history, history_features, noisy_history_features};
use crate::neural::irs::episode::{batch_tensors, Episode};
use crate::neural::layers::mlp;

/// The sim response model f and the real residual h over a shared history encoder.
pub struct RespModel {
    enc: nn::LSTM,
    f: nn::Sequential,
    h: nn::Sequential,
    d: i64,
    recent: i64,
    penalty: f64,
}

impl RespModel {
    /// Layers under `p` for item vectors of width `d`, width `hidden`, `recent` similarities and
    /// the L2 weight `penalty` on h's outputs.
    pub fn new(p: &nn::Path, d: i64, hidden: i64, recent: usize, penalty: f64) -> Self {
        let w = recent as i64;
        Self {
            enc: nn::lstm(p / "enc", d + 1, hidden, Default::default()),
            f: mlp(p / "f", hidden + d + w, hidden),
            h: mlp(p / "h", hidden + d + w, hidden),
            d,
            recent: w,
            penalty,
        }
    }

    /// f's features z = [s, e_a, similarities] and its logit f(z), `B × T`.
    fn sim_side(&self, x: &Tensor, sim: Option<&Tensor>) -> (Tensor, Tensor) {
        let s = encode_history(&self.enc, x);
        let mut parts = vec![s, x.narrow(2, 0, self.d)];
        parts.extend(sim.map(Tensor::shallow_clone));
        let z = Tensor::cat(&parts, 2);
        let f = self.f.forward(&z).squeeze_dim(-1);
        (z, f)
    }

    /// (f, h) logits, `B × T` each, from the inputs x (and similarities). With `real`, the
    /// encoder and f run without gradient (the real responses train h alone).
    fn heads(&self, x: &Tensor, sim: Option<&Tensor>, real: bool) -> (Tensor, Tensor) {
        let (z, f) = if real { tch::no_grad(|| self.sim_side(x, sim)) } else { self.sim_side(x, sim) };
        (f, self.h.forward(&z).squeeze_dim(-1))
    }

    /// The loss on a sim batch and a real batch (each over its own domain's items): BCE of f on
    /// the sim responses + BCE of f + h on the real ones (gradient to h only) + `penalty`·mean h²
    /// (real batch), with the click accuracy of f on the sim batch and of f + h on the real one.
    pub fn loss(
        &self,
        sim: (&Tensor, &[Episode]),
        real: (&Tensor, &[Episode]),
        noise: f64,
        rng: &mut ChaCha8Rng,
    ) -> (Tensor, f64, f64) {
        let dev = sim.0.device();
        let (sa, sr) = batch_tensors(sim.1, dev);
        let (ra, rr) = batch_tensors(real.1, dev);
        let (xs, ss) = noisy_history_features(sim.0, &sa, &sr, self.d, self.recent, noise, rng);
        let (xr, rs) = noisy_history_features(real.0, &ra, &rr, self.d, self.recent, noise, rng);
        let (_, fs) = self.sim_side(&xs, ss.as_ref());
        let (fr, hr) = self.heads(&xr, rs.as_ref(), true);
        let real_logit = &fr + &hr;
        let bce =
            |l: &Tensor, y: &Tensor| l.binary_cross_entropy_with_logits::<Tensor>(y, None, None, tch::Reduction::Mean);
        let loss = bce(&fs, &sr) + bce(&real_logit, &rr) + hr.square().mean(Kind::Float) * self.penalty;
        let acc = |l: &Tensor, y: &Tensor| {
            tch::no_grad(|| l.ge(0.0).eq_tensor(&y.ge(0.5)).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]))
        };
        let (a_sim, a_real) = (acc(&fs, &sr), acc(&real_logit, &rr));
        (loss, a_sim, a_real)
    }

    /// Δr = ln p_real(r | s, a) − ln p_sim(r | s, a) for every step of episodes (`actions`,
    /// `rewards`: `B × T`) over `items`, without noise and without gradient.
    pub fn delta_r(&self, items: &Tensor, actions: &Tensor, rewards: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let (x, sim) = history_features(items, actions, rewards, self.d, self.recent);
            let (f, h) = self.heads(&x, sim.as_ref(), false);
            let g = &f + &h;
            let click = g.log_sigmoid() - f.log_sigmoid();
            let none = (-&g).log_sigmoid() - (-&f).log_sigmoid();
            rewards * click + (1.0 - rewards) * none
        })
    }
}

/// Whether every response of `episodes` is in [0, 1] (clicks, or click probabilities).
pub fn click_responses(episodes: &[Episode]) -> bool {
    episodes.iter().all(|e| e.rewards.iter().all(|&r| (0.0..=1.0).contains(&r)))
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use tch::nn::OptimizerConfig;

    use super::*;

    /// Item vectors of `n` items in `topics` well-separated topics (width 8), unit mean norm.
    fn items(n: i64, topics: i64) -> Tensor {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let centroids: Vec<f32> = (0..topics * 8).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
        let v: Vec<f32> = (0..n * 8)
            .map(|k| {
                let (i, j) = (k / 8, k % 8);
                centroids[((i % topics) * 8 + j) as usize] + 0.1 * (rng.random::<f32>() - 0.5)
            })
            .collect();
        let t = Tensor::from_slice(&v).view([n, 8]);
        let norm = t.square().sum_dim_intlist([1i64].as_slice(), true, Kind::Float).sqrt().mean(Kind::Float);
        t / norm
    }

    /// Episodes over `n_items` items (topic = id mod `topics`) where a click has probability
    /// `p`, and — with `boredom` — probability 0 when the item's topic was served in the previous
    /// step. Returns the episodes and, per step, whether that step was "bored".
    fn episodes(
        n: usize,
        n_items: i64,
        topics: i64,
        p: f64,
        boredom: bool,
        rng: &mut ChaCha8Rng,
    ) -> (Vec<Episode>, Vec<bool>) {
        let mut out = Vec::new();
        let mut bored = Vec::new();
        for _ in 0..n {
            let mut e = Episode { actions: Vec::new(), rewards: Vec::new() };
            for t in 0..8 {
                let a = rng.random_range(0..n_items);
                let b = t > 0 && e.actions[t - 1] % topics == a % topics;
                let q = if boredom && b { 0.0 } else { p };
                e.actions.push(a);
                e.rewards.push(if rng.random::<f64>() < q { 1.0 } else { 0.0 });
                bored.push(b);
            }
            out.push(e);
        }
        (out, bored)
    }

    /// Trains on sim episodes (no boredom) against real ones (boredom when `gap`); returns the
    /// mean Δr on held-out sim steps that were bored and clicked, and on all other steps.
    fn fit(gap: bool) -> (f64, f64) {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let it = items(40, 4);
        let m = crate::neural::torch::seeded(1, || {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let m = RespModel::new(&vs.root(), 8, 16, 2, 0.01);
            (vs, m)
        });
        let (vs, m) = m;
        let mut opt = nn::Adam::default().build(&vs, 1e-2).unwrap();
        let (sim, _) = episodes(400, 40, 4, 0.5, false, &mut rng);
        let (real, _) = episodes(400, 40, 4, 0.5, gap, &mut rng);
        for _ in 0..300 {
            let bs: Vec<Episode> = (0..32).map(|_| sim[rng.random_range(0..sim.len())].clone()).collect();
            let br: Vec<Episode> = (0..32).map(|_| real[rng.random_range(0..real.len())].clone()).collect();
            let (loss, _, _) = m.loss((&it, &bs), (&it, &br), 0.0, &mut rng);
            opt.backward_step(&loss);
        }
        let (test, bored) = episodes(200, 40, 4, 0.5, false, &mut rng);
        let (a, r) = batch_tensors(&test, tch::Device::Cpu);
        let dr = Vec::<f32>::try_from(m.delta_r(&it, &a, &r).view([-1])).unwrap();
        let rewards: Vec<f32> = test.iter().flat_map(|e| e.rewards.iter().copied()).collect();
        let (mut on, mut off) = (Vec::new(), Vec::new());
        for ((d, b), r) in dr.iter().zip(&bored).zip(&rewards) {
            if *b && *r > 0.5 {
                on.push(f64::from(*d));
            } else {
                off.push(f64::from(*d));
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        (mean(&on), mean(&off))
    }

    #[test]
    fn delta_r_is_the_bernoulli_log_ratio_of_the_two_models() {
        let it = items(10, 2);
        let (vs, m) = crate::neural::torch::seeded(2, || {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let m = RespModel::new(&vs.root(), 8, 8, 3, 0.0);
            (vs, m)
        });
        let _ = vs;
        let a = Tensor::from_slice(&[1i64, 2, 3, 4, 5, 6]).view([2, 3]);
        let r = Tensor::from_slice(&[1.0f32, 0.0, 1.0, 0.0, 0.0, 1.0]).view([2, 3]);
        let (x, sim) = history_features(&it, &a, &r, 8, 3);
        let (f, h) = m.heads(&x, sim.as_ref(), false);
        let (pr, ps) = ((&f + &h).sigmoid(), f.sigmoid());
        let (qr, qs): (Tensor, Tensor) = (1.0 - &pr, 1.0 - &ps);
        let want = (&r * (&pr / &ps).log()) + ((1.0 - &r) * (qr / qs).log());
        let got = m.delta_r(&it, &a, &r);
        assert!(got.allclose(&want, 1e-5, 1e-5, false), "{got} vs {want}");
    }

    #[test]
    fn a_real_boredom_gives_bored_clicks_a_negative_delta_r_and_no_gap_gives_none() {
        let (bored_click, other) = fit(true);
        assert!(bored_click < -1.0, "bored clicks: Δr {bored_click:.3} (the true ratio is −∞)");
        assert!(other.abs() < 0.25, "other steps: Δr {other:.3} (true ≈ +0.1 or 0)");
        let (bored_click, other) = fit(false);
        assert!(bored_click.abs() < 0.3 && other.abs() < 0.15, "no gap: Δr {bored_click:.3} / {other:.3}");
    }

    #[test]
    fn only_clicks_or_probabilities_are_responses() {
        let e = |r: f32| Episode { actions: vec![0], rewards: vec![r] };
        assert!(click_responses(&[e(0.0), e(1.0), e(0.4)]));
        assert!(!click_responses(&[e(0.0), e(-0.6)]));
    }
}
