//! What `world.fit` takes from a real dataset: its pool's most-rated items with their SVD
//! vectors, one topic per item from its genres, and the SVD user vectors the tastes are fitted to
//! (see [`Fit`] and docs/design.md §7).

use std::collections::HashMap;

use crate::data::items::Items;
use crate::env::world::Fit;

/// Topic name of items without genres.
pub const NO_GENRE: &str = "(none)";

/// The world items of a dataset: of the items that have a vector (`item_ids`, row-major
/// `item_vecs`, `dim` wide) and a count in the pool (`pool`: item → training ratings), the
/// `max_items` most rated (ties by id; 0 keeps all), in id order. Each item's topic is its least
/// common genre among the kept items (ties by the order the dataset lists them; [`NO_GENRE`] for
/// none): the most specific genre, so that a genre every item shares (the sim domain's own) does
/// not make one topic of everything. The tastes are fitted to `users` (row-major, `dim` wide).
pub fn fit_dataset(
    users: &[f32],
    dim: usize,
    item_ids: &[u32],
    item_vecs: &[f32],
    pool: &HashMap<u32, u32>,
    items: &Items,
    max_items: usize,
) -> Result<Fit, String> {
    if dim == 0 || item_vecs.len() != item_ids.len() * dim || !users.len().is_multiple_of(dim) {
        return Err(format!(
            "the user and item vectors are not {dim} wide ({} item ids, {} item values, {} user values)",
            item_ids.len(),
            item_vecs.len(),
            users.len()
        ));
    }
    let mut keep: Vec<(u32, usize)> =
        item_ids.iter().enumerate().filter(|(_, i)| pool.contains_key(i)).map(|(r, &i)| (i, r)).collect();
    if keep.is_empty() {
        return Err("no item of `item_vecs` is in `pool`: bind the pool the vectors were fitted on".into());
    }
    keep.sort_by_key(|&(i, _)| (std::cmp::Reverse(pool[&i]), i));
    if max_items > 0 {
        keep.truncate(max_items);
    }
    keep.sort_by_key(|&(i, _)| i);
    let genres_of: HashMap<u32, &Vec<String>> = items.item.iter().copied().zip(&items.genres).collect();
    let listed = |i: u32| genres_of.get(&i).map(|g| g.as_slice()).unwrap_or(&[]);
    let mut count: HashMap<&str, usize> = HashMap::new();
    for &(i, _) in &keep {
        for g in listed(i) {
            *count.entry(g.as_str()).or_default() += 1;
        }
    }
    let topic_of: Vec<&str> = keep
        .iter()
        .map(|&(i, _)| {
            // min_by_key keeps the first of equal keys: ties go to the listing order.
            listed(i).iter().map(String::as_str).min_by_key(|g| count[g]).unwrap_or(NO_GENRE)
        })
        .collect();
    let mut names: Vec<String> = topic_of.iter().map(|s| s.to_string()).collect();
    names.sort();
    names.dedup();
    let topics = topic_of.iter().map(|t| names.binary_search_by(|n| n.as_str().cmp(t)).unwrap() as u32).collect();
    let vecs = keep.iter().flat_map(|&(_, r)| item_vecs[r * dim..(r + 1) * dim].iter().copied()).collect();
    Fit::new(users, dim, vecs, keep.iter().map(|&(i, _)| i).collect(), topics, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Items {
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Items {
            item: vec![1, 2, 3, 4, 5],
            title: vec!["a".into(), "b".into(), "c".into(), "d".into(), "e".into()],
            categories: vec![vec![]; 5],
            genres: vec![g(&["A", "B"]), g(&["A", "C"]), g(&["A", "B"]), g(&[]), g(&["A", "C"])],
        }
    }

    #[test]
    fn keeps_the_most_rated_items_and_gives_each_its_least_common_genre() {
        let users: Vec<f32> = (0..40).map(|x| ((x * 7 % 11) as f32 - 5.0) / 5.0).collect();
        let ids = vec![5, 4, 3, 2, 1, 9];
        let vecs: Vec<f32> = (0..12).map(|x| x as f32 / 10.0 - 0.5).collect();
        // Item 9 has a vector but is not in the pool; item 2 is the least rated.
        let pool = HashMap::from([(1, 10), (2, 1), (3, 10), (4, 5), (5, 7)]);
        let f = fit_dataset(&users, 2, &ids, &vecs, &pool, &items(), 4).unwrap();
        assert_eq!(f.source_items, vec![1, 3, 4, 5]);
        // Kept: 1 (A, B), 3 (A, B), 4 (none), 5 (A, C): B is rarer than A for 1 and 3, C for 5.
        assert_eq!(f.topic_names, vec!["(none)", "B", "C"]);
        assert_eq!(f.topics, vec![1, 1, 0, 2]);
        // Rows follow the ids: item 1 was row 4 of the input, item 5 row 0.
        assert_eq!(&f.item_vecs[..2], &vecs[8..10]);
        assert_eq!(&f.item_vecs[6..], &vecs[..2]);
        let e = fit_dataset(&users, 2, &ids, &vecs, &HashMap::from([(7, 1)]), &items(), 4).unwrap_err();
        assert!(e.contains("pool"), "{e}");
    }

    #[test]
    fn a_fitted_world_draws_tastes_with_the_data_moments_and_round_trips_through_its_table() {
        use crate::env::world::{world_from_table, world_table, FitParams, Population, World};
        // 400 users in 2 dims with mean (1, -0.5) and correlated coordinates.
        let users: Vec<f32> = (0..400)
            .flat_map(|u| {
                let (a, b) = (((u * 37 % 101) as f32 - 50.0) / 29.0, ((u * 53 % 97) as f32 - 48.0) / 28.0);
                [1.0 + a, -0.5 + 0.5 * a + 0.3 * b]
            })
            .collect();
        let ids: Vec<u32> = (1..=5).collect();
        let vecs: Vec<f32> = (0..10).map(|x| (x as f32 - 4.5) / 3.0).collect();
        let pool: HashMap<u32, u32> = ids.iter().map(|&i| (i, 3)).collect();
        let f = fit_dataset(&users, 2, &ids, &vecs, &pool, &items(), 0).unwrap();
        let fp: FitParams = serde_json::from_str(r#"{"session_len": 4, "rated_items": 3}"#).unwrap();
        let w = World::fitted(&fp.world_params(5, f.topic_names.len(), 2), f.clone()).unwrap();
        let n = w.users(Population::Sim);
        let tastes: Vec<Vec<f64>> = (0..n).map(|u| w.taste(Population::Sim, u)).collect();
        for a in 0..2 {
            let m = tastes.iter().map(|t| t[a]).sum::<f64>() / n as f64;
            assert!((m - f.taste_mean[a]).abs() < 0.06, "mean {a}: {m} vs {}", f.taste_mean[a]);
        }
        // The sample covariance of the drawn tastes is the data's (L Lᵀ).
        let cov = |a: usize, b: usize| {
            let (ma, mb) = (f.taste_mean[a], f.taste_mean[b]);
            tastes.iter().map(|t| (t[a] - ma) * (t[b] - mb)).sum::<f64>() / n as f64
        };
        let l = &f.taste_chol;
        let want01 = l[2] * l[0];
        let want11 = l[2] * l[2] + l[3] * l[3];
        assert!((cov(0, 1) - want01).abs() < 0.1 * want11.max(0.1), "cov01 {} vs {want01}", cov(0, 1));
        assert!((cov(1, 1) / want11 - 1.0).abs() < 0.1, "var1 {} vs {want11}", cov(1, 1));
        // The world rebuilds exactly from its table.
        let back = world_from_table(&world_table(&w).unwrap()).unwrap();
        assert_eq!(back.fit, w.fit);
        let t = w.taste(Population::Test, 3);
        assert_eq!(
            (0..5).map(|i| back.base_prob(&t, i)).collect::<Vec<_>>(),
            (0..5).map(|i| w.base_prob(&t, i)).collect::<Vec<_>>()
        );
    }
}
