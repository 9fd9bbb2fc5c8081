//! Separability of two sets of vectors by a held-out classifier probe (DARec's tests and
//! diagnostics).

use tch::nn::{self, Module, OptimizerConfig};
use tch::{Kind, Tensor};

use crate::neural::layers::{balanced_accuracy, bce_with_logits, mlp};
use crate::neural::torch::seeded;

/// Separability of two sets of vectors: a fresh classifier (the domain classifiers' architecture)
/// is trained on every other row of each set and scored on the rows it did not see, as balanced
/// accuracy. 0.5 = indistinguishable, 1 = separable.
pub fn probe_accuracy(sim: &[f32], real: &[f32], d: usize, hidden: i64, seed_value: u64) -> f64 {
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let clf = seeded(seed_value, || mlp(vs.root() / "probe", d as i64, hidden));
    let mut opt = nn::Adam::default().build(&vs, 1e-2).expect("adam");
    let halves = |x: &[f32]| {
        let t = Tensor::from_slice(x).view([-1, d as i64]);
        let n = t.size()[0];
        let even = Tensor::arange_start_step(0, n, 2, (Kind::Int64, tch::Device::Cpu));
        let odd = Tensor::arange_start_step(1, n, 2, (Kind::Int64, tch::Device::Cpu));
        (t.index_select(0, &even), t.index_select(0, &odd))
    };
    let (xs, ts) = halves(sim);
    let (xr, tr) = halves(real);
    for _ in 0..300 {
        let ls = clf.forward(&xs);
        let lr = clf.forward(&xr);
        // Balanced: each domain's mean loss counts once.
        let loss = bce_with_logits(&ls, 0.0)
            + bce_with_logits(&lr, 1.0)
            + vs.trainable_variables()
                .iter()
                .map(|w| w.square().sum(Kind::Float))
                .fold(Tensor::zeros([], (Kind::Float, tch::Device::Cpu)), |a, b| a + b)
                * 1e-4;
        opt.backward_step(&loss);
    }
    tch::no_grad(|| balanced_accuracy(&clf.forward(&ts), &clf.forward(&tr)))
}
