//! k-means: k-means++ initialisation, `n_init` seeded restarts, Lloyd iterations parallel over
//! points (rayon). Deterministic for a seed regardless of the thread count: points are processed
//! in fixed chunks whose partial sums are combined in chunk order.
//!
//! Degenerate inputs follow documented rules instead of panicking: fewer points than clusters is
//! an error; k-means++ on identical points picks uniformly among the points; a cluster that ends
//! an iteration empty is re-seeded with the point farthest from its centroid (as scikit-learn
//! does), so exactly k clusters come back whenever there are at least k points.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

const CHUNK: usize = 2048;

/// A clustering.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// `k × d` centroids, row-major.
    pub centroids: Vec<f64>,
    /// Cluster of each point.
    pub assignments: Vec<u32>,
    /// Sum of squared distances to the assigned centroids.
    pub inertia: f64,
    /// Lloyd iterations of the chosen restart.
    pub iterations: usize,
    /// Which restart won.
    pub restart: usize,
}

/// Options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Clusters.
    pub k: usize,
    /// Restarts (the best inertia wins).
    pub n_init: usize,
    /// Lloyd iterations per restart, at most.
    pub max_iter: usize,
    /// Stop when the centroids move less than `tol` × the data's mean per-feature variance.
    pub tol: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self { k: 10, n_init: 10, max_iter: 300, tol: 1e-4, seed: 0 }
    }
}

/// Squared distance with four independent accumulators: a single running sum is a chain of
/// dependent adds that the compiler may not reorder, four chains let the CPU overlap them.
fn dist2(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            let t = x[l] - y[l];
            acc[l] += t * t;
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += (x - y) * (x - y);
    }
    s
}

/// k-means++ seeding.
pub fn plus_plus(x: &[f64], d: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let n = x.len() / d;
    let mut centroids = Vec::with_capacity(k * d);
    let first = rng.random_range(0..n);
    centroids.extend_from_slice(&x[first * d..(first + 1) * d]);
    let mut closest: Vec<f64> =
        (0..n).into_par_iter().map(|i| dist2(&x[i * d..(i + 1) * d], &centroids[..d])).collect();
    for c in 1..k {
        let total: f64 = closest.iter().sum();
        let pick = if total > 0.0 {
            let target = rng.random::<f64>() * total;
            let mut acc = 0.0;
            let mut chosen = n - 1;
            for (i, &w) in closest.iter().enumerate() {
                acc += w;
                if acc >= target && w > 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        } else {
            rng.random_range(0..n) // every point is already a centre: any will do
        };
        centroids.extend_from_slice(&x[pick * d..(pick + 1) * d]);
        let new = &centroids[c * d..(c + 1) * d];
        closest.par_iter_mut().enumerate().for_each(|(i, m)| *m = m.min(dist2(&x[i * d..(i + 1) * d], new)));
    }
    centroids
}

/// The data's mean per-feature variance: `tol` is relative to it (as in scikit-learn).
pub fn mean_variance(x: &[f64], d: usize) -> f64 {
    let n = x.len() / d;
    let mean: Vec<f64> = (0..d).map(|j| (0..n).map(|i| x[i * d + j]).sum::<f64>() / n as f64).collect();
    (0..n).map(|i| dist2(&x[i * d..(i + 1) * d], &mean)).sum::<f64>() / (n * d) as f64
}

/// Lloyd iterations from `init`; stops when the centroids move less than `tol` (absolute, squared).
pub fn lloyd(x: &[f64], d: usize, init: Vec<f64>, max_iter: usize, tol: f64) -> KMeans {
    let n = x.len() / d;
    let k = init.len() / d;
    let mut centroids = init;
    let mut assign = vec![0u32; n];
    let mut dists = vec![0f64; n];
    let mut iterations = 0;
    for it in 0..max_iter.max(1) {
        iterations = it + 1;
        assign.par_chunks_mut(CHUNK).zip(dists.par_chunks_mut(CHUNK)).enumerate().for_each(|(ci, (a, ds))| {
            for (o, (ai, di)) in a.iter_mut().zip(ds.iter_mut()).enumerate() {
                let i = ci * CHUNK + o;
                let p = &x[i * d..(i + 1) * d];
                let (mut best, mut bd) = (0u32, f64::INFINITY);
                for c in 0..k {
                    let dd = dist2(p, &centroids[c * d..(c + 1) * d]);
                    if dd < bd {
                        bd = dd;
                        best = c as u32;
                    }
                }
                *ai = best;
                *di = bd;
            }
        });
        // Partial sums per chunk, combined in chunk order (deterministic).
        let partials: Vec<(Vec<f64>, Vec<usize>)> = assign
            .par_chunks(CHUNK)
            .enumerate()
            .map(|(ci, a)| {
                let mut sums = vec![0.0; k * d];
                let mut counts = vec![0usize; k];
                for (o, &c) in a.iter().enumerate() {
                    let i = ci * CHUNK + o;
                    counts[c as usize] += 1;
                    for j in 0..d {
                        sums[c as usize * d + j] += x[i * d + j];
                    }
                }
                (sums, counts)
            })
            .collect();
        let mut sums = vec![0.0; k * d];
        let mut counts = vec![0usize; k];
        for (s, c) in partials {
            for (a, b) in sums.iter_mut().zip(s) {
                *a += b;
            }
            for (a, b) in counts.iter_mut().zip(c) {
                *a += b;
            }
        }
        let mut new = centroids.clone();
        for c in 0..k {
            if counts[c] > 0 {
                for j in 0..d {
                    new[c * d + j] = sums[c * d + j] / counts[c] as f64;
                }
            }
        }
        // Empty clusters take the points farthest from their centroids.
        let mut taken = std::collections::HashSet::new();
        for c in (0..k).filter(|&c| counts[c] == 0) {
            let far = (0..n)
                .filter(|i| !taken.contains(i))
                .max_by(|&a, &b| dists[a].partial_cmp(&dists[b]).unwrap_or(std::cmp::Ordering::Equal).then(b.cmp(&a)));
            if let Some(i) = far {
                taken.insert(i);
                new[c * d..(c + 1) * d].copy_from_slice(&x[i * d..(i + 1) * d]);
                dists[i] = 0.0;
            }
        }
        let shift: f64 = (0..k).map(|c| dist2(&new[c * d..(c + 1) * d], &centroids[c * d..(c + 1) * d])).sum();
        centroids = new;
        if shift <= tol {
            break;
        }
    }
    // Final assignment against the final centroids.
    let final_: Vec<(u32, f64)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let p = &x[i * d..(i + 1) * d];
            (0..k)
                .map(|c| (c as u32, dist2(p, &centroids[c * d..(c + 1) * d])))
                .fold((0u32, f64::INFINITY), |b, (c, dd)| if dd < b.1 { (c, dd) } else { b })
        })
        .collect();
    let inertia = final_.iter().map(|x| x.1).sum();
    KMeans { centroids, assignments: final_.into_iter().map(|x| x.0).collect(), inertia, iterations, restart: 0 }
}

/// Clusters `x` (`n × d`, row-major).
pub fn kmeans(x: &[f64], d: usize, o: Options) -> Result<KMeans, String> {
    if d == 0 || !x.len().is_multiple_of(d) {
        return Err(format!("data of {} values is not a whole number of {d}-dimensional points", x.len()));
    }
    let n = x.len() / d;
    if o.k == 0 {
        return Err("k must be ≥ 1".into());
    }
    if n < o.k {
        return Err(format!("{n} points cannot form {} clusters: lower `k` or add users", o.k));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err("the features contain NaN or infinite values".into());
    }
    let tol = o.tol * mean_variance(x, d);
    let mut best: Option<KMeans> = None;
    for r in 0..o.n_init.max(1) {
        let mut rng = ChaCha8Rng::seed_from_u64(o.seed.wrapping_add(r as u64 * 0x9E37_79B9));
        let init = plus_plus(x, d, o.k, &mut rng);
        let mut km = lloyd(x, d, init, o.max_iter, tol);
        km.restart = r;
        if best.as_ref().is_none_or(|b| km.inertia < b.inertia) {
            best = Some(km);
        }
    }
    Ok(best.expect("at least one restart"))
}

/// Adjusted Rand index of two labelings (1 = identical up to renaming).
pub fn adjusted_rand_index(a: &[u32], b: &[u32]) -> f64 {
    use std::collections::HashMap;
    let n = a.len() as f64;
    let mut table: HashMap<(u32, u32), f64> = HashMap::new();
    let mut ra: HashMap<u32, f64> = HashMap::new();
    let mut rb: HashMap<u32, f64> = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1.0;
        *ra.entry(x).or_default() += 1.0;
        *rb.entry(y).or_default() += 1.0;
    }
    let c2 = |v: f64| v * (v - 1.0) / 2.0;
    let index: f64 = table.values().map(|&v| c2(v)).sum();
    let sa: f64 = ra.values().map(|&v| c2(v)).sum();
    let sb: f64 = rb.values().map(|&v| c2(v)).sum();
    let expected = sa * sb / c2(n);
    let max = (sa + sb) / 2.0;
    if (max - expected).abs() < 1e-12 {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, Normal};

    fn mixture(n_per: usize, k: usize, d: usize, spread: f64, seed: u64) -> (Vec<f64>, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let noise = Normal::new(0.0, 1.0).unwrap();
        let centres: Vec<f64> = (0..k * d).map(|_| rng.random::<f64>() * spread).collect();
        let mut x = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n_per * k {
            let c = i % k;
            for j in 0..d {
                x.push(centres[c * d + j] + noise.sample(&mut rng));
            }
            labels.push(c as u32);
        }
        (x, labels)
    }

    #[test]
    fn recovers_planted_clusters() {
        let (x, labels) = mixture(200, 6, 8, 40.0, 1);
        let km = kmeans(&x, 8, Options { k: 6, n_init: 5, ..Default::default() }).unwrap();
        let ari = adjusted_rand_index(&km.assignments, &labels);
        assert!(ari >= 0.95, "ARI {ari}");
        // The same seed gives the same groups; another seed the same partition here.
        assert_eq!(kmeans(&x, 8, Options { k: 6, n_init: 5, ..Default::default() }).unwrap(), km);
    }

    /// A plain sequential Lloyd (the textbook algorithm) as the reference.
    fn reference_lloyd(x: &[f64], d: usize, mut c: Vec<f64>, iters: usize) -> f64 {
        let n = x.len() / d;
        let k = c.len() / d;
        let mut inertia = 0.0;
        for _ in 0..iters {
            let mut sums = vec![0.0; k * d];
            let mut counts = vec![0usize; k];
            inertia = 0.0;
            for i in 0..n {
                let p = &x[i * d..(i + 1) * d];
                let (best, bd) = (0..k)
                    .map(|j| (j, dist2(p, &c[j * d..(j + 1) * d])))
                    .fold((0, f64::INFINITY), |b, v| if v.1 < b.1 { v } else { b });
                inertia += bd;
                counts[best] += 1;
                for j in 0..d {
                    sums[best * d + j] += p[j];
                }
            }
            for j in 0..k {
                if counts[j] > 0 {
                    for t in 0..d {
                        c[j * d + t] = sums[j * d + t] / counts[j] as f64;
                    }
                }
            }
        }
        inertia
    }

    #[test]
    fn a_fixed_init_reaches_the_reference_lloyd_inertia() {
        let (x, _) = mixture(300, 5, 4, 6.0, 2); // overlapping clusters: many iterations
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let init = plus_plus(&x, 4, 5, &mut rng);
        let ours = lloyd(&x, 4, init.clone(), 300, 0.0);
        let reference = reference_lloyd(&x, 4, init, 300);
        assert!((ours.inertia - reference).abs() <= 0.01 * reference, "{} vs {reference}", ours.inertia);
    }

    #[test]
    fn degenerate_inputs_follow_the_documented_rules() {
        assert!(kmeans(&[1.0, 2.0], 1, Options { k: 3, ..Default::default() })
            .unwrap_err()
            .contains("2 points cannot form 3 clusters"));
        assert!(kmeans(&[1.0, 2.0, 3.0], 2, Options::default()).is_err());
        assert!(kmeans(&[1.0, f64::NAN, 3.0], 1, Options { k: 1, ..Default::default() }).is_err());
        // Identical points: k clusters, zero inertia, no panic.
        let same = vec![2.5; 50 * 3];
        let km = kmeans(&same, 3, Options { k: 4, n_init: 2, ..Default::default() }).unwrap();
        assert_eq!(km.inertia, 0.0);
        assert_eq!(km.centroids.len(), 12);
        // Two distinct points, three clusters wanted among five points: an empty cluster is
        // re-seeded instead of vanishing.
        let x = vec![0.0, 0.0, 0.0, 10.0, 10.0];
        let km = kmeans(&x, 1, Options { k: 3, n_init: 3, ..Default::default() }).unwrap();
        assert_eq!(km.centroids.len(), 3);
        assert_eq!(km.inertia, 0.0);
    }
}
