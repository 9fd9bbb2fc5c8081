//! The LSTM-DQN end to end on ml-latest-small (needs the `torch` feature): DQN-R learns in the
//! simulator and beats random on the real test users, bit-deterministically on the CPU.
#![cfg(feature = "torch")]

use std::collections::HashMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use s2r_stages::api::artifact::{Artifact, Inputs};
use s2r_stages::api::context::Context;
use s2r_stages::api::stage::Stage;
use s2r_stages::data::items::Items;
use s2r_stages::data::ratings::Ratings;
use s2r_stages::data::split::split;
use s2r_stages::eval::metrics::{session, summarize, Rule};
use s2r_stages::kinds::data_split::config as split_config;
use s2r_stages::neural::irs::episode::Domain;
use s2r_stages::neural::irs::rollout::greedy_with_feedback;
use s2r_stages::neural::irs::train::{train, TrainOptions, Trained};
use s2r_stages::numerics::factorize::factorize;
use s2r_stages::tch::{self, Tensor};

fn tensor(v: &[f64], d: usize) -> Tensor {
    Tensor::from_slice(&v.iter().map(|&x| x as f32).collect::<Vec<_>>()).view([-1, d as i64])
}

#[test]
fn dqn_r_learns_on_ml_latest_small_and_beats_random() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context::for_tests(dir.path());
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/ml-latest-small");
    let o = s2r_stages::kinds::data_movielens::MovieLens
        .run(&ctx, &Inputs::default(), &serde_json::json!({"path": data}))
        .unwrap();
    let t = |n: &str| match &o[n] {
        Artifact::Table(t) => t.clone(),
        _ => unreachable!(),
    };
    let ratings = Ratings::from_batch(&t("ratings"), "r").unwrap();
    let items = Items::from_batch(&t("items"), "i").unwrap();
    let s = split(
        &ratings,
        &items,
        &split_config(&serde_json::json!({"sim": "Adventure", "real": "Crime", "seed": 7})).unwrap(),
    )
    .unwrap();
    let fs = factorize(&s.sim, &s.sim_items, 32, 10, 3, 1);
    let fr = factorize(&s.real_train, &s.real_items, 32, 10, 3, 2);
    let sim = Domain::new(tensor(&fs.item_vecs, 32));
    let real = Domain::new(tensor(&fr.item_vecs, 32));
    let mut sim_r: Vec<HashMap<i64, f32>> = vec![HashMap::new(); fs.users.len()];
    for k in 0..s.sim.len() {
        let u = fs.users.binary_search(&s.sim.user[k]).unwrap();
        let i = fs.items.binary_search(&s.sim.item[k]).unwrap() as i64;
        sim_r[u].insert(i, s.sim.rating[k] / 5.0);
    }
    let opts = TrainOptions {
        iterations: 300,
        batch: 32,
        session_len: 32,
        gamma: 0.9,
        lr: 1e-3,
        target_every: 20,
        k_interval: 0,
        hidden: 64,
        seed: 3,
        delta_r: None,
    };
    let Trained { vs, curves, .. } = train(
        &sim,
        fs.users.len(),
        &|u, a| sim_r[u].get(&a).copied().unwrap_or(0.0),
        None,
        &opts,
        None,
        tch::Device::Cpu,
        &|_| Ok(()),
    )
    .unwrap();
    let early: f64 = curves[..20].iter().map(|c| c.sim_reward).sum::<f64>() / 20.0;
    let late: f64 = curves[curves.len() - 20..].iter().map(|c| c.sim_reward).sum::<f64>() / 20.0;
    // Test users in the real domain, greedy, rewards from their real ratings.
    let mut test: std::collections::BTreeMap<u32, HashMap<u32, f32>> = Default::default();
    for k in 0..s.test.len() {
        test.entry(s.test.user[k]).or_default().insert(s.test.item[k], s.test.rating[k]);
    }
    let users: Vec<u32> = test.keys().copied().collect();
    let idx: Vec<usize> = (0..users.len()).collect();
    let reward = |u: usize, a: i64| test[&users[u]].get(&fr.items[a as usize]).map_or(0.0, |y| y / 5.0);
    let sessions = greedy_with_feedback(&vs, &real, &idx, 32, 64, &reward);
    let rule = Rule::for_scale(5.0);
    let dqn = summarize(
        &sessions
            .iter()
            .zip(&users)
            .map(|(s, u)| session(&s.iter().map(|&a| fr.items[a as usize]).collect::<Vec<_>>(), &test[u], rule, 32))
            .collect::<Vec<_>>(),
    );
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let random = summarize(
        &users
            .iter()
            .map(|u| {
                let mut pool = fr.items.clone();
                rand::seq::SliceRandom::shuffle(&mut pool[..], &mut rng);
                session(&pool[..32], &test[u], rule, 32)
            })
            .collect::<Vec<_>>(),
    );
    eprintln!("sim reward {early:.3} → {late:.3}; test reward DQN-R {:.4} vs random {:.4}", dqn.reward, random.reward);
    assert!(late > early + 0.05, "it learned in the simulator: {early} → {late}");
    assert!(dqn.reward > 2.0 * random.reward, "DQN-R {} vs random {}", dqn.reward, random.reward);
    // Bit-deterministic on CPU for a fixed seed and thread count.
    let again = |o: &TrainOptions| {
        train(
            &sim,
            fs.users.len(),
            &|u, a| sim_r[u].get(&a).copied().unwrap_or(0.0),
            None,
            &TrainOptions { iterations: 20, ..o.clone() },
            None,
            tch::Device::Cpu,
            &|_| Ok(()),
        )
        .unwrap()
        .curves
    };
    let (a, b) = (again(&opts), again(&opts));
    assert!(a.iter().zip(&b).all(|(a, b)| a.td_loss.to_bits() == b.td_loss.to_bits()));
}
