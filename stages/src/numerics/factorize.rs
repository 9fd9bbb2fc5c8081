//! Matrix factorization of a ratings matrix by randomized truncated SVD: UΣ^½ and VΣ^½ (the
//! `embed.svd` stage; raw ratings as values, unobserved = 0).

use std::collections::BTreeSet;

use crate::data::ratings::Ratings;
use crate::numerics::linalg::Csr;
use crate::numerics::svd::randomized_svd;

/// One domain's factors.
pub struct Factors {
    /// Row ids (users), sorted.
    pub users: Vec<u32>,
    /// Column ids (the item pool), sorted.
    pub items: Vec<u32>,
    /// Rank used.
    pub k: usize,
    /// UΣ^½, row-major users × k.
    pub user_vecs: Vec<f64>,
    /// VΣ^½, row-major items × k.
    pub item_vecs: Vec<f64>,
    /// Singular values.
    pub singular: Vec<f64>,
}

/// Factorizes `ratings` restricted to the `items` pool.
pub fn factorize(
    ratings: &Ratings,
    items: &[u32],
    dim: usize,
    oversample: usize,
    power_iters: usize,
    seed: u64,
) -> Factors {
    let users: Vec<u32> = ratings.user.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
    let urow = |u: u32| users.binary_search(&u).expect("user of these ratings") as u32;
    let mut t = Vec::with_capacity(ratings.len());
    for k in 0..ratings.len() {
        if let Ok(c) = items.binary_search(&ratings.item[k]) {
            t.push((urow(ratings.user[k]), c as u32, f64::from(ratings.rating[k])));
        }
    }
    let a = Csr::from_triplets(users.len(), items.len(), t);
    let svd = randomized_svd(&a, dim, oversample, power_iters, seed);
    let k = svd.s.len();
    let scale: Vec<f64> = svd.s.iter().map(|s| s.sqrt()).collect();
    let mut user_vecs = svd.u.data;
    for (i, x) in user_vecs.iter_mut().enumerate() {
        *x *= scale[i % k.max(1)];
    }
    let mut item_vecs = svd.v.data;
    for (i, x) in item_vecs.iter_mut().enumerate() {
        *x *= scale[i % k.max(1)];
    }
    Factors { users, items: items.to_vec(), k, user_vecs, item_vecs, singular: svd.s }
}
