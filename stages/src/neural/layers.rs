//! Layers and losses shared by the neural methods: one MLP, one binary cross-entropy with
//! logits, one balanced accuracy, the gradient reversal layer and DANN's λ schedule.

use tch::nn;
use tch::{Kind, Tensor};

/// A one-hidden-layer MLP with a single logit: `l1` (input → hidden), ReLU, `l2` (hidden → 1).
pub fn mlp(p: nn::Path, input: i64, hidden: i64) -> nn::Sequential {
    nn::seq().add(nn::linear(&p / "l1", input, hidden, Default::default())).add_fn(|x| x.relu()).add(nn::linear(
        &p / "l2",
        hidden,
        1,
        Default::default(),
    ))
}

/// Mean binary cross-entropy of `logits` against the constant label `y` (1 = real, 0 = sim).
pub fn bce_with_logits(logits: &Tensor, y: f64) -> Tensor {
    logits.binary_cross_entropy_with_logits::<Tensor>(&logits.full_like(y), None, None, tch::Reduction::Mean)
}

/// Balanced accuracy of a domain classifier (real = 1): the mean of the share of sim logits
/// below 0 and the share of real logits at or above 0.
pub fn balanced_accuracy(sim_logits: &Tensor, real_logits: &Tensor) -> f64 {
    tch::no_grad(|| {
        let a = sim_logits.lt(0.0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        let b = real_logits.ge(0.0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        (a + b) / 2.0
    })
}

/// Gradient reversal: identity forward, gradient multiplied by −λ backward.
pub fn grl(x: &Tensor, lambda: f64) -> Tensor {
    x * (-lambda) + (x * (1.0 + lambda)).detach()
}

/// The DANN schedule: λ_p = 2 / (1 + e^{−10p}) − 1 for progress p ∈ [0, 1].
pub fn dann_lambda(p: f64) -> f64 {
    2.0 / (1.0 + (-10.0 * p).exp()) - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gradient_reversal_layer_negates_and_scales_gradients() {
        let x = Tensor::from_slice(&[1.0f32, -2.0, 3.0]).set_requires_grad(true);
        let y = grl(&(&x * 2.0), 0.5);
        assert_eq!(Vec::<f32>::try_from(&y.detach()).unwrap(), vec![2.0, -4.0, 6.0], "identity forward");
        y.sum(Kind::Float).backward();
        // d/dx of sum(2x) is 2; reversed and scaled by λ = 0.5 → −1.
        assert_eq!(Vec::<f32>::try_from(&x.grad()).unwrap(), vec![-1.0, -1.0, -1.0]);
        assert!((dann_lambda(0.0)).abs() < 1e-12 && (dann_lambda(1.0) - 0.999_909).abs() < 1e-5);
    }

    #[test]
    fn balanced_accuracy_weighs_each_domain_once() {
        let sim = Tensor::from_slice(&[-1.0f32, -2.0, 3.0, -0.5]); // 3 of 4 below 0
        let real = Tensor::from_slice(&[1.0f32, -1.0]); // 1 of 2 at or above 0
        assert!((balanced_accuracy(&sim, &real) - (0.75 + 0.5) / 2.0).abs() < 1e-12);
        let l = Tensor::from_slice(&[0.0f32]);
        assert!((bce_with_logits(&l, 1.0).double_value(&[]) - std::f64::consts::LN_2).abs() < 1e-6);
    }
}
