//! Ratings as sessions: each user's ratings by item (what a replayed user answers), and each
//! user's ratings in time order cut into logged sessions of length T.

use std::collections::{BTreeMap, HashMap};

use crate::data::ratings::Ratings;

/// user → (item → rating), users in id order.
pub fn ratings_by_user(r: &Ratings) -> BTreeMap<u32, HashMap<u32, f32>> {
    let mut by_user: BTreeMap<u32, HashMap<u32, f32>> = BTreeMap::new();
    for k in 0..r.len() {
        by_user.entry(r.user[k]).or_default().insert(r.item[k], r.rating[k]);
    }
    by_user
}

/// Each user's ratings of items in `index` (item id → position in the pool) in time order, as
/// sessions of exactly `t` steps (a shorter tail is dropped): (user, positions, `reward(rating)`).
/// Users in id order; ties in time keep the ratings' order.
pub fn logged_sessions(
    r: &Ratings,
    index: &HashMap<u32, i64>,
    reward: impl Fn(f32) -> f32,
    t: usize,
) -> Vec<(u32, Vec<i64>, Vec<f32>)> {
    let mut by_user: BTreeMap<u32, Vec<(i64, i64, f32)>> = BTreeMap::new();
    for k in 0..r.len() {
        if let Some(&i) = index.get(&r.item[k]) {
            by_user.entry(r.user[k]).or_default().push((r.ts[k], i, reward(r.rating[k])));
        }
    }
    let mut logs = Vec::new();
    for (user, mut v) in by_user {
        v.sort_by_key(|x| x.0);
        for chunk in v.chunks(t) {
            if chunk.len() == t {
                logs.push((user, chunk.iter().map(|x| x.1).collect(), chunk.iter().map(|x| x.2).collect()));
            }
        }
    }
    logs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_time_ordered_chunks_of_exactly_t() {
        let mut r = Ratings::default();
        for (u, i, y, ts) in [(2, 10, 5.0, 3), (2, 11, 4.0, 1), (2, 12, 3.0, 2), (1, 10, 1.0, 0), (2, 99, 2.0, 0)] {
            r.push(u, i, y, ts);
        }
        let index: HashMap<u32, i64> = [(10, 0), (11, 1), (12, 2)].into_iter().collect();
        // User 1 has one rating (< t); user 2 has 11 (ts 1), 12 (ts 2), 10 (ts 3); item 99 is not in the pool.
        assert_eq!(logged_sessions(&r, &index, |y| y / 5.0, 2), vec![(2, vec![1, 2], vec![0.8, 0.6])]);
        let by = ratings_by_user(&r);
        assert_eq!(by.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(by[&2][&12], 3.0);
    }
}
