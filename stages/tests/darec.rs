//! DARec end to end on ml-latest-small (needs the `torch` feature): it aligns the item domains,
//! keeps the rating information, does not depend on parallel torch work, and stops on NaN.
#![cfg(feature = "torch")]

use s2r_stages::api::artifact::{Artifact, Inputs, Outputs};
use s2r_stages::api::context::Context;
use s2r_stages::api::stage::Stage;
use s2r_stages::data::items::Items;
use s2r_stages::data::ratings::Ratings;
use s2r_stages::data::split::split;
use s2r_stages::data::table::{f64_column, read_vectors, vectors};
use s2r_stages::kinds::adapt_darec::config;
use s2r_stages::kinds::data_split::config as split_config;
use s2r_stages::neural::darec::probe::probe_accuracy;
use s2r_stages::neural::darec::train::run;
use s2r_stages::neural::torch::seeded;
use s2r_stages::numerics::factorize::{factorize, Factors};
use s2r_stages::tch::{Kind, Tensor};

fn table(o: &Outputs, name: &str) -> arrow::record_batch::RecordBatch {
    match &o[name] {
        Artifact::Table(t) => t.clone(),
        _ => panic!("{name} is not a table"),
    }
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn raw_mse(r: &Ratings, f: &Factors) -> f64 {
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
fn setup(poison: bool) -> (Inputs, Factors, Factors, Ratings, Ratings) {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::for_tests(dir.path());
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/ml-latest-small");
    let loaded = s2r_stages::kinds::data_movielens::MovieLens
        .run(&ctx, &Inputs::default(), &serde_json::json!({"path": data}))
        .unwrap();
    let ratings = Ratings::from_batch(&table(&loaded, "ratings"), "r").unwrap();
    let items = Items::from_batch(&table(&loaded, "items"), "i").unwrap();
    let s = split(
        &ratings,
        &items,
        &split_config(&serde_json::json!({"sim": "Adventure", "real": "Crime", "seed": 7})).unwrap(),
    )
    .unwrap();
    let fs = factorize(&s.sim, &s.sim_items, 32, 10, 3, 1);
    let fr = factorize(&s.real_train, &s.real_items, 32, 10, 3, 2);
    assert_eq!((fs.k, fr.k), (32, 32));
    let mut inputs = Inputs::default();
    let mut su = f32s(&fs.user_vecs);
    if poison {
        su[5] = f32::NAN;
    }
    inputs.push("sim_user_vecs", "svd", Artifact::Table(vectors(fs.users.clone(), su, 32).unwrap()));
    inputs.push("sim_item_vecs", "svd", Artifact::Table(vectors(fs.items.clone(), f32s(&fs.item_vecs), 32).unwrap()));
    inputs.push("real_user_vecs", "svd", Artifact::Table(vectors(fr.users.clone(), f32s(&fr.user_vecs), 32).unwrap()));
    inputs.push("real_item_vecs", "svd", Artifact::Table(vectors(fr.items.clone(), f32s(&fr.item_vecs), 32).unwrap()));
    inputs.push("sim", "split", Artifact::Table(s.sim.to_batch().unwrap()));
    inputs.push("real_train", "split", Artifact::Table(s.real_train.to_batch().unwrap()));
    inputs.push("val", "split", Artifact::Table(s.val.to_batch().unwrap()));
    (inputs, fs, fr, s.sim, s.real_train)
}

#[test]
fn darec_on_ml_latest_small_aligns_item_domains_and_keeps_ratings() {
    let (inputs, fs, fr, sim, real) = setup(false);
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::for_tests(dir.path());
    let train = |dom_weight: f64| {
        let p =
            config(&serde_json::json!({"epochs": 20, "seed": 1, "dom_weight": dom_weight, "cross_weight": 0})).unwrap();
        let out = run(&ctx, &inputs, &p).unwrap();
        let read = |name: &str| read_vectors(&table(&out, name), name).unwrap();
        let (_, is, d) = read("sim_item_vecs");
        let (_, ir, _) = read("real_item_vecs");
        let curves = table(&out, "curves");
        let last = |c: &str| *f64_column(&curves, "curves", c).unwrap().last().unwrap();
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

/// The cross-domain term (the default `cross_weight: 1`) trains the pairing DARec is evaluated on,
/// ⟨F_U^S u^S, F_V^R v^R⟩, on the shared users. On held-out users (validation: their real ratings
/// never enter training) it lowers the rating MSE of that pairing below the raw SVD vectors' and
/// the adversarial-only DARec's, raises the greedy reward above the initial maps' (identity: MF), and the item domains stay
/// less separable than the raw vectors.
#[test]
fn darec_predicts_held_out_real_ratings_from_sim_vectors() {
    let (inputs, fs, fr, ..) = setup(false);
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::for_tests(dir.path());
    let val_curve = |cross: f64, dom: f64| {
        let p =
            config(&serde_json::json!({"epochs": 20, "seed": 1, "cross_weight": cross, "dom_weight": dom})).unwrap();
        let out = run(&ctx, &inputs, &p).unwrap();
        let v = table(&out, "val_curve");
        let col = |c: &str| f64_column(&v, "val_curve", c).unwrap().to_vec();
        let (_, is, d) = read_vectors(&table(&out, "sim_item_vecs"), "sim_item_vecs").unwrap();
        let (_, ir, _) = read_vectors(&table(&out, "real_item_vecs"), "real_item_vecs").unwrap();
        (col("cross_mse"), col("reward"), probe_accuracy(&is, &ir, d, 64, 5))
    };
    let (mse0, reward0, _) = val_curve(0.0, 1.0);
    let (mse, reward, acc) = val_curve(1.0, 1.0);
    let (_, _, acc_no_dom) = val_curve(1.0, 0.0);
    assert_eq!(mse.len(), 21, "epoch 0 (the initial maps) and one row per epoch");
    let raw = probe_accuracy(&f32s(&fs.item_vecs), &f32s(&fr.item_vecs), 32, 64, 5);
    eprintln!(
        "held-out MSE of ⟨F_U^S u^S, F_V^R v^R⟩: initial {:.2}, adversarial only {:.2}, with the cross term {:.2}; \
         validation reward {:.4} / {:.4} / {:.4}; item-domain probe raw {raw:.3}, without L_dom \
         {acc_no_dom:.3}, DARec {acc:.3}",
        mse[0], mse0[20], mse[20], reward[0], reward0[20], reward[20]
    );
    // Stated bound: the cross term at least halves the initial held-out MSE's excess over 1 ★².
    assert!(mse[20] - 1.0 < 0.5 * (mse[0] - 1.0), "held-out MSE {} → {}", mse[0], mse[20]);
    assert!(mse[20] < mse0[20], "cross term {} vs adversarial only {}", mse[20], mse0[20]);
    assert!(reward[20] >= reward[0], "validation reward {} → {}", reward[0], reward[20]);
    assert!(acc < acc_no_dom - 0.02, "L_dom must make the item domains less separable: {acc_no_dom} → {acc}");
}

#[test]
fn results_do_not_depend_on_torch_work_running_in_parallel() {
    // Regression: DARec drew minibatches from libtorch's global generator, so a DQN training
    // in a parallel stage changed its output (seen in the quickstart).
    let (inputs, ..) = setup(false);
    let dir = tempfile::tempdir().unwrap();
    let p = config(&serde_json::json!({"epochs": 2, "seed": 4})).unwrap();
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
                let _ =
                    seeded(99, || Tensor::randn([64], (Kind::Float, s2r_stages::tch::Device::Cpu)).sum(Kind::Float));
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
    let p = config(&serde_json::json!({"epochs": 2, "seed": 1, "batch": 100000})).unwrap();
    let e = run(&Context::for_tests(dir.path()), &inputs, &p).unwrap_err().to_string();
    assert!(e.starts_with("non-finite L_"), "{e}");
    assert!(e.contains("at iteration 0"), "{e}");
}

#[test]
fn darec_reports_progress_per_epoch_and_stops_within_a_step_when_cancelled() {
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    let (inputs, ..) = setup(false);
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(Vec::<f64>::new()));
    let cancel = Arc::new(AtomicBool::new(false));
    let s = seen.clone();
    let ctx = Context::new(
        dir.path().to_path_buf(),
        2,
        s2r_stages::api::device::Device::Cpu,
        Arc::new(move |f, _| s.lock().unwrap().push(f)),
        cancel.clone(),
    );
    let p = config(&serde_json::json!({"epochs": 3, "seed": 1})).unwrap();
    run(&ctx, &inputs, &p).unwrap();
    let fractions = seen.lock().unwrap().clone();
    assert_eq!(fractions.len(), 3, "one report per epoch: {fractions:?}");
    assert!((fractions[2] - 1.0).abs() < 1e-12);
    cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    let err = run(&ctx, &inputs, &p).unwrap_err();
    assert!(matches!(err, s2r_stages::StageError::Cancelled), "{err}");
}
