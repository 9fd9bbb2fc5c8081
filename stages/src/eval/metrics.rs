//! The evaluation metrics every evaluator uses (docs/design.md §6, Evaluation).
//!
//! One test user's session is `T` recommendations without repeats. r_t = 2y/y_max − 1 for a rated
//! item (the replay reward of TPGR and KGQR, [`RewardMap::Signed`]; `reward: normalized` gives
//! y/y_max), 0 for an unrated one; an item is relevant when y > `relevant_above`. Per user:
//! reward = mean r_t over the session; P@T = relevant hits / T; R@T = hits / the user's relevant
//! items (users with none are left out of R and F1); F1 = 2PR / (P + R) (0 when P + R = 0).
//! Summaries average over users.

use std::collections::HashMap;

/// How a rated item's rating y becomes a replay reward (an unrated item gives 0 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RewardMap {
    /// r = 2y/y_max − 1: the rating mapped affinely onto [−1, 1] (TPGR's `env.py`, KGQR). A 1★
    /// item costs −0.6 on MovieLens, a 5★ item pays 1.
    #[default]
    Signed,
    /// r = y/y_max: every rated item pays, a 1★ item +0.2 (rewards "was it rated").
    Normalized,
}

impl RewardMap {
    /// The choices, as params name them.
    pub const CHOICES: &'static str = "signed | normalized";

    /// The reward of rating `y` on a scale of `y_max`.
    pub fn of(self, y: f32, y_max: f32) -> f64 {
        let x = f64::from(y) / f64::from(y_max);
        match self {
            RewardMap::Signed => 2.0 * x - 1.0,
            RewardMap::Normalized => x,
        }
    }

    /// (scale, offset) of r = scale · y/y_max + offset, as stored in model tables.
    pub fn affine(self) -> (f64, f64) {
        match self {
            RewardMap::Signed => (2.0, -1.0),
            RewardMap::Normalized => (1.0, 0.0),
        }
    }

    /// The map with these affine coefficients, if it is one of ours.
    pub fn from_affine(scale: f64, offset: f64) -> Option<RewardMap> {
        [RewardMap::Signed, RewardMap::Normalized].into_iter().find(|m| m.affine() == (scale, offset))
    }
}

/// The reward/relevance rule of a dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// Maximum rating (5 for MovieLens, 10 for Anime).
    pub y_max: f32,
    /// Relevant if strictly above (3 for MovieLens, 5 for Anime).
    pub relevant_above: f32,
    /// Rating → reward.
    pub reward: RewardMap,
}

impl Rule {
    /// The paper's rule for a rating scale: MovieLens (≤ 5) → relevant above 3; Anime (10) → above
    /// 5; the signed reward.
    pub fn for_scale(y_max: f32) -> Rule {
        Rule { y_max, relevant_above: if y_max <= 5.0 { 3.0 } else { 5.0 }, reward: RewardMap::Signed }
    }

    /// The reward of a rated item.
    pub fn reward_of(&self, y: f32) -> f64 {
        self.reward.of(y, self.y_max)
    }
}

/// A summary metric, as the `summary` tables name their columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Mean reward per step.
    Reward,
    /// P@T.
    Precision,
    /// R@T.
    Recall,
    /// F1@T.
    F1,
}

impl Metric {
    /// Every metric, in table order.
    pub const ALL: [Metric; 4] = [Metric::Reward, Metric::Precision, Metric::Recall, Metric::F1];

    /// The column name (`reward`, `precision`, `recall`, `f1`).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Reward => "reward",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::F1 => "f1",
        }
    }

    /// Position in [`Metric::ALL`].
    pub fn index(self) -> usize {
        Metric::ALL.iter().position(|m| *m == self).expect("every metric is in ALL")
    }
}

/// The rating scale y_max of data whose ratings are `ratings`: 5 when every rating is ≤ 5
/// (MovieLens), else 10 (Anime).
pub fn infer_y_max<'a>(ratings: impl IntoIterator<Item = &'a crate::data::ratings::Ratings>) -> f32 {
    let observed = ratings.into_iter().flat_map(|r| r.rating.iter().copied()).fold(0.0f32, f32::max);
    if observed <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// Metrics of one session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionMetrics {
    /// Mean reward per step.
    pub reward: f64,
    /// Relevant hits / T.
    pub precision: f64,
    /// Hits / relevant items (None when the user has none).
    pub recall: Option<f64>,
    /// Harmonic mean of P and R (None when R is).
    pub f1: Option<f64>,
    /// Relevant items of the user.
    pub relevant: usize,
}

/// Metrics of a session `recs` (length T) for a user whose real ratings are `ratings`.
pub fn session(recs: &[u32], ratings: &HashMap<u32, f32>, rule: Rule, t: usize) -> SessionMetrics {
    let t = t.max(1) as f64;
    let reward: f64 = recs.iter().map(|i| ratings.get(i).map_or(0.0, |&y| rule.reward_of(y))).sum::<f64>() / t;
    let hits = recs.iter().filter(|i| ratings.get(i).is_some_and(|&y| y > rule.relevant_above)).count();
    let relevant = ratings.values().filter(|&&y| y > rule.relevant_above).count();
    let precision = hits as f64 / t;
    let recall = (relevant > 0).then(|| hits as f64 / relevant as f64);
    let f1 = recall.map(|r| if precision + r > 0.0 { 2.0 * precision * r / (precision + r) } else { 0.0 });
    SessionMetrics { reward, precision, recall, f1, relevant }
}

/// Metrics of an online session in an interactive world, from its rewards (1 = click): the
/// reward and P@T are the click rate; recall and F1 have no meaning without a fixed set of
/// relevant items (None).
pub fn online_session(rewards: &[f32]) -> SessionMetrics {
    let rate = rewards.iter().map(|&r| f64::from(r)).sum::<f64>() / rewards.len().max(1) as f64;
    SessionMetrics { reward: rate, precision: rate, recall: None, f1: None, relevant: 0 }
}

/// Top-`t` items by score (ties: smaller id first).
pub fn top_t(items: &[u32], scores: &[f64], t: usize) -> Vec<u32> {
    let mut idx: Vec<usize> = (0..items.len()).collect();
    idx.sort_by(|&a, &b| {
        scores[b].partial_cmp(&scores[a]).unwrap_or(std::cmp::Ordering::Equal).then(items[a].cmp(&items[b]))
    });
    idx.into_iter().take(t).map(|i| items[i]).collect()
}

/// Averages over users.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Mean reward.
    pub reward: f64,
    /// Mean P@T.
    pub precision: f64,
    /// Mean R@T over users with relevant items.
    pub recall: f64,
    /// Mean F1@T over users with relevant items.
    pub f1: f64,
    /// Users evaluated.
    pub users: usize,
    /// Users with at least one relevant item.
    pub users_with_relevant: usize,
}

/// Averages sessions over users.
pub fn summarize(sessions: &[SessionMetrics]) -> Summary {
    let n = sessions.len().max(1) as f64;
    let with: Vec<&SessionMetrics> = sessions.iter().filter(|s| s.recall.is_some()).collect();
    let m = with.len().max(1) as f64;
    Summary {
        reward: sessions.iter().map(|s| s.reward).sum::<f64>() / n,
        precision: sessions.iter().map(|s| s.precision).sum::<f64>() / n,
        recall: with.iter().filter_map(|s| s.recall).sum::<f64>() / m,
        f1: with.iter().filter_map(|s| s.f1).sum::<f64>() / m,
        users: sessions.len(),
        users_with_relevant: with.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reward_maps_on_hand_cases() {
        let ml = Rule::for_scale(5.0);
        assert_eq!(ml.reward, RewardMap::Signed, "the signed map is the default");
        for (y, r) in [(1.0, -0.6), (2.0, -0.2), (3.0, 0.2), (4.0, 0.6), (5.0, 1.0), (0.5, -0.8)] {
            assert!((ml.reward_of(y) - r).abs() < 1e-12, "{y}★ → {}", ml.reward_of(y));
        }
        // Anime's 10-point scale: r = 0.2y − 1.
        let anime = Rule::for_scale(10.0);
        for (y, r) in [(1.0, -0.8), (5.0, 0.0), (7.0, 0.4), (10.0, 1.0)] {
            assert!((anime.reward_of(y) - r).abs() < 1e-12, "{y}/10 → {}", anime.reward_of(y));
        }
        let old = Rule { reward: RewardMap::Normalized, ..ml };
        assert!((old.reward_of(1.0) - 0.2).abs() < 1e-12 && (old.reward_of(5.0) - 1.0).abs() < 1e-12);
        for m in [RewardMap::Signed, RewardMap::Normalized] {
            let (a, b) = m.affine();
            assert_eq!(RewardMap::from_affine(a, b), Some(m));
        }
        assert_eq!(RewardMap::from_affine(3.0, 0.0), None);
        // A session: unrated items give 0 under both maps.
        let ratings = HashMap::from([(1, 1.0), (2, 5.0)]);
        assert!((session(&[1, 2, 3, 4], &ratings, ml, 4).reward - (-0.6 + 1.0) / 4.0).abs() < 1e-12);
        assert!((session(&[1, 2, 3, 4], &ratings, old, 4).reward - (0.2 + 1.0) / 4.0).abs() < 1e-12);
    }

    #[test]
    fn hand_computed_sessions() {
        let rule = Rule { reward: RewardMap::Normalized, ..Rule::for_scale(5.0) };
        let ratings = HashMap::from([(1, 5.0), (2, 3.0), (3, 4.0), (9, 4.5)]);
        // Recommends 1 (5★, relevant), 2 (3★, not relevant: not > 3), 7 (unrated), 3 (4★, relevant).
        let s = session(&[1, 2, 7, 3], &ratings, rule, 4);
        assert!((s.reward - (1.0 + 0.6 + 0.0 + 0.8) / 4.0).abs() < 1e-12);
        assert_eq!(s.precision, 0.5);
        assert_eq!(s.relevant, 3);
        assert!((s.recall.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.f1.unwrap() - 2.0 * 0.5 * (2.0 / 3.0) / (0.5 + 2.0 / 3.0)).abs() < 1e-12);
        // A user with no relevant item: left out of R and F1.
        let none = HashMap::from([(1, 2.0), (2, 1.0)]);
        let s2 = session(&[1, 5], &none, rule, 2);
        assert_eq!((s2.recall, s2.f1), (None, None));
        assert!((s2.reward - 0.2).abs() < 1e-12);
        let sum = summarize(&[s, s2]);
        assert_eq!(sum.users, 2);
        assert_eq!(sum.users_with_relevant, 1);
        assert!((sum.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((sum.precision - 0.25).abs() < 1e-12);
        // Anime's rule.
        assert_eq!(Rule::for_scale(10.0).relevant_above, 5.0);
    }
}
