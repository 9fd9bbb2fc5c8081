//! Small dense and sparse linear algebra for the representation stages, in f64 and rayon:
//! CSR sparse × dense products (deterministic: every output row is summed in one thread),
//! Cholesky-QR orthonormalization, and a Jacobi eigen-solver for small symmetric matrices.

use rayon::prelude::*;

/// A dense row-major matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// `rows × cols` values, row-major.
    pub data: Vec<f64>,
}

impl Dense {
    /// All zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self { rows, cols, data: vec![0.0; rows * cols] }
    }

    /// Element `(r, c)`.
    pub fn at(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.cols + c]
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> &[f64] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// `selfᵀ · other` (cols × other.cols), parallel over row blocks, summed in a fixed order.
    pub fn t_mul(&self, other: &Dense) -> Dense {
        assert_eq!(self.rows, other.rows, "t_mul shapes");
        let (a, b) = (self.cols, other.cols);
        let block = 4096;
        let partials: Vec<Vec<f64>> = (0..self.rows.div_ceil(block))
            .into_par_iter()
            .map(|bi| {
                let mut acc = vec![0.0; a * b];
                for r in bi * block..((bi + 1) * block).min(self.rows) {
                    let x = self.row(r);
                    let y = other.row(r);
                    for (i, &xi) in x.iter().enumerate() {
                        if xi != 0.0 {
                            let dst = &mut acc[i * b..(i + 1) * b];
                            for (d, &yj) in dst.iter_mut().zip(y) {
                                *d += xi * yj;
                            }
                        }
                    }
                }
                acc
            })
            .collect();
        let mut out = Dense::zeros(a, b);
        for p in partials {
            for (o, v) in out.data.iter_mut().zip(p) {
                *o += v;
            }
        }
        out
    }

    /// `self · small` where `small` is `cols × k`.
    pub fn mul(&self, small: &Dense) -> Dense {
        assert_eq!(self.cols, small.rows, "mul shapes");
        let k = small.cols;
        let mut out = Dense::zeros(self.rows, k);
        out.data.par_chunks_mut(k.max(1)).enumerate().for_each(|(r, dst)| {
            for (i, &x) in self.row(r).iter().enumerate() {
                if x != 0.0 {
                    for (d, &s) in dst.iter_mut().zip(small.row(i)) {
                        *d += x * s;
                    }
                }
            }
        });
        out
    }
}

/// A sparse matrix in compressed sparse row form.
#[derive(Debug, Clone)]
pub struct Csr {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Row start offsets (`rows + 1`).
    pub indptr: Vec<usize>,
    /// Column of each non-zero.
    pub indices: Vec<u32>,
    /// Value of each non-zero.
    pub values: Vec<f64>,
}

impl Csr {
    /// From (row, col, value) triplets; duplicates are summed.
    pub fn from_triplets(rows: usize, cols: usize, mut t: Vec<(u32, u32, f64)>) -> Self {
        t.par_sort_unstable_by_key(|x| (x.0, x.1));
        let mut indptr = vec![0usize; rows + 1];
        let mut indices = Vec::with_capacity(t.len());
        let mut values: Vec<f64> = Vec::with_capacity(t.len());
        let mut last: Option<(u32, u32)> = None;
        for (r, c, v) in t {
            if last == Some((r, c)) {
                *values.last_mut().expect("a previous value") += v;
                continue;
            }
            last = Some((r, c));
            indptr[r as usize + 1] += 1;
            indices.push(c);
            values.push(v);
        }
        for i in 0..rows {
            indptr[i + 1] += indptr[i];
        }
        Self { rows, cols, indptr, indices, values }
    }

    /// Non-zeros.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// The transpose (CSR of Aᵀ).
    pub fn transpose(&self) -> Csr {
        let t: Vec<(u32, u32, f64)> = (0..self.rows)
            .flat_map(|r| (self.indptr[r]..self.indptr[r + 1]).map(move |k| (r, k)))
            .map(|(r, k)| (self.indices[k], r as u32, self.values[k]))
            .collect();
        Csr::from_triplets(self.cols, self.rows, t)
    }

    /// `self · x` for a dense `x` (`cols × k`).
    pub fn mul_dense(&self, x: &Dense) -> Dense {
        assert_eq!(self.cols, x.rows, "mul_dense shapes");
        let k = x.cols;
        let mut out = Dense::zeros(self.rows, k);
        out.data.par_chunks_mut(k.max(1)).enumerate().for_each(|(r, dst)| {
            for idx in self.indptr[r]..self.indptr[r + 1] {
                let v = self.values[idx];
                for (d, &s) in dst.iter_mut().zip(x.row(self.indices[idx] as usize)) {
                    *d += v * s;
                }
            }
        });
        out
    }

    /// Dense copy (tests and small references).
    pub fn to_dense(&self) -> Dense {
        let mut d = Dense::zeros(self.rows, self.cols);
        for r in 0..self.rows {
            for k in self.indptr[r]..self.indptr[r + 1] {
                d.data[r * self.cols + self.indices[k] as usize] += self.values[k];
            }
        }
        d
    }
}

/// Cholesky factor `L` (lower, row-major) of a symmetric positive definite `g`, with a tiny
/// diagonal shift when `g` is numerically singular (rank-deficient inputs).
fn cholesky(g: &Dense) -> Vec<f64> {
    let n = g.rows;
    let scale = (0..n).map(|i| g.at(i, i)).fold(0.0f64, f64::max).max(1e-300);
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = g.at(i, j);
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                l[i * n + i] = s.max(scale * 1e-13).sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    l
}

/// Orthonormal columns spanning `y` (Cholesky-QR, applied twice for stability).
pub fn orthonormalize(y: &Dense) -> Dense {
    let mut q = y.clone();
    for _ in 0..2 {
        let g = q.t_mul(&q);
        let l = cholesky(&g);
        let n = g.rows;
        // q ← q · L⁻ᵀ: solve each row r: x Lᵀ = q_r.
        q.data.par_chunks_mut(n.max(1)).for_each(|row| {
            for j in 0..n {
                let mut s = row[j];
                for k in 0..j {
                    s -= row[k] * l[j * n + k];
                }
                row[j] = s / l[j * n + j];
            }
        });
    }
    q
}

/// Eigen-decomposition of a small symmetric matrix by cyclic Jacobi: eigenvalues descending and
/// the eigenvectors as the columns of a row-major matrix.
pub fn symmetric_eigen(a: &Dense) -> (Vec<f64>, Dense) {
    let n = a.rows;
    let mut m = a.data.clone();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j].powi(2))
            .sum();
        let total: f64 = m.iter().map(|x| x * x).sum();
        if off <= 1e-24 * total.max(1e-300) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order
        .sort_by(|&i, &j| m[j * n + j].partial_cmp(&m[i * n + i]).unwrap_or(std::cmp::Ordering::Equal).then(i.cmp(&j)));
    let vals = order.iter().map(|&i| m[i * n + i]).collect();
    let mut vecs = Dense::zeros(n, n);
    for (new, &old) in order.iter().enumerate() {
        for k in 0..n {
            vecs.data[k * n + new] = v[k * n + old];
        }
    }
    (vals, vecs)
}
