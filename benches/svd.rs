//! SVD benchmark (`cargo bench --bench svd`): randomized truncated SVD of a 25k × 650 sparse
//! matrix with 3M non-zeros at D = 128 (goal ≤ 5 s on 2 cores), and a comparison with a dense
//! reference (Jacobi on AᵀA) on a smaller case: time and agreement of the top singular values.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use s2r_stages::numerics::linalg::{symmetric_eigen, Csr};
use s2r_stages::numerics::svd::randomized_svd;

fn random_sparse(m: usize, n: usize, nnz: usize, seed: u64) -> Csr {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // Low-rank structure plus noise, like ratings: a user's rating depends on a few tastes.
    let k = 8;
    let uf: Vec<f64> = (0..m * k).map(|_| rng.random::<f64>()).collect();
    let vf: Vec<f64> = (0..n * k).map(|_| rng.random::<f64>()).collect();
    let mut t = Vec::with_capacity(nnz);
    for _ in 0..nnz {
        let (r, c) = (rng.random_range(0..m), rng.random_range(0..n));
        let s: f64 = (0..k).map(|j| uf[r * k + j] * vf[c * k + j]).sum::<f64>() / 2.0;
        t.push((r as u32, c as u32, (1.0 + s + rng.random::<f64>()).round().clamp(1.0, 5.0)));
    }
    Csr::from_triplets(m, n, t)
}

fn main() {
    println!("| benchmark | result | goal |");
    println!("|---|---:|---|");
    let a = random_sparse(25_000, 650, 3_350_000, 1);
    let _ = randomized_svd(&a, 128, 10, 3, 0); // warm up
    let mut times = Vec::new();
    for s in 0..3 {
        let t = Instant::now();
        let svd = randomized_svd(&a, 128, 10, 3, s);
        times.push(t.elapsed().as_secs_f64());
        assert_eq!(svd.s.len(), 128);
    }
    times.sort_by(|x, y| x.partial_cmp(y).unwrap());
    println!(
        "| randomized SVD 25,000 × 650, {} nnz, D = 128, 3 power iterations (median of 3) | {:.2} s | ≤ 5 s |",
        a.nnz(),
        times[1]
    );

    let small = random_sparse(4_000, 400, 200_000, 2);
    let t = Instant::now();
    let svd = randomized_svd(&small, 64, 10, 3, 0);
    let fast = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let d = small.to_dense();
    let (evals, _) = symmetric_eigen(&d.t_mul(&d));
    let dense = t.elapsed().as_secs_f64();
    let rel = |j: usize| (svd.s[j] - evals[j].sqrt()).abs() / evals[j].sqrt();
    let worst8 = (0..8).map(rel).fold(0.0f64, f64::max);
    let worst = (8..64).map(rel).fold(0.0f64, f64::max);
    println!("| 4,000 × 400 (200k nnz), D = 64: randomized | {:.3} s | — |", fast);
    println!("| same, dense reference (AᵀA + Jacobi, all 400) | {:.3} s | — |", dense);
    println!("| max relative error vs dense: σ1..σ8 (the planted rank-8 signal) / σ9..σ64 (noise floor) | {:.1e} / {:.1e} | — |", worst8, worst);
    libtorch_reference(&small, fast, "4,000 × 400");
    libtorch_reference(&a, times[1], "25,000 × 650");
}

/// With the `torch` feature: libtorch's dense SVD (LAPACK) of the same smaller matrix, the
/// measurement behind choosing the pure-Rust sparse randomized SVD.
#[cfg(feature = "torch")]
fn libtorch_reference(a: &Csr, ours: f64, what: &str) {
    use s2r_stages::tch::{Kind, Tensor};
    let d = a.to_dense();
    let t = Tensor::from_slice(&d.data).view([d.rows as i64, d.cols as i64]).to_kind(Kind::Float);
    let start = Instant::now();
    let (_, s, _) = t.svd(true, true);
    let dense = start.elapsed().as_secs_f64();
    let _ = s.double_value(&[0]);
    println!("| {what}: libtorch dense SVD (f32, LAPACK, all values) | {dense:.3} s (ours {ours:.3} s) | — |");
}

#[cfg(not(feature = "torch"))]
fn libtorch_reference(_a: &Csr, _ours: f64, _what: &str) {
    println!("| libtorch dense SVD | build with `--features torch` to compare | — |");
}
