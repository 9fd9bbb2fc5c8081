//! Joint training (S2R-Rec): DARec's item maps, loaded from its weights and fine-tuned with the
//! policy; L_dom reaches them through a gradient reversal layer.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::api::error::StageError;
use crate::neural::layers::{bce_with_logits, grl, mlp};
use crate::neural::torch::copy_named;

/// Joint training (S2R-Rec): item maps initialised from DARec's, fine-tuned with the policy.
pub struct Joint {
    /// DARec's weights by name (`fvs.*`, `fvr.*`, `dv.*` are used).
    pub darec: Vec<(String, Tensor)>,
    /// Weight of the domain loss L_dom (through gradient reversal into the maps).
    pub dom_weight: f64,
}

/// Item vectors of the two domains: fixed, or mapped by trainable maps (joint training).
pub(crate) struct Items {
    pub(crate) sim: Tensor,
    pub(crate) real: Option<Tensor>,
    pub(crate) maps: Option<Maps>,
}

pub(crate) struct Maps {
    pub(crate) vs: nn::VarStore,
    pub(crate) fvs: nn::Linear,
    pub(crate) fvr: nn::Linear,
    pub(crate) dv: nn::Sequential,
    pub(crate) raw_sim: Tensor,
    pub(crate) raw_real: Tensor,
    pub(crate) scale_sim: f64,
    pub(crate) scale_real: f64,
}

impl Maps {
    pub(crate) fn new(j: &Joint, raw_sim: &Tensor, raw_real: &Tensor) -> Result<Self, StageError> {
        let d = raw_sim.size()[1];
        let by_name: std::collections::HashMap<&str, &Tensor> = j.darec.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let hidden = by_name.get("dv.l1.weight").map(|t| t.size()[0]).ok_or_else(|| {
            StageError::Input("`darec_weights` has no `dv.l1.weight` (not adapt.darec weights?)".into())
        })?;
        let vs = nn::VarStore::new(raw_sim.device());
        let fvs = nn::linear(vs.root() / "fvs", d, d, Default::default());
        let fvr = nn::linear(vs.root() / "fvr", d, d, Default::default());
        let dv = mlp(vs.root() / "dv", d, hidden);
        copy_named(&vs, &|name| by_name.get(name).copied(), "darec_weights")?;
        let norm = |t: Tensor| t.norm_scalaropt_dim(2, &[1i64][..], false).mean(Kind::Float).double_value(&[]);
        let (scale_sim, scale_real) = tch::no_grad(|| {
            (1.0 / norm(fvs.forward(raw_sim)).max(1e-12), 1.0 / norm(fvr.forward(raw_real)).max(1e-12))
        });
        Ok(Self {
            vs,
            fvs,
            fvr,
            dv,
            raw_sim: raw_sim.shallow_clone(),
            raw_real: raw_real.shallow_clone(),
            scale_sim,
            scale_real,
        })
    }

    /// L_dom: D_V on the mapped vectors behind a gradient reversal layer.
    pub(crate) fn dom_loss(&self, lambda: f64) -> Tensor {
        let s = self.dv.forward(&grl(&self.fvs.forward(&self.raw_sim), lambda));
        let r = self.dv.forward(&grl(&self.fvr.forward(&self.raw_real), lambda));
        bce_with_logits(&s, 0.0) + bce_with_logits(&r, 1.0)
    }
}

impl Items {
    pub(crate) fn refresh(&mut self) {
        if let Some(m) = &self.maps {
            self.sim = m.fvs.forward(&m.raw_sim) * m.scale_sim;
            self.real = Some(m.fvr.forward(&m.raw_real) * m.scale_real);
        }
    }
}
