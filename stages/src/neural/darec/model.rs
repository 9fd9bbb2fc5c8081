//! The DARec model (Yuan et al. 2019; paper eq. 1–2): identity-initialised linear maps
//! F_U^S, F_U^R, F_V^S, F_V^R and domain classifiers D_U, D_V (see `kinds/adapt_darec.rs`).

use tch::nn;
use tch::{Kind, Tensor};

use crate::neural::layers::mlp;

fn identity_map(path: nn::Path, d: i64) -> nn::Linear {
    let lin = nn::linear(path, d, d, Default::default());
    tch::no_grad(|| {
        let mut ws = lin.ws.shallow_clone();
        ws.copy_(&Tensor::eye(d, (Kind::Float, ws.device())));
        if let Some(b) = &lin.bs {
            let mut b = b.shallow_clone();
            let _ = b.zero_();
        }
    });
    lin
}

/// The DARec model.
pub struct Model {
    /// F_U^S.
    pub fus: nn::Linear,
    /// F_U^R.
    pub fur: nn::Linear,
    /// F_V^S.
    pub fvs: nn::Linear,
    /// F_V^R.
    pub fvr: nn::Linear,
    /// D_U.
    pub du: nn::Sequential,
    /// D_V.
    pub dv: nn::Sequential,
}

impl Model {
    /// Layers under `root` (names: `fus`, `fur`, `fvs`, `fvr`, `du`, `dv`).
    pub fn new(root: &nn::Path, d: i64, hidden: i64) -> Self {
        Self {
            fus: identity_map(root / "fus", d),
            fur: identity_map(root / "fur", d),
            fvs: identity_map(root / "fvs", d),
            fvr: identity_map(root / "fvr", d),
            // Optimizer group 1: the classifiers get their own learning rate.
            du: mlp(&root.set_group(1) / "du", d, hidden),
            dv: mlp(&root.set_group(1) / "dv", d, hidden),
        }
    }
}
