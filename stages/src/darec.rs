//! DARec training in libtorch (the `torch` feature): see `kinds/adapt_darec.rs` for the model.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Float64Array, UInt32Array};
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Kind, Tensor};

use crate::artifact::{Artifact, Inputs, Outputs};
use crate::error::StageError;
use crate::kinds::adapt_darec::DarecParams;
use crate::ratings::Ratings;
use crate::stage::Context;
use crate::table::{batch, read_vectors, vectors};
use crate::torch::{seed, tch_device, weights_bytes};

/// Gradient reversal: identity forward, gradient multiplied by −λ backward.
pub fn grl(x: &Tensor, lambda: f64) -> Tensor {
    x * (-lambda) + (x * (1.0 + lambda)).detach()
}

/// The DANN schedule: λ_p = 2 / (1 + e^{−10p}) − 1 for progress p ∈ [0, 1].
pub fn dann_lambda(p: f64) -> f64 {
    2.0 / (1.0 + (-10.0 * p).exp()) - 1.0
}

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

fn classifier(path: nn::Path, d: i64, hidden: i64) -> nn::Sequential {
    nn::seq().add(nn::linear(&path / "l1", d, hidden, Default::default())).add_fn(|x| x.relu()).add(nn::linear(
        &path / "l2",
        hidden,
        1,
        Default::default(),
    ))
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
            du: classifier(root / "du", d, hidden),
            dv: classifier(root / "dv", d, hidden),
        }
    }
}

struct Domain {
    users: Tensor,
    items: Tensor,
    uid: Vec<u32>,
    iid: Vec<u32>,
    ru: Tensor,
    ri: Tensor,
    y: Tensor,
}

fn domain(
    inputs: &Inputs,
    uname: &str,
    iname: &str,
    rname: &str,
    dev: tch::Device,
) -> Result<(Domain, usize), StageError> {
    let (uid, uflat, d) = read_vectors(inputs.table(uname)?, uname)?;
    let (iid, iflat, d2) = read_vectors(inputs.table(iname)?, iname)?;
    if d != d2 {
        return Err(StageError::Input(format!("`{uname}` has {d} dimensions, `{iname}` {d2}")));
    }
    let r = Ratings::from_batch(inputs.table(rname)?, rname)?;
    let um: HashMap<u32, i64> = uid.iter().enumerate().map(|(i, &u)| (u, i as i64)).collect();
    let im: HashMap<u32, i64> = iid.iter().enumerate().map(|(i, &u)| (u, i as i64)).collect();
    let (mut ru, mut ri, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..r.len() {
        if let (Some(&u), Some(&i)) = (um.get(&r.user[k]), im.get(&r.item[k])) {
            ru.push(u);
            ri.push(i);
            y.push(r.rating[k]);
        }
    }
    if y.is_empty() {
        return Err(StageError::Data(format!(
            "`{rname}` has no rating between the users of `{uname}` and the items of `{iname}`"
        )));
    }
    let mat = |flat: &[f32], n: usize| Tensor::from_slice(flat).view([n as i64, d as i64]).to_device(dev);
    Ok((
        Domain {
            users: mat(&uflat, uid.len()),
            items: mat(&iflat, iid.len()),
            ru: Tensor::from_slice(&ru).to_device(dev),
            ri: Tensor::from_slice(&ri).to_device(dev),
            y: Tensor::from_slice(&y).to_device(dev),
            uid,
            iid,
        },
        d,
    ))
}

fn finite(t: &Tensor, loss: &str, iteration: usize) -> Result<f64, StageError> {
    let v = t.double_value(&[]);
    if v.is_finite() {
        Ok(v)
    } else {
        Err(StageError::NonFinite { loss: loss.into(), iteration })
    }
}

fn mse_all(dom: &Domain, fu: &nn::Linear, fv: &nn::Linear) -> f64 {
    tch::no_grad(|| {
        let u = fu.forward(&dom.users.index_select(0, &dom.ru));
        let v = fv.forward(&dom.items.index_select(0, &dom.ri));
        (u * v).sum_dim_intlist(1, false, Kind::Float).mse_loss(&dom.y, tch::Reduction::Mean).double_value(&[])
    })
}

/// Balanced accuracy of a classifier (real = 1) on all sim and real rows.
fn accuracy(d: &nn::Sequential, sim: &Tensor, real: &Tensor) -> f64 {
    tch::no_grad(|| {
        let s = d.forward(sim).lt(0.0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        let r = d.forward(real).ge(0.0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        (s + r) / 2.0
    })
}

/// Trains DARec and produces the stage's outputs.
pub fn run(ctx: &Context, inputs: &Inputs, p: &DarecParams) -> Result<Outputs, StageError> {
    seed(p.seed);
    let dev = tch_device(ctx.device());
    let (sim, d) = domain(inputs, "sim_user_vecs", "sim_item_vecs", "sim", dev)?;
    let (real, d2) = domain(inputs, "real_user_vecs", "real_item_vecs", "real_train", dev)?;
    if d != d2 {
        return Err(StageError::Input(format!("sim vectors have {d} dimensions, real vectors {d2}")));
    }
    let d = d as i64;
    let vs = nn::VarStore::new(dev);
    let m = Model::new(&vs.root(), d, p.hidden);
    let mut opt = nn::Adam::default().build(&vs, p.lr).map_err(|e| StageError::Failed(e.to_string()))?;
    let n_sim = sim.y.size()[0];
    let n_real = real.y.size()[0];
    let bs = p.batch as i64;
    let steps_per_epoch = (n_sim.max(n_real) + bs - 1) / bs;
    let total = steps_per_epoch as usize * p.epochs;
    let opts = (Kind::Int64, dev);
    let bce = |logits: Tensor, target: f64| {
        logits.binary_cross_entropy_with_logits::<Tensor>(&logits.full_like(target), None, None, tch::Reduction::Mean)
    };
    let mut curves: Vec<[f64; 7]> = Vec::new();
    let mut step = 0usize;
    for epoch in 0..p.epochs {
        ctx.check_cancelled()?;
        let mut dom_sum = 0.0;
        for _ in 0..steps_per_epoch {
            let lambda = dann_lambda(step as f64 / total.max(1) as f64);
            let bs_s = Tensor::randint(n_sim, [bs.min(n_sim)], opts);
            let bs_r = Tensor::randint(n_real, [bs.min(n_real)], opts);
            let pred = |dom: &Domain, fu: &nn::Linear, fv: &nn::Linear, b: &Tensor| {
                let u = fu.forward(&dom.users.index_select(0, &dom.ru.index_select(0, b)));
                let v = fv.forward(&dom.items.index_select(0, &dom.ri.index_select(0, b)));
                (u * v).sum_dim_intlist(1, false, Kind::Float).mse_loss(&dom.y.index_select(0, b), tch::Reduction::Mean)
            };
            let l_pred = pred(&sim, &m.fus, &m.fvs, &bs_s) + pred(&real, &m.fur, &m.fvr, &bs_r);
            // Domain loss on random users and items of each domain, through the reversal layer.
            let pick = |t: &Tensor| t.index_select(0, &Tensor::randint(t.size()[0], [bs.min(t.size()[0])], opts));
            let us = grl(&m.fus.forward(&pick(&sim.users)), lambda);
            let ur = grl(&m.fur.forward(&pick(&real.users)), lambda);
            let is = grl(&m.fvs.forward(&pick(&sim.items)), lambda);
            let ir = grl(&m.fvr.forward(&pick(&real.items)), lambda);
            let l_dom = bce(m.du.forward(&us), 0.0)
                + bce(m.du.forward(&ur), 1.0)
                + bce(m.dv.forward(&is), 0.0)
                + bce(m.dv.forward(&ir), 1.0);
            finite(&l_pred, "L_pred", step)?;
            dom_sum += finite(&l_dom, "L_dom", step)?;
            let loss = l_pred + l_dom * p.dom_weight;
            opt.backward_step(&loss);
            step += 1;
        }
        let row = [
            epoch as f64,
            dann_lambda(step as f64 / total.max(1) as f64),
            mse_all(&sim, &m.fus, &m.fvs),
            mse_all(&real, &m.fur, &m.fvr),
            dom_sum / steps_per_epoch as f64,
            tch::no_grad(|| accuracy(&m.du, &m.fus.forward(&sim.users), &m.fur.forward(&real.users))),
            tch::no_grad(|| accuracy(&m.dv, &m.fvs.forward(&sim.items), &m.fvr.forward(&real.items))),
        ];
        if !row.iter().all(|x| x.is_finite()) {
            return Err(StageError::NonFinite { loss: "epoch metrics".into(), iteration: step });
        }
        curves.push(row);
        ctx.progress(
            (epoch + 1) as f64 / p.epochs as f64,
            &format!("epoch {} mse {:.3}/{:.3}", epoch + 1, row[2], row[3]),
        );
    }
    let out = |t: Tensor| -> Vec<f32> {
        let t = t.to_device(tch::Device::Cpu).contiguous().view([-1]);
        Vec::<f32>::try_from(&t).expect("float tensor")
    };
    let (us, ur, is, ir) = tch::no_grad(|| {
        (m.fus.forward(&sim.users), m.fur.forward(&real.users), m.fvs.forward(&sim.items), m.fvr.forward(&real.items))
    });
    let col = |k: usize| Arc::new(Float64Array::from(curves.iter().map(|r| r[k]).collect::<Vec<_>>()));
    let curves_t = batch(vec![
        ("epoch", Arc::new(UInt32Array::from(curves.iter().map(|r| r[0] as u32).collect::<Vec<_>>()))),
        ("lambda", col(1)),
        ("mse_sim", col(2)),
        ("mse_real", col(3)),
        ("dom_loss", col(4)),
        ("acc_users", col(5)),
        ("acc_items", col(6)),
    ])?;
    let du = d as usize;
    Ok(Outputs::from([
        ("sim_user_vecs".into(), Artifact::Table(vectors(sim.uid.clone(), out(us), du)?)),
        ("real_user_vecs".into(), Artifact::Table(vectors(real.uid.clone(), out(ur), du)?)),
        ("sim_item_vecs".into(), Artifact::Table(vectors(sim.iid.clone(), out(is), du)?)),
        ("real_item_vecs".into(), Artifact::Table(vectors(real.iid.clone(), out(ir), du)?)),
        ("weights".into(), Artifact::Weights(weights_bytes(&vs, ctx.scratch())?)),
        ("curves".into(), Artifact::Table(curves_t)),
    ]))
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
}
