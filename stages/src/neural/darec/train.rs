//! DARec training in libtorch: masked MSE on the observed ratings of both domains plus the
//! domain loss through gradient reversal, DANN's λ and learning-rate schedules (see
//! `kinds/adapt_darec.rs` for the model and `config.rs` for the defaults).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Float64Array, UInt32Array};
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Kind, Tensor};

use crate::api::artifact::{Artifact, Inputs, Outputs};
use crate::api::context::Context;
use crate::api::error::StageError;
use crate::data::ratings::Ratings;
use crate::data::sessions::ratings_by_user;
use crate::data::table::{batch, read_vectors, vectors};
use crate::eval::metrics::{infer_y_max, session, summarize, top_t, Rule};
use crate::neural::darec::config::DarecConfig;
use crate::neural::darec::model::Model;
use crate::neural::layers::{balanced_accuracy, bce_with_logits, dann_lambda, grl};
use crate::neural::torch::{finite, random_indices, seeded, tch_device, weights_bytes};

struct Domain {
    users: Tensor,
    items: Tensor,
    uid: Vec<u32>,
    iid: Vec<u32>,
    ru: Tensor,
    ri: Tensor,
    y: Tensor,
}

/// The row of each id of `ids`.
fn rows(ids: &[u32]) -> HashMap<u32, i64> {
    ids.iter().enumerate().map(|(i, &u)| (u, i as i64)).collect()
}

/// The ratings of `r` whose user has a row in `um` and item a row in `im`: (user rows, item rows,
/// ratings).
fn observed(r: &Ratings, um: &HashMap<u32, i64>, im: &HashMap<u32, i64>) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
    let (mut ru, mut ri, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..r.len() {
        if let (Some(&u), Some(&i)) = (um.get(&r.user[k]), im.get(&r.item[k])) {
            ru.push(u);
            ri.push(i);
            y.push(r.rating[k]);
        }
    }
    (ru, ri, y)
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
    let (ru, ri, y) = observed(&r, &rows(&uid), &rows(&iid));
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

/// Ratings per chunk of [`mse_all`] (64 MB of gathered rows at d = 128).
const MSE_CHUNK: i64 = 1 << 17;

/// The rating MSE of the mapped vectors over every observed rating of `dom` (a metric: training
/// never reads it). The maps are applied to the user and item tables once, then the rows are
/// gathered chunk by chunk: at ML-25M's scale gathering first and mapping N × d rows made this
/// metric most of DARec's time and its peak memory (4.6 GB for 2.9M ratings).
fn mse_all(dom: &Domain, fu: &nn::Linear, fv: &nn::Linear) -> f64 {
    mse_chunked(dom, fu, fv, MSE_CHUNK)
}

fn mse_chunked(dom: &Domain, fu: &nn::Linear, fv: &nn::Linear, chunk: i64) -> f64 {
    tch::no_grad(|| {
        let (u, v) = (fu.forward(&dom.users), fv.forward(&dom.items));
        let n = dom.y.size()[0];
        let mut sum = 0.0;
        for start in (0..n).step_by(chunk as usize) {
            let len = chunk.min(n - start);
            let pred = (u.index_select(0, &dom.ru.narrow(0, start, len))
                * v.index_select(0, &dom.ri.narrow(0, start, len)))
            .sum_dim_intlist(1, false, Kind::Float);
            sum += (pred - dom.y.narrow(0, start, len)).square().sum(Kind::Double).double_value(&[]);
        }
        sum / n as f64
    })
}

/// Validation users' real ratings, for the per-epoch `val_curve`: each user's sim vector row and
/// real ratings; the pairs (sim user row, real item row, rating) for the held-out MSE.
struct Val {
    users: Vec<(Option<i64>, std::collections::HashMap<u32, f32>)>,
    ru: Tensor,
    ri: Tensor,
    y: Tensor,
    rule: Rule,
    t: usize,
}

impl Val {
    fn new(r: &Ratings, sim: &Domain, real: &Domain, t: usize, dev: tch::Device) -> Self {
        let um = rows(&sim.uid);
        // A user without sim ratings has no sim vector: scores 0 for every item, as in `eval.static`.
        let users: Vec<_> = ratings_by_user(r).into_iter().map(|(u, m)| (um.get(&u).copied(), m)).collect();
        let (ru, ri, y) = observed(r, &um, &rows(&real.iid));
        Val {
            users,
            ru: Tensor::from_slice(&ru).to_device(dev),
            ri: Tensor::from_slice(&ri).to_device(dev),
            y: Tensor::from_slice(&y).to_device(dev),
            rule: Rule::for_scale(infer_y_max([r])),
            t,
        }
    }

    /// (users, reward, precision, held-out MSE) of greedy sessions by ⟨F_U^S u^S, F_V^R v^R⟩, as
    /// `eval.static` `method: darec` scores them.
    fn measure(&self, sim: &Domain, real: &Domain, fus: &nn::Linear, fvr: &nn::Linear) -> [f64; 4] {
        tch::no_grad(|| {
            let us = fus.forward(&sim.users);
            let ir = fvr.forward(&real.items);
            let mse = if self.y.size()[0] > 0 {
                (us.index_select(0, &self.ru) * ir.index_select(0, &self.ri))
                    .sum_dim_intlist(1, false, Kind::Float)
                    .mse_loss(&self.y, tch::Reduction::Mean)
                    .double_value(&[])
            } else {
                f64::NAN
            };
            let rows = Tensor::from_slice(&self.users.iter().map(|u| u.0.unwrap_or(0)).collect::<Vec<_>>())
                .to_device(us.device());
            let known =
                Tensor::from_slice(&self.users.iter().map(|u| f64::from(u8::from(u.0.is_some()))).collect::<Vec<_>>())
                    .to_device(us.device())
                    .unsqueeze(1);
            let scores = us.index_select(0, &rows).to_kind(Kind::Double).matmul(&ir.to_kind(Kind::Double).tr()) * known;
            let flat = Vec::<f64>::try_from(scores.to_device(tch::Device::Cpu).contiguous().view([-1]))
                .expect("double tensor");
            let n = real.iid.len();
            let sessions: Vec<_> = self
                .users
                .iter()
                .enumerate()
                .map(|(k, (_, m))| {
                    let recs = top_t(&real.iid, &flat[k * n..(k + 1) * n], self.t);
                    session(&recs, m, self.rule, self.t)
                })
                .collect();
            let s = summarize(&sessions);
            [s.users as f64, s.reward, s.precision, mse]
        })
    }
}

/// Trains DARec and produces the stage's outputs.
pub fn run(ctx: &Context, inputs: &Inputs, p: &DarecConfig) -> Result<Outputs, StageError> {
    let dev = tch_device(ctx.device());
    let (sim, d) = domain(inputs, "sim_user_vecs", "sim_item_vecs", "sim", dev)?;
    let (real, d2) = domain(inputs, "real_user_vecs", "real_item_vecs", "real_train", dev)?;
    if d != d2 {
        return Err(StageError::Input(format!("sim vectors have {d} dimensions, real vectors {d2}")));
    }
    let d = d as i64;
    let mut vs = nn::VarStore::new(tch::Device::Cpu);
    let m = seeded(p.seed, || Model::new(&vs.root(), d, p.hidden));
    crate::neural::torch::to_device(&mut [&mut vs], dev);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(p.seed);
    let mut opt = nn::Adam::default().build(&vs, p.lr).map_err(|e| StageError::Failed(e.to_string()))?;
    let n_sim = sim.y.size()[0];
    let n_real = real.y.size()[0];
    let bs = p.batch as i64;
    let (spe, total) = p.schedule(n_sim.max(n_real) as usize);
    let steps_per_epoch = spe as i64;
    // The cross-domain pairs: shared users' real ratings with their sim user vectors.
    // (index of the real rating, the rater's sim user row) for raters with a sim vector.
    let sim_rows = rows(&sim.uid);
    let ru_cpu = Vec::<i64>::try_from(real.ru.to_device(tch::Device::Cpu)).expect("int tensor");
    let (cross_idx, cross_rows): (Vec<i64>, Vec<i64>) = ru_cpu
        .iter()
        .enumerate()
        .filter_map(|(k, &u)| sim_rows.get(&real.uid[u as usize]).map(|&row| (k as i64, row)))
        .unzip();
    let cross_u = Tensor::from_slice(&cross_rows).to_device(dev);
    let cross_k = Tensor::from_slice(&cross_idx).to_device(dev);
    if p.cross_weight > 0.0 && cross_idx.is_empty() {
        return Err(StageError::Data(
            "`cross_weight` needs shared users, and no user of `real_train` has sim vectors (a user-group split, as in rq2, has none by construction): set `cross_weight: 0`".into(),
        ));
    }
    let val = if inputs.has("val") {
        Some(Val::new(&Ratings::from_batch(inputs.table("val")?, "val")?, &sim, &real, p.val_session_len, dev))
    } else {
        None
    };
    let mut val_rows: Vec<(usize, [f64; 4])> = Vec::new();
    if let Some(v) = &val {
        val_rows.push((0, v.measure(&sim, &real, &m.fus, &m.fvr)));
    }
    let mut curves: Vec<[f64; 7]> = Vec::new();
    let mut step = 0usize;
    for epoch in 0..p.epochs {
        ctx.check_cancelled()?;
        let mut dom_sum = 0.0;
        for _ in 0..steps_per_epoch {
            // Ctrl-C stops within one minibatch step; nothing is cached.
            ctx.check_cancelled()?;
            let progress = step as f64 / total.max(1) as f64;
            let lambda = dann_lambda(progress);
            // DANN's learning-rate annealing μ_p = μ₀ / (1 + 10p)^0.75 settles the min-max game.
            let lr = p.lr / (1.0 + 10.0 * progress).powf(0.75);
            opt.set_lr_group(0, lr);
            opt.set_lr_group(1, lr * p.disc_lr_mult);
            let bs_s = random_indices(&mut rng, n_sim, bs.min(n_sim), dev);
            let bs_r = random_indices(&mut rng, n_real, bs.min(n_real), dev);
            let pred = |dom: &Domain, fu: &nn::Linear, fv: &nn::Linear, b: &Tensor| {
                let u = fu.forward(&dom.users.index_select(0, &dom.ru.index_select(0, b)));
                let v = fv.forward(&dom.items.index_select(0, &dom.ri.index_select(0, b)));
                (u * v).sum_dim_intlist(1, false, Kind::Float).mse_loss(&dom.y.index_select(0, b), tch::Reduction::Mean)
            };
            let mut l_pred = pred(&sim, &m.fus, &m.fvs, &bs_s) + pred(&real, &m.fur, &m.fvr, &bs_r);
            if p.cross_weight > 0.0 {
                let n = cross_idx.len() as i64;
                let b = random_indices(&mut rng, n, bs.min(n), dev);
                let k = cross_k.index_select(0, &b);
                let u = m.fus.forward(&sim.users.index_select(0, &cross_u.index_select(0, &b)));
                let v = m.fvr.forward(&real.items.index_select(0, &real.ri.index_select(0, &k)));
                let l_cross = (u * v)
                    .sum_dim_intlist(1, false, Kind::Float)
                    .mse_loss(&real.y.index_select(0, &k), tch::Reduction::Mean);
                l_pred += l_cross * p.cross_weight;
            }
            // Domain loss on random users and items of each domain, through the reversal layer.
            let mut pick =
                |t: &Tensor| t.index_select(0, &random_indices(&mut rng, t.size()[0], bs.min(t.size()[0]), dev));
            let us = grl(&m.fus.forward(&pick(&sim.users)), lambda);
            let ur = grl(&m.fur.forward(&pick(&real.users)), lambda);
            let is = grl(&m.fvs.forward(&pick(&sim.items)), lambda);
            let ir = grl(&m.fvr.forward(&pick(&real.items)), lambda);
            let l_dom = bce_with_logits(&m.du.forward(&us), 0.0)
                + bce_with_logits(&m.du.forward(&ur), 1.0)
                + bce_with_logits(&m.dv.forward(&is), 0.0)
                + bce_with_logits(&m.dv.forward(&ir), 1.0);
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
            tch::no_grad(|| {
                balanced_accuracy(&m.du.forward(&m.fus.forward(&sim.users)), &m.du.forward(&m.fur.forward(&real.users)))
            }),
            tch::no_grad(|| {
                balanced_accuracy(&m.dv.forward(&m.fvs.forward(&sim.items)), &m.dv.forward(&m.fvr.forward(&real.items)))
            }),
        ];
        if !row.iter().all(|x| x.is_finite()) {
            return Err(StageError::NonFinite { loss: "epoch metrics".into(), iteration: step });
        }
        curves.push(row);
        if let Some(v) = &val {
            val_rows.push((epoch + 1, v.measure(&sim, &real, &m.fus, &m.fvr)));
        }
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
    let vcol = |k: usize| Arc::new(Float64Array::from(val_rows.iter().map(|r| r.1[k]).collect::<Vec<_>>()));
    let val_t = batch(vec![
        ("epoch", Arc::new(UInt32Array::from(val_rows.iter().map(|r| r.0 as u32).collect::<Vec<_>>()))),
        ("users", Arc::new(UInt32Array::from(val_rows.iter().map(|r| r.1[0] as u32).collect::<Vec<_>>()))),
        ("reward", vcol(1)),
        ("precision", vcol(2)),
        ("cross_mse", vcol(3)),
    ])?;
    let du = d as usize;
    Ok(Outputs::from([
        ("sim_user_vecs".into(), Artifact::Table(vectors(sim.uid.clone(), out(us), du)?)),
        ("real_user_vecs".into(), Artifact::Table(vectors(real.uid.clone(), out(ur), du)?)),
        ("sim_item_vecs".into(), Artifact::Table(vectors(sim.iid.clone(), out(is), du)?)),
        ("real_item_vecs".into(), Artifact::Table(vectors(real.iid.clone(), out(ir), du)?)),
        ("weights".into(), Artifact::Weights(weights_bytes(&vs, ctx.scratch())?)),
        ("curves".into(), Artifact::Table(curves_t)),
        ("val_curve".into(), Artifact::Table(val_t)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunked_rating_mse_equals_the_gathered_one() {
        tch::manual_seed(3);
        let (nu, ni, n, d) = (40, 30, 1000, 8);
        let dom = Domain {
            users: Tensor::randn([nu, d], (Kind::Float, tch::Device::Cpu)),
            items: Tensor::randn([ni, d], (Kind::Float, tch::Device::Cpu)),
            uid: (0..nu as u32).collect(),
            iid: (0..ni as u32).collect(),
            ru: Tensor::randint(nu, [n], (Kind::Int64, tch::Device::Cpu)),
            ri: Tensor::randint(ni, [n], (Kind::Int64, tch::Device::Cpu)),
            y: Tensor::randn([n], (Kind::Float, tch::Device::Cpu)) * 2.0 + 3.0,
        };
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let (fu, fv) = (
            nn::linear(vs.root() / "u", d, d, Default::default()),
            nn::linear(vs.root() / "v", d, d, Default::default()),
        );
        // The direct form: gather the raw rows, map them, then the mean squared error.
        let direct = tch::no_grad(|| {
            let u = fu.forward(&dom.users.index_select(0, &dom.ru));
            let v = fv.forward(&dom.items.index_select(0, &dom.ri));
            (u * v).sum_dim_intlist(1, false, Kind::Float).mse_loss(&dom.y, tch::Reduction::Mean).double_value(&[])
        });
        assert!(direct > 1.0, "a non-trivial error: {direct}");
        for chunk in [64, 999, 1000, 4096] {
            let m = mse_chunked(&dom, &fu, &fv, chunk);
            assert!((m - direct).abs() < 1e-5 * direct, "chunk {chunk}: {m} vs {direct}");
        }
    }
}
