//! Evaluation: the metrics (reward, P@T, R@T, F1@T) and the tables every evaluator produces.

pub mod metrics;
pub mod tables;
