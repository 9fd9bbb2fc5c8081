//! The ratings table every data stage produces, in columnar Rust form:
//! `user: u32, item: u32, rating: f32, ts: i64`, sorted by (user, ts, file order).

use std::sync::Arc;

use arrow::array::{Float32Array, Int64Array, UInt32Array};
use arrow::record_batch::RecordBatch;

use crate::api::error::StageError;
use crate::data::table::{batch, column};

/// Columnar ratings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ratings {
    /// User ids.
    pub user: Vec<u32>,
    /// Item ids.
    pub item: Vec<u32>,
    /// Ratings on the dataset's scale.
    pub rating: Vec<f32>,
    /// Timestamps (seconds, or file order where the data have none).
    pub ts: Vec<i64>,
}

impl Ratings {
    /// Number of ratings.
    pub fn len(&self) -> usize {
        self.user.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
    }

    /// Keeps the rows where `keep[i]`.
    pub fn filter(&self, keep: impl Fn(usize) -> bool) -> Ratings {
        let mut out = Ratings::default();
        for i in 0..self.len() {
            if keep(i) {
                out.push(self.user[i], self.item[i], self.rating[i], self.ts[i]);
            }
        }
        out
    }

    /// Appends one rating.
    pub fn push(&mut self, user: u32, item: u32, rating: f32, ts: i64) {
        self.user.push(user);
        self.item.push(item);
        self.rating.push(rating);
        self.ts.push(ts);
    }

    /// As an Arrow table.
    pub fn to_batch(&self) -> Result<RecordBatch, StageError> {
        batch(vec![
            ("user", Arc::new(UInt32Array::from(self.user.clone()))),
            ("item", Arc::new(UInt32Array::from(self.item.clone()))),
            ("rating", Arc::new(Float32Array::from(self.rating.clone()))),
            ("ts", Arc::new(Int64Array::from(self.ts.clone()))),
        ])
    }

    /// From an Arrow table named `table` (for error messages).
    pub fn from_batch(b: &RecordBatch, table: &str) -> Result<Ratings, StageError> {
        Ok(Ratings {
            user: column::<UInt32Array>(b, table, "user")?.values().to_vec(),
            item: column::<UInt32Array>(b, table, "item")?.values().to_vec(),
            rating: column::<Float32Array>(b, table, "rating")?.values().to_vec(),
            ts: column::<Int64Array>(b, table, "ts")?.values().to_vec(),
        })
    }
}

impl Ratings {
    /// Sorts by (user, ts, original order) and drops duplicate (user, item) pairs, keeping the
    /// latest rating (the later one in file order on equal timestamps). Returns the number dropped.
    pub fn sort_dedupe(self) -> (Ratings, usize) {
        use rayon::prelude::*;
        let n = self.len();
        let sorted = (1..n).all(|i| (self.user[i - 1], self.ts[i - 1]) <= (self.user[i], self.ts[i]));
        let order: Vec<u32> = if sorted {
            (0..n as u32).collect()
        } else {
            let mut keys: Vec<(u32, i64, u32)> = (0..n).map(|i| (self.user[i], self.ts[i], i as u32)).collect();
            keys.par_sort_unstable();
            keys.into_iter().map(|k| k.2).collect()
        };
        // User blocks are contiguous now; find duplicate items inside each block.
        let mut starts = vec![0usize];
        for k in 1..n {
            if self.user[order[k] as usize] != self.user[order[k - 1] as usize] {
                starts.push(k);
            }
        }
        starts.push(n);
        let drop: Vec<Vec<usize>> = starts
            .par_windows(2)
            .map(|w| {
                let (s, e) = (w[0], w[1]);
                let mut items: Vec<(u32, usize)> = (s..e).map(|k| (self.item[order[k] as usize], k)).collect();
                items.sort_unstable();
                let mut dropped = Vec::new();
                for j in 1..items.len() {
                    if items[j].0 == items[j - 1].0 {
                        // Sorted by position, so the earlier one loses.
                        dropped.push(items[j - 1].1);
                    }
                }
                dropped
            })
            .collect();
        let mut keep = vec![true; n];
        let mut dups = 0;
        for d in drop.into_iter().flatten() {
            keep[d] = false;
            dups += 1;
        }
        let gather =
            |col: &[u32]| -> Vec<u32> { (0..n).filter(|&k| keep[k]).map(|k| col[order[k] as usize]).collect() };
        let out = Ratings {
            user: gather(&self.user),
            item: gather(&self.item),
            rating: (0..n).filter(|&k| keep[k]).map(|k| self.rating[order[k] as usize]).collect(),
            ts: (0..n).filter(|&k| keep[k]).map(|k| self.ts[order[k] as usize]).collect(),
        };
        (out, dups)
    }

    /// Consumes the ratings into an Arrow table without copying the columns.
    pub fn into_batch(self) -> Result<RecordBatch, StageError> {
        batch(vec![
            ("user", Arc::new(UInt32Array::from(self.user))),
            ("item", Arc::new(UInt32Array::from(self.item))),
            ("rating", Arc::new(Float32Array::from(self.rating))),
            ("ts", Arc::new(Int64Array::from(self.ts))),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_dedupe_keeps_the_latest_rating() {
        let mut r = Ratings::default();
        r.push(2, 10, 1.0, 5);
        r.push(1, 10, 2.0, 9);
        r.push(1, 11, 3.0, 1);
        r.push(1, 10, 4.0, 3);
        r.push(2, 10, 5.0, 5);
        let (out, dups) = r.sort_dedupe();
        assert_eq!(dups, 2);
        assert_eq!(out.user, vec![1, 1, 2]);
        assert_eq!(out.item, vec![11, 10, 10]);
        assert_eq!(out.rating, vec![3.0, 2.0, 5.0]);
    }

    #[test]
    fn tables_round_trip() {
        let mut r = Ratings::default();
        r.push(1, 2, 3.5, 4);
        assert_eq!(Ratings::from_batch(&r.to_batch().unwrap(), "t").unwrap(), r);
    }
}
