//! Randomized truncated SVD (Halko, Martinsson & Tropp 2011, Alg. 4.4 with power iterations) of a
//! sparse matrix, deterministic under a seed and independent of the thread count.

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::numerics::linalg::{orthonormalize, symmetric_eigen, Csr, Dense};

/// `A ≈ U diag(s) Vᵀ` with `k` components, singular values descending.
#[derive(Debug, Clone)]
pub struct Svd {
    /// Left singular vectors, `rows × k`.
    pub u: Dense,
    /// Singular values, descending.
    pub s: Vec<f64>,
    /// Right singular vectors, `cols × k`.
    pub v: Dense,
}

/// The top `k` singular triplets of `a` (k is capped at min(rows, cols)).
pub fn randomized_svd(a: &Csr, k: usize, oversample: usize, power_iters: usize, seed: u64) -> Svd {
    let k = k.min(a.rows).min(a.cols);
    let l = (k + oversample).min(a.rows).min(a.cols);
    let at = a.transpose();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut omega = Dense::zeros(a.cols, l);
    for x in &mut omega.data {
        *x = StandardNormal.sample(&mut rng);
    }
    let mut q = orthonormalize(&a.mul_dense(&omega));
    for _ in 0..power_iters {
        let z = orthonormalize(&at.mul_dense(&q));
        q = orthonormalize(&a.mul_dense(&z));
    }
    // B = Qᵀ A, kept as Bᵀ = Aᵀ Q (cols × l); its small Gram BBᵀ gives U_B and Σ².
    let bt = at.mul_dense(&q);
    let gram = bt.t_mul(&bt);
    let (evals, w) = symmetric_eigen(&gram);
    let s: Vec<f64> = evals.iter().take(k).map(|&e| e.max(0.0).sqrt()).collect();
    let mut wk = Dense::zeros(l, k);
    for r in 0..l {
        for c in 0..k {
            wk.data[r * k + c] = w.at(r, c);
        }
    }
    let mut u = q.mul(&wk);
    let mut v = bt.mul(&wk);
    for c in 0..k {
        let inv = if s[c] > 1e-12 * s[0].max(1e-300) { 1.0 / s[c] } else { 0.0 };
        for r in 0..v.rows {
            v.data[r * k + c] *= inv;
        }
        // Sign convention: the largest-magnitude entry of each right vector is positive.
        let (mut best, mut sign) = (0.0f64, 1.0f64);
        for r in 0..v.rows {
            let x = v.data[r * k + c];
            if x.abs() > best {
                best = x.abs();
                sign = x.signum();
            }
        }
        if sign < 0.0 {
            for r in 0..v.rows {
                v.data[r * k + c] = -v.data[r * k + c];
            }
            for r in 0..u.rows {
                u.data[r * k + c] = -u.data[r * k + c];
            }
        }
    }
    Svd { u, s, v }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planted(m: usize, n: usize, rank: usize, seed: u64) -> (Csr, Vec<f64>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut x = Dense::zeros(m, rank);
        let mut y = Dense::zeros(n, rank);
        for v in x.data.iter_mut().chain(y.data.iter_mut()) {
            *v = StandardNormal.sample(&mut rng);
        }
        let xo = orthonormalize(&x);
        let yo = orthonormalize(&y);
        let sv: Vec<f64> = (0..rank).map(|i| 10.0 * (rank - i) as f64).collect();
        let mut t = Vec::new();
        for r in 0..m {
            for c in 0..n {
                let val: f64 = (0..rank).map(|j| xo.at(r, j) * sv[j] * yo.at(c, j)).sum();
                t.push((r as u32, c as u32, val));
            }
        }
        (Csr::from_triplets(m, n, t), sv)
    }

    #[test]
    fn recovers_a_planted_low_rank_matrix() {
        let (a, sv) = planted(300, 120, 6, 1);
        let svd = randomized_svd(&a, 6, 10, 2, 7);
        for (got, want) in svd.s.iter().zip(&sv) {
            assert!((got - want).abs() < 1e-8 * want, "{got} vs {want}");
        }
        // Reconstruction error relative to ‖A‖_F.
        let d = a.to_dense();
        let mut err = 0.0;
        let mut norm = 0.0;
        for r in 0..d.rows {
            for c in 0..d.cols {
                let rec: f64 = (0..6).map(|j| svd.u.at(r, j) * svd.s[j] * svd.v.at(c, j)).sum();
                err += (rec - d.at(r, c)).powi(2);
                norm += d.at(r, c).powi(2);
            }
        }
        assert!((err / norm).sqrt() < 1e-9, "relative error {}", (err / norm).sqrt());
    }

    #[test]
    fn top_singular_values_match_a_dense_reference_on_a_sparse_matrix() {
        // Sparse random ratings; reference: eigenvalues of the dense AᵀA by Jacobi.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (m, n) = (200, 60);
        let mut t = Vec::new();
        for r in 0..m {
            for c in 0..n {
                let u: f64 = rand::Rng::random(&mut rng);
                if u < 0.1 {
                    t.push((r as u32, c as u32, 1.0 + (u * 40.0).floor()));
                }
            }
        }
        let a = Csr::from_triplets(m, n, t);
        let d = a.to_dense();
        let (evals, _) = symmetric_eigen(&d.t_mul(&d));
        let svd = randomized_svd(&a, 10, 20, 5, 1);
        for (j, e) in evals.iter().take(10).enumerate() {
            let want = e.sqrt();
            assert!((svd.s[j] - want).abs() < 1e-3 * want, "σ{j}: {} vs {want}", svd.s[j]);
        }
        // Deterministic under the seed.
        assert_eq!(randomized_svd(&a, 10, 20, 5, 1).u, svd.u);
        // Orthonormal factors.
        let utu = svd.u.t_mul(&svd.u);
        for i in 0..10 {
            for j in 0..10 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((utu.at(i, j) - want).abs() < 1e-8);
            }
        }
    }
}
