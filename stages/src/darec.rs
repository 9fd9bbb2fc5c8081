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
use crate::torch::{finite, random_indices, seeded, tch_device, weights_bytes};

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

pub(crate) fn classifier(path: nn::Path, d: i64, hidden: i64) -> nn::Sequential {
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
            // Optimizer group 1: the classifiers get their own learning rate.
            du: classifier(&root.set_group(1) / "du", d, hidden),
            dv: classifier(&root.set_group(1) / "dv", d, hidden),
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
    let dev = tch_device(ctx.device());
    let (sim, d) = domain(inputs, "sim_user_vecs", "sim_item_vecs", "sim", dev)?;
    let (real, d2) = domain(inputs, "real_user_vecs", "real_item_vecs", "real_train", dev)?;
    if d != d2 {
        return Err(StageError::Input(format!("sim vectors have {d} dimensions, real vectors {d2}")));
    }
    let d = d as i64;
    let mut vs = nn::VarStore::new(tch::Device::Cpu);
    let m = seeded(p.seed, || Model::new(&vs.root(), d, p.hidden));
    crate::torch::to_device(&mut [&mut vs], dev);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(p.seed);
    let mut opt = nn::Adam::default().build(&vs, p.lr).map_err(|e| StageError::Failed(e.to_string()))?;
    let n_sim = sim.y.size()[0];
    let n_real = real.y.size()[0];
    let bs = p.batch as i64;
    let steps_per_epoch = (n_sim.max(n_real) + bs - 1) / bs;
    let total = steps_per_epoch as usize * p.epochs;
    let bce = |logits: Tensor, target: f64| {
        logits.binary_cross_entropy_with_logits::<Tensor>(&logits.full_like(target), None, None, tch::Reduction::Mean)
    };
    let mut curves: Vec<[f64; 7]> = Vec::new();
    let mut step = 0usize;
    for epoch in 0..p.epochs {
        ctx.check_cancelled()?;
        let mut dom_sum = 0.0;
        for _ in 0..steps_per_epoch {
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
            let l_pred = pred(&sim, &m.fus, &m.fvs, &bs_s) + pred(&real, &m.fur, &m.fvr, &bs_r);
            // Domain loss on random users and items of each domain, through the reversal layer.
            let mut pick =
                |t: &Tensor| t.index_select(0, &random_indices(&mut rng, t.size()[0], bs.min(t.size()[0]), dev));
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

/// Separability of two sets of vectors: a fresh classifier (the domain classifiers' architecture)
/// is trained on every other row of each set and scored on the rows it did not see, as balanced
/// accuracy. 0.5 = indistinguishable, 1 = separable.
pub fn probe_accuracy(sim: &[f32], real: &[f32], d: usize, hidden: i64, seed_value: u64) -> f64 {
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let clf = seeded(seed_value, || classifier(vs.root() / "probe", d as i64, hidden));
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
        let loss = ls.binary_cross_entropy_with_logits::<Tensor>(&ls.zeros_like(), None, None, tch::Reduction::Mean)
            + lr.binary_cross_entropy_with_logits::<Tensor>(&lr.ones_like(), None, None, tch::Reduction::Mean)
            + vs.trainable_variables()
                .iter()
                .map(|w| w.square().sum(Kind::Float))
                .fold(Tensor::zeros([], (Kind::Float, tch::Device::Cpu)), |a, b| a + b)
                * 1e-4;
        opt.backward_step(&loss);
    }
    accuracy(&clf, &ts, &tr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::data_split::split;
    use crate::kinds::embed_svd::factorize;
    use crate::stage::Stage;

    fn table(o: &Outputs, name: &str) -> arrow::record_batch::RecordBatch {
        match &o[name] {
            Artifact::Table(t) => t.clone(),
            _ => panic!("{name} is not a table"),
        }
    }

    fn f32s(v: &[f64]) -> Vec<f32> {
        v.iter().map(|&x| x as f32).collect()
    }

    fn raw_mse(r: &Ratings, f: &crate::kinds::embed_svd::Factors) -> f64 {
        let (mut s, mut n) = (0.0, 0.0);
        for k in 0..r.len() {
            let (Ok(u), Ok(i)) = (f.users.binary_search(&r.user[k]), f.items.binary_search(&r.item[k])) else {
                continue;
            };
            let p: f64 = (0..f.k).map(|j| f.user_vecs[u * f.k + j] * f.item_vecs[i * f.k + j]).sum();
            s += (p - f64::from(r.rating[k])).powi(2);
            n += 1.0;
        }
        s / n
    }

    /// ml-latest-small, Adventure → Crime, D = 32: the SVD factors, the split, and DARec's inputs.
    fn setup(
        poison: bool,
    ) -> (Inputs, crate::kinds::embed_svd::Factors, crate::kinds::embed_svd::Factors, Ratings, Ratings) {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context::for_tests(dir.path());
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/ml-latest-small");
        let loaded = crate::kinds::data_movielens::MovieLens
            .run(&ctx, &Inputs::default(), &serde_json::json!({"path": data}))
            .unwrap();
        let ratings = Ratings::from_batch(&table(&loaded, "ratings"), "r").unwrap();
        let items = crate::ratings::Items::from_batch(&table(&loaded, "items"), "i").unwrap();
        let s = split(&ratings, &items, &serde_json::json!({"sim": "Adventure", "real": "Crime", "seed": 7})).unwrap();
        let fs = factorize(&s.sim, &s.sim_items, 32, 10, 3, 1);
        let fr = factorize(&s.real_train, &s.real_items, 32, 10, 3, 2);
        assert_eq!((fs.k, fr.k), (32, 32));
        let mut inputs = Inputs::default();
        let mut su = f32s(&fs.user_vecs);
        if poison {
            su[5] = f32::NAN;
        }
        inputs.push("sim_user_vecs", "svd", Artifact::Table(vectors(fs.users.clone(), su, 32).unwrap()));
        inputs.push(
            "sim_item_vecs",
            "svd",
            Artifact::Table(vectors(fs.items.clone(), f32s(&fs.item_vecs), 32).unwrap()),
        );
        inputs.push(
            "real_user_vecs",
            "svd",
            Artifact::Table(vectors(fr.users.clone(), f32s(&fr.user_vecs), 32).unwrap()),
        );
        inputs.push(
            "real_item_vecs",
            "svd",
            Artifact::Table(vectors(fr.items.clone(), f32s(&fr.item_vecs), 32).unwrap()),
        );
        inputs.push("sim", "split", Artifact::Table(s.sim.to_batch().unwrap()));
        inputs.push("real_train", "split", Artifact::Table(s.real_train.to_batch().unwrap()));
        (inputs, fs, fr, s.sim, s.real_train)
    }

    #[test]
    fn darec_on_ml_latest_small_aligns_item_domains_and_keeps_ratings() {
        let (inputs, fs, fr, sim, real) = setup(false);
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context::for_tests(dir.path());
        let train = |dom_weight: f64| {
            let p = DarecParams::from_json(&serde_json::json!({"epochs": 20, "seed": 1, "dom_weight": dom_weight}))
                .unwrap();
            let out = run(&ctx, &inputs, &p).unwrap();
            let read = |name: &str| crate::table::read_vectors(&table(&out, name), name).unwrap();
            let (_, is, d) = read("sim_item_vecs");
            let (_, ir, _) = read("real_item_vecs");
            let curves = table(&out, "curves");
            let last = |c: &str| *crate::table::f64_column(&curves, "curves", c).unwrap().last().unwrap();
            assert!(matches!(out["weights"], Artifact::Weights(_)));
            (probe_accuracy(&is, &ir, d, 64, 5), last("mse_sim"), last("mse_real"))
        };
        // The unadapted model: the same maps trained on L_pred alone.
        let (acc0, mse_s0, mse_r0) = train(0.0);
        let (acc, mse_s, mse_r) = train(1.0);
        let raw = probe_accuracy(&f32s(&fs.item_vecs), &f32s(&fr.item_vecs), 32, 64, 5);
        eprintln!("held-out item-domain probe accuracy: raw SVD {raw:.3}, L_pred only {acc0:.3}, DARec {acc:.3}");
        eprintln!(
            "rating MSE sim/real: raw SVD {:.3}/{:.3}, L_pred only {mse_s0:.3}/{mse_r0:.3}, DARec {mse_s:.3}/{mse_r:.3}",
            raw_mse(&sim, &fs),
            raw_mse(&real, &fr)
        );
        assert!(acc < acc0 - 0.05, "DARec must be less separable than the unadapted model: {acc0} → {acc}");
        assert!((acc - 0.5).abs() < (acc0 - 0.5).abs());
        // Stated bound: within 0.25 squared stars of the unadapted model's MSE in each domain.
        assert!(mse_s <= mse_s0 + 0.25 && mse_r <= mse_r0 + 0.25, "{mse_s0}/{mse_r0} → {mse_s}/{mse_r}");
    }

    #[test]
    fn results_do_not_depend_on_torch_work_running_in_parallel() {
        // Regression: DARec drew minibatches from libtorch's global generator, so a DQN training
        // in a parallel stage changed its output (seen in the quickstart).
        let (inputs, ..) = setup(false);
        let dir = tempfile::tempdir().unwrap();
        let p = DarecParams::from_json(&serde_json::json!({"epochs": 2, "seed": 4})).unwrap();
        let weights = |o: &Outputs| match &o["weights"] {
            Artifact::Weights(w) => w.clone(),
            _ => unreachable!(),
        };
        let alone = weights(&run(&Context::for_tests(dir.path()), &inputs, &p).unwrap());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let noise = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Another stage drawing from libtorch's generator, the way stages do: seeded.
                    let _ = seeded(99, || Tensor::randn([64], (Kind::Float, tch::Device::Cpu)).sum(Kind::Float));
                }
            })
        };
        let busy = weights(&run(&Context::for_tests(dir.path()), &inputs, &p).unwrap());
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        noise.join().unwrap();
        assert!(alone == busy, "DARec's weights changed when another thread used libtorch's RNG");
    }

    #[test]
    fn a_nan_in_training_stops_with_the_loss_and_iteration() {
        let (inputs, ..) = setup(true);
        let dir = tempfile::tempdir().unwrap();
        let p = DarecParams::from_json(&serde_json::json!({"epochs": 2, "seed": 1, "batch": 100000})).unwrap();
        let e = run(&Context::for_tests(dir.path()), &inputs, &p).unwrap_err().to_string();
        assert!(e.starts_with("non-finite L_"), "{e}");
        assert!(e.contains("at iteration 0"), "{e}");
    }

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
