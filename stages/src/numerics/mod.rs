//! Numerics in pure Rust: dense/sparse linear algebra, randomized SVD and the MF factorization
//! built on it, k-means, and summary statistics.

pub mod factorize;
pub mod kmeans;
pub mod linalg;
pub mod stats;
pub mod svd;
