//! DARC's two domain classifiers on the Q-network's own state (`delta_r_estimator:
//! state_classifiers`): D_sa(s_t, a_t) and D_sas(s_t, a_t, s_{t+1}) with s_t = h_t, the online
//! Q-network's LSTM state before step t (detached), a_t = e_{a_t}, s_{t+1} = h_{t+1}. This is DARC
//! as Eysenbach et al. (2021) state it, for an agent whose state is its own encoding of the history:
//! the classifiers are two MLPs over given vectors — the shapes of `../shared/ref/darc_classifier.py`
//! — instead of [`crate::neural::irs::dynamics::DynClf`]'s own LSTM encoder of the history.
//!
//! The states move as the Q-network trains, so the classifiers chase a moving input (DARC's states
//! are the environment's, fixed); and the state is trained on sim rollouts, so it carries what the
//! DQN found useful there, not necessarily what tells the two dynamics apart. That is the price of
//! the cheaper classifiers; the default stays the history encoder.
//!
//! Inputs: x = [s/ρ, e_a·√D, s′/ρ], where ρ is the root mean square of the states of the last
//! training batch (both domains together, so the scale tells nothing of the domain), so every
//! feature has unit scale, as the Gaussian input noise (σ = 1 by default) assumes. D_sa's logit =
//! f([s, a]); D_sas's logit = D_sa's logit + g([s, a, s′]); binary cross-entropy (real = 1, sim = 0)
//! on noisy inputs; Δr = g(…) without noise, detached, not clipped.

use std::cell::Cell;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::neural::layers::mlp;

/// The pair of classifiers over (s, a, s′).
pub struct StateClf {
    /// D_sa's MLP over [s, a] (`sa/l1`, `sa/l2`, as [`mlp`] names them).
    sa: nn::Sequential,
    /// g's MLP over [s, a, s′]: its layers by name, for Δr's split first layer.
    sas: Head,
    h: i64,
    d: i64,
    /// ρ: the states' root mean square in the last training batch (1 before any).
    scale: Cell<f64>,
}

/// The transitions of a batch of episodes: the Q-network's states `[s_0, …, s_T]`
/// (`B × (T+1) × H`), the actions (`B × T`) and the pool they index (`n × D`, unit mean norm).
pub struct Transitions<'a> {
    /// `B × (T+1) × H`.
    pub states: &'a Tensor,
    /// `B × T` item indices.
    pub actions: &'a Tensor,
    /// `n × D`.
    pub items: &'a Tensor,
}

/// A one-hidden-layer MLP with a single logit, [`mlp`]'s layers (`l1`, ReLU, `l2`) by name.
struct Head {
    l1: nn::Linear,
    l2: nn::Linear,
}

impl Head {
    fn new(p: nn::Path, input: i64, hidden: i64) -> Self {
        Self {
            l1: nn::linear(&p / "l1", input, hidden, Default::default()),
            l2: nn::linear(&p / "l2", hidden, 1, Default::default()),
        }
    }

    /// The logit (last dimension squeezed) from the first layer's pre-activation.
    fn logit_of_pre(&self, pre: &Tensor) -> Tensor {
        self.l2.forward(&pre.relu()).squeeze_dim(-1)
    }
}

impl StateClf {
    /// Layers under `p` for states of width `h`, item vectors of width `d`, width `hidden`.
    pub fn new(p: &nn::Path, h: i64, d: i64, hidden: i64) -> Self {
        Self {
            sa: mlp(p / "sa", h + d, hidden),
            sas: Head::new(p / "sas", 2 * h + d, hidden),
            h,
            d,
            scale: Cell::new(1.0),
        }
    }

    /// x = [s/ρ, e_a·√D, s′/ρ] (`B × T × (2H + D)`) written onto `x` (`x += …`, in place, each
    /// part scaled as it is added: no scaled copies).
    fn add_features(&self, x: &Tensor, tr: &Transitions) {
        let (b, t) = (tr.actions.size()[0], tr.actions.size()[1]);
        let (h, d) = (self.h, self.d);
        let inv = Tensor::from(1.0 / self.scale.get() as f32).to_device(x.device());
        let root_d = Tensor::from((d as f32).sqrt()).to_device(x.device());
        let e = tr.items.index_select(0, &tr.actions.reshape([-1])).view([b, t, d]);
        let _ = x.narrow(2, 0, h).addcmul_(&tr.states.narrow(1, 0, t), &inv);
        let _ = x.narrow(2, h, d).addcmul_(&e, &root_d);
        let _ = x.narrow(2, h + d, h).addcmul_(&tr.states.narrow(1, 1, t), &inv);
    }

    /// x = [s/ρ, e_a·√D, s′/ρ] without noise.
    fn features(&self, tr: &Transitions) -> Tensor {
        let (b, t) = (tr.actions.size()[0], tr.actions.size()[1]);
        let x = Tensor::zeros([b, t, 2 * self.h + self.d], (Kind::Float, tr.states.device()));
        self.add_features(&x, tr);
        x
    }

    /// Both logits over inputs x: D_sa's over [s, a], D_sas's = D_sa's + g([s, a, s′]).
    fn logits(&self, x: &Tensor) -> (Tensor, Tensor) {
        let sa = self.sa.forward(&x.narrow(2, 0, self.h + self.d)).squeeze_dim(-1);
        let sas = &sa + self.sas.logit_of_pre(&self.sas.l1.forward(x));
        (sa, sas)
    }

    /// The classifiers' loss on a sim batch (label 0) and a real batch (label 1), with Gaussian
    /// noise of std `noise` on the inputs (drawn from `rng`, the sim batch's first; none when 0),
    /// and the accuracies of D_sa and D_sas (balanced over the two domains). Sets ρ from both
    /// batches' states first. Batches of equal session length go through the heads in one pass.
    pub fn loss(&self, sim: &Transitions, real: &Transitions, noise: f64, rng: &mut ChaCha8Rng) -> (Tensor, f64, f64) {
        let ms = tch::no_grad(|| {
            let n = (sim.states.numel() + real.states.numel()) as f64;
            (sim.states.square().sum(Kind::Double) + real.states.square().sum(Kind::Double)).double_value(&[]) / n
        });
        if ms.is_finite() && ms > 0.0 {
            self.scale.set(ms.sqrt());
        }
        let dev = sim.states.device();
        let width = 2 * self.h + self.d;
        // The noise first, then each batch's features added onto its rows in place.
        let inputs = |rows: i64, t: i64, rng: &mut ChaCha8Rng| {
            let shape = [rows, t, width];
            if noise > 0.0 {
                fast_gaussian(rng, &shape, noise, dev)
            } else {
                Tensor::zeros(shape, (Kind::Float, dev))
            }
        };
        let size = |tr: &Transitions| (tr.actions.size()[0], tr.actions.size()[1]);
        let ((bs, ts), (br, tr)) = (size(sim), size(real));
        // Binary cross-entropy with logits is softplus(l) for a sim row (label 0) and softplus(−l)
        // for a real one (label 1): z = sign·l, sign = +1 sim, −1 real, over both logits. Each of
        // the four terms is a mean over its own domain's steps, so a step weighs 1/(B_domain·T).
        // A step is classified right when z < 0 (sim: l < 0; real: l > 0 — a logit of exactly 0
        // counts as wrong); the balanced accuracy weighs it ½/(B_domain·T).
        let (z, weight) = if ts == tr {
            let x = inputs(bs + br, ts, rng);
            self.add_features(&x.narrow(0, 0, bs), sim);
            self.add_features(&x.narrow(0, bs, br), real);
            let (sa, sas) = self.logits(&x);
            let rows = bs + br;
            let sign: Vec<f32> = (0..rows).map(|i| if i < bs { 1.0 } else { -1.0 }).collect();
            let weight: Vec<f32> = (0..rows).map(|i| 1.0 / ((if i < bs { bs } else { br }) * ts) as f32).collect();
            let sign = Tensor::from_slice(&sign).view([1, rows, 1]).to_device(dev);
            let weight = Tensor::from_slice(&weight).view([1, rows, 1]).to_device(dev);
            (Tensor::stack(&[sa, sas], 0) * sign, weight)
        } else {
            // Sessions of different lengths: each batch through the heads on its own, then the
            // steps of both laid end to end (`2 × 1 × (B_s·T_s + B_r·T_r)`).
            let one = |tr: &Transitions, rows: i64, t: i64, sign: f64, rng: &mut ChaCha8Rng| {
                let x = inputs(rows, t, rng);
                self.add_features(&x, tr);
                let (sa, sas) = self.logits(&x);
                (Tensor::stack(&[sa, sas], 0) * sign).view([2, 1, rows * t])
            };
            let zs = one(sim, bs, ts, 1.0, rng);
            let zr = one(real, br, tr, -1.0, rng);
            let mut weight = vec![1.0 / (bs * ts) as f32; (bs * ts) as usize];
            weight.extend(std::iter::repeat_n(1.0 / (br * tr) as f32, (br * tr) as usize));
            let n = weight.len() as i64;
            (Tensor::cat(&[zs, zr], 2), Tensor::from_slice(&weight).view([1, 1, n]).to_device(dev))
        };
        let loss = (z.softplus() * &weight).sum(Kind::Float);
        let acc: Vec<f64> = tch::no_grad(|| {
            let right = z.lt(0.0).to_kind(Kind::Float) * &weight * 0.5;
            Vec::<f64>::try_from(right.sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Double))
        })
        .unwrap_or_else(|_| vec![f64::NAN; 2]);
        (loss, acc[0], acc[1])
    }

    /// Δr = logit D_sas − logit D_sa = g(s, a, s′) for every transition (`B × T`), without noise
    /// and without gradient (D_sa's head is not evaluated). g's first layer is applied by parts,
    /// without forming x: W_s s_t + W_{s′} s_{t+1} from one product over the T + 1 states (each
    /// state is s of one step and s′ of the one before), and W_a e_a over the pool's items when
    /// the pool is smaller than the block (gathered per step), else over the gathered vectors.
    pub fn delta_r(&self, tr: &Transitions) -> Tensor {
        tch::no_grad(|| {
            let (b, t) = (tr.actions.size()[0], tr.actions.size()[1]);
            let (h, d) = (self.h, self.d);
            let w = &self.sas.l1.ws;
            let hidden = w.size()[0];
            let w_states = Tensor::cat(&[w.narrow(1, 0, h), w.narrow(1, h + d, h)], 0);
            let p = tr.states.matmul(&w_states.tr()) * (1.0 / self.scale.get());
            let from_states = p.narrow(1, 0, t).narrow(2, 0, hidden) + p.narrow(1, 1, t).narrow(2, hidden, hidden);
            let w_a = w.narrow(1, h, d).tr() * (d as f64).sqrt();
            let flat = tr.actions.reshape([-1]);
            let from_items = if tr.items.size()[0] < b * t {
                tr.items.matmul(&w_a).index_select(0, &flat)
            } else {
                tr.items.index_select(0, &flat).matmul(&w_a)
            };
            let mut pre = from_states + from_items.view([b, t, hidden]);
            if let Some(b1) = &self.sas.l1.bs {
                pre += b1;
            }
            self.sas.logit_of_pre(&pre)
        })
    }

    /// Both logits without noise (`B × T` each), for tests and curves.
    pub fn eval_logits(&self, tr: &Transitions) -> (Tensor, Tensor) {
        tch::no_grad(|| self.logits(&self.features(tr)))
    }
}

/// Gaussian noise of std `sigma` drawn from a stage-local RNG, fast: the RNG fills 64-bit words
/// (one per pair of values: two 24-bit uniforms) and the Box–Muller transform z = √(−2 ln u₁)·(cos 2πu₂, sin 2πu₂) runs on them
/// with polynomial ln, sin and cos (relative error < 10⁻⁶, [`box_muller`]) in loops the compiler
/// vectorises: ~1 ns per value, against ~5 ns value by value through a ziggurat. Deterministic given
/// the RNG's state; not the same draws as [`crate::neural::irs::dynamics::gaussian`].
pub fn fast_gaussian(rng: &mut ChaCha8Rng, shape: &[i64], sigma: f64, dev: tch::Device) -> Tensor {
    let n = shape.iter().product::<i64>() as usize;
    let pairs = n.div_ceil(2);
    let mut words = vec![0u64; pairs];
    rng.fill(&mut words[..]);
    let mut z = vec![0f32; 2 * pairs];
    let (zc, zs) = z.split_at_mut(pairs);
    box_muller(&words, sigma as f32, zc, zs);
    z.truncate(n);
    Tensor::from_slice(&z).view(shape).to_device(dev)
}

/// Box–Muller on 64-bit words: for each word, u₁ and u₂ from its bits 8–31 and 40–63 (a 24-bit
/// k each, u = (k + ½)·2⁻²⁴ ∈ (0, 1)), and
/// (`cos`, `sin`) = σ√(−2 ln u₁)·(cos 2πu₂, sin 2πu₂). Compiled twice on x86-64: for AVX2 (8
/// lanes), taken when the CPU has it, and for the baseline (4 lanes). Both round every operation
/// the same way (IEEE; Rust does not fuse multiply-adds), so the draws do not depend on the CPU.
fn box_muller(words: &[u64], sigma: f32, cos: &mut [f32], sin: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (detected just above), all the function requires.
        return unsafe { box_muller_avx2(words, sigma, cos, sin) };
    }
    box_muller_loop(words, sigma, cos, sin);
}

/// [`box_muller_loop`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn box_muller_avx2(words: &[u64], sigma: f32, cos: &mut [f32], sin: &mut [f32]) {
    box_muller_loop(words, sigma, cos, sin);
}

/// The loop of [`box_muller`], inlined into each of its compilations.
#[inline(always)]
fn box_muller_loop(words: &[u64], sigma: f32, cos: &mut [f32], sin: &mut [f32]) {
    const SCALE: f32 = 1.0 / 16_777_216.0;
    for (&w, (c, s)) in words.iter().zip(cos.iter_mut().zip(sin.iter_mut())) {
        let u1 = (((w as u32) >> 8) as f32 + 0.5) * SCALE;
        let r = sigma * (-2.0 * ln_unit(u1)).sqrt();
        let (sn, cs) = sin_cos_turns(((w >> 40) as u32) as i32);
        *c = r * cs;
        *s = r * sn;
    }
}

/// ln x for a positive normal `x` (here in (0, 1)): x = 2ᵉ·m with m ∈ [√½, √2), ln m =
/// 2 atanh t, t = (m − 1)/(m + 1), |t| ≤ 0.172, by its series to t⁹ (truncation < 10⁻⁹).
#[inline(always)]
fn ln_unit(x: f32) -> f32 {
    let bits = x.to_bits();
    // The exponent and mantissa with m in [√½, √2): subtract √½'s bits so that m ≥ √½ rounds up.
    let off = bits.wrapping_sub(0x3f35_04f3);
    let e = (off as i32) >> 23;
    let m = f32::from_bits(bits.wrapping_sub((e as u32) << 23));
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let series = 1.0 + t2 * (1.0 / 3.0 + t2 * (1.0 / 5.0 + t2 * (1.0 / 7.0 + t2 * (1.0 / 9.0))));
    e as f32 * std::f32::consts::LN_2 + 2.0 * t * series
}

/// (sin, cos) of 2π·k/2²⁴ for a 24-bit `k`: the quadrant q = round(4k/2²⁴), the rest φ ∈ [−π/4,
/// π/4] by Taylor polynomials to φ⁹ and φ¹⁰ (truncation < 2·10⁻⁹), rotated by q quarter turns.
#[inline(always)]
fn sin_cos_turns(k: i32) -> (f32, f32) {
    // q = round(k / 2²²); the remainder in [−2²¹, 2²¹] quarter-turn units of 2⁻²⁴ turns.
    let q = (k + (1 << 21)) >> 22;
    let rest = (k - (q << 22)) as f32;
    let phi = rest * (std::f32::consts::TAU / 16_777_216.0);
    let p2 = phi * phi;
    let s = phi * (1.0 + p2 * (-1.0 / 6.0 + p2 * (1.0 / 120.0 + p2 * (-1.0 / 5040.0 + p2 * (1.0 / 362_880.0)))));
    let c =
        1.0 + p2 * (-0.5 + p2 * (1.0 / 24.0 + p2 * (-1.0 / 720.0 + p2 * (1.0 / 40_320.0 + p2 * (-1.0 / 3_628_800.0)))));
    // sin(φ + qπ/2) = [s, c, −s, −c][q], cos(φ + qπ/2) = [c, −s, −c, s][q].
    let odd = q & 1 == 1;
    let (a, b) = if odd { (c, s) } else { (s, c) };
    let sin = if q & 2 == 2 { -a } else { a };
    let cos = if (q + 1) & 2 == 2 { -b } else { b };
    (sin, cos)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::neural::layers::{balanced_accuracy, bce_with_logits};

    #[test]
    fn the_polynomials_match_ln_sin_and_cos() {
        // Every 97th 24-bit value and the ends: ln of u = (k + ½)·2⁻²⁴ and sin/cos of 2πk/2²⁴.
        let mut worst = (0f64, 0f64);
        for k in (0..1u32 << 24).step_by(97).chain([0, 1, (1 << 24) - 1, 1 << 22, 3 << 22, 1 << 23]) {
            let u = (k as f32 + 0.5) / 16_777_216.0;
            let want = f64::from(u).ln();
            let rel = (f64::from(ln_unit(u)) - want).abs() / want.abs().max(1e-3);
            worst.0 = worst.0.max(rel);
            let (s, c) = sin_cos_turns(k as i32);
            let th = std::f64::consts::TAU * f64::from(k) / 16_777_216.0;
            worst.1 = worst.1.max((f64::from(s) - th.sin()).abs().max((f64::from(c) - th.cos()).abs()));
        }
        assert!(worst.0 < 1e-6 && worst.1 < 1e-6, "ln rel {:e}, sin/cos abs {:e}", worst.0, worst.1);
        // The CPU-specific compilation draws exactly what the baseline one does.
        let w: Vec<u64> = (0..2049u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
        let mut one = (vec![0f32; 2049], vec![0f32; 2049]);
        let mut two = one.clone();
        box_muller(&w, 1.5, &mut one.0, &mut one.1);
        box_muller_loop(&w, 1.5, &mut two.0, &mut two.1);
        assert!(one.0.iter().chain(&one.1).zip(two.0.iter().chain(&two.1)).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn fast_noise_is_standard_normal_scaled_and_deterministic() {
        let cpu = tch::Device::Cpu;
        // An odd count (the last Box–Muller pair is cut) in a 3-D shape.
        let z = fast_gaussian(&mut ChaCha8Rng::seed_from_u64(7), &[3, 101, 331], 2.0, cpu);
        assert_eq!(z.size(), [3, 101, 331]);
        let v = Vec::<f32>::try_from(z.view([-1])).unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let m = |k: i32| v.iter().map(|&x| (f64::from(x) - mean).powi(k)).sum::<f64>() / n;
        let (sd, kurt) = (m(2).sqrt(), m(4) / m(2).powi(2));
        // 100,293 draws: the standard errors are 0.006 (mean), 0.0045 (sd) and 0.015 (kurtosis).
        assert!(mean.abs() < 0.03 && (sd - 2.0).abs() < 0.03 && (kurt - 3.0).abs() < 0.1, "{mean} {sd} {kurt}");
        let within = v.iter().filter(|&&x| x.abs() < 2.0).count() as f64 / n;
        assert!((within - 0.6827).abs() < 0.01, "P(|z| < σ) = {within}");
        let again = fast_gaussian(&mut ChaCha8Rng::seed_from_u64(7), &[3, 101, 331], 2.0, cpu);
        assert!(z.equal(&again));
        let other = fast_gaussian(&mut ChaCha8Rng::seed_from_u64(8), &[3, 101, 331], 2.0, cpu);
        assert!(!z.equal(&other));
    }

    #[test]
    fn delta_r_is_the_difference_of_the_two_logits_and_the_scale_is_shared() {
        let cpu = tch::Device::Cpu;
        let vs = nn::VarStore::new(cpu);
        let clf = crate::neural::torch::seeded(4, || StateClf::new(&vs.root(), 5, 6, 8));
        tch::manual_seed(9);
        let items = Tensor::randn([20, 6], (Kind::Float, cpu));
        let (s_sim, s_real) =
            (Tensor::randn([4, 8, 5], (Kind::Float, cpu)) * 0.3, Tensor::randn([4, 8, 5], (Kind::Float, cpu)));
        let actions = Tensor::randint(20, [4, 7], (Kind::Int64, cpu));
        let sim = Transitions { states: &s_sim, actions: &actions, items: &items };
        let real = Transitions { states: &s_real, actions: &actions, items: &items };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (loss, _, _) = clf.loss(&sim, &real, 1.0, &mut rng);
        assert!(loss.double_value(&[]).is_finite());
        // ρ is the root mean square over both batches' states.
        let ms = (s_sim.square().sum(Kind::Double) + s_real.square().sum(Kind::Double)).double_value(&[])
            / (2 * 4 * 8 * 5) as f64;
        assert!((clf.scale.get() - ms.sqrt()).abs() < 1e-9);
        // Without noise, the one-pass loss and accuracies are the four means of binary
        // cross-entropy and the balanced accuracies of the logits (the weights are f32: equal to
        // ~10⁻⁷); returns the accuracies.
        let mut no_noise = |real: &Transitions| {
            let (loss, acc_sa, acc_sas) = clf.loss(&sim, real, 0.0, &mut rng);
            let ((sa_s, sas_s), (sa_r, sas_r)) = (clf.eval_logits(&sim), clf.eval_logits(real));
            let want = bce_with_logits(&sa_s, 0.0)
                + bce_with_logits(&sas_s, 0.0)
                + bce_with_logits(&sa_r, 1.0)
                + bce_with_logits(&sas_r, 1.0);
            assert!((loss.double_value(&[]) - want.double_value(&[])).abs() < 1e-5, "{loss} vs {want}");
            assert!((acc_sa - balanced_accuracy(&sa_s, &sa_r)).abs() < 1e-6);
            assert!((acc_sas - balanced_accuracy(&sas_s, &sas_r)).abs() < 1e-6);
            (acc_sa, acc_sas)
        };
        let (acc_sa, acc_sas) = no_noise(&real);
        assert!(acc_sa > 0.0 && acc_sa < 1.0 || acc_sas > 0.0 && acc_sas < 1.0, "{acc_sa} {acc_sas}");
        // Real sessions shorter than the sim ones (two passes): the same four means.
        let (s_short, a_short) = (s_real.narrow(1, 0, 5).narrow(0, 0, 3), actions.narrow(1, 0, 4).narrow(0, 0, 3));
        no_noise(&Transitions { states: &s_short, actions: &a_short, items: &items });
        // Both ways of applying W_a: the pool (20 items) smaller than the block (28 steps), and not.
        for t in [7, 3] {
            let a = actions.narrow(1, 0, t);
            let block = Transitions { states: &s_sim.narrow(1, 0, t + 1), actions: &a, items: &items };
            let (sa, sas) = clf.eval_logits(&block);
            let want = &sas - &sa;
            let got = clf.delta_r(&block);
            assert_eq!(got.size(), [4, t]);
            let diff = (&got - &want).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "T = {t}: max |Δ| {diff}");
        }
        let (sa, sas) = clf.eval_logits(&sim);
        let want = &sas - &sa;
        assert!(want.abs().max().double_value(&[]) > 1e-3, "a Δr of zeros compares nothing");
    }
}
