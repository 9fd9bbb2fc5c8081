//! Environment benchmark (`cargo bench --bench env [--features torch]`): steps per second
//! (users × steps / s) of the interactive world (real dynamics: exact probabilities, boredom over
//! the window, a per-user ChaCha stream) next to the replay environment `irs.train` builds from
//! ratings (a hash lookup per step) — the environment alone with a random policy, and, with
//! `torch`, inside the DQN's batched ε-greedy rollout (the training hot loop).

use std::collections::HashMap;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use s2r_stages::env::session::{serve, Env, Replay};
use s2r_stages::env::world::{random_unserved, Dynamics, Population, World, WorldParams};

/// Median seconds of `runs` calls of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[runs / 2]
}

fn main() {
    let p: WorldParams = serde_json::from_value(serde_json::json!({"beta": 1.0, "seed": 11})).unwrap();
    let world = World::new(&p).unwrap();
    let real = world.env(Dynamics::Real, Population::Sim);
    let n = real.pool.len();
    // The replay: 2,000 users with 20 rated items each, looked up as irs.train does.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let table: Vec<HashMap<i64, f32>> =
        (0..2000).map(|_| (0..20).map(|_| (rng.random_range(0..n as i64), rng.random::<f32>())).collect()).collect();
    let reward = |u: usize, a: i64| table[u].get(&a).copied().unwrap_or(0.0);
    let replay = Replay::new(2000, &reward);
    let (users, t) = (512usize, p.session_len);
    let ids: Vec<usize> = (0..users).collect();
    println!("| benchmark | steps/s |");
    println!("|---|---:|");
    for (name, env) in [("world (real dynamics, β = 1)", &real as &dyn Env), ("replay (rating lookup)", &replay)] {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let secs = median(5, || {
            let out = serve(env, &ids, t, 0, &mut |_, so_far| random_unserved(&mut rng, n, so_far));
            std::hint::black_box(out);
        });
        println!(
            "| env only, {name}: {users} users × {t} steps, random policy (median of 5) | {:.0} |",
            (users * t) as f64 / secs
        );
    }
    #[cfg(feature = "torch")]
    rollouts(&world, &real, &replay);
}

#[cfg(feature = "torch")]
fn rollouts(world: &World, real: &dyn Env, replay: &dyn Env) {
    use s2r_stages::neural::irs::episode::{Domain, Side};
    use s2r_stages::neural::irs::qnet::{ItemBias, QNet};
    use s2r_stages::neural::irs::rollout::rollout;
    use s2r_stages::tch::{self, nn, Tensor};
    let d = world.p.dim as i64;
    let n = world.p.items as i64;
    let items = Domain::new(Tensor::from_slice(&world.item_vecs).view([n, d]), Side::Sim);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let net = QNet::new(&vs.root(), d, 64, ItemBias::default());
    // irs.train's batch (64 users) and session length.
    let (users, t) = (64usize, world.p.session_len);
    let ids: Vec<usize> = (0..users).collect();
    for (name, env) in [("world", real), ("replay", replay)] {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let secs = median(9, || {
            std::hint::black_box(rollout(&net, &items, env, &ids, t, 0.5, &mut rng, 0));
        });
        println!(
            "| DQN ε-greedy rollout (LSTM 64, {n} items), {name}: {users} users × {t} steps (median of 9) | {:.0} |",
            (users * t) as f64 / secs
        );
    }
}
