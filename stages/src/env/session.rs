//! The environment interface: a batch of users starts a session; each step takes one item per
//! user (a position in the environment's item pool, never one already recommended in the
//! session) and returns a reward per user, which is also the feedback the policy observes.

/// Something users can be served by: a replay of logs or an interactive world.
pub trait Env {
    /// Users it can serve (indices `0..n_users`).
    fn n_users(&self) -> usize;
    /// Starts one session per entry of `users`. `stream` selects the response draws of a
    /// stochastic environment: the same users and stream give the same responses, however the
    /// users are batched.
    fn start(&self, users: &[usize], stream: u64) -> Box<dyn Session + '_>;
    /// The exact log-ratio ln p_real(r_t | s_t, a_t)/p_sim(r_t | s_t, a_t) of each step of a
    /// session of `user` that served `items` (positions) and got `rewards` — what DARC's Δr
    /// estimates — where the environment knows both dynamics (a world); None for a replay.
    fn exact_log_ratio(&self, _user: usize, _items: &[i64], _rewards: &[f32]) -> Option<ExactRatio> {
        None
    }
}

/// The exact log-ratio of each step of a session, and whether the step's topic was bored (the
/// only steps where the two dynamics differ).
#[derive(Debug, Clone, PartialEq)]
pub struct ExactRatio {
    /// ln p_real/p_sim of the observed response, per step.
    pub log_ratio: Vec<f32>,
    /// Whether the real dynamics differed from the sim ones at that step.
    pub bored: Vec<bool>,
}

/// A batch of sessions in progress.
pub trait Session {
    /// Serves `items[i]` to the i-th user of the batch and writes that user's reward to
    /// `rewards[i]`.
    fn step(&mut self, items: &[i64], rewards: &mut [f32]);
}

/// Replay: the reward of an item is a fixed function of (user, item) — the logged rating mapped
/// to a reward, 0 when unrated — whatever was recommended before.
pub struct Replay<'a> {
    users: usize,
    reward: &'a dyn Fn(usize, i64) -> f32,
}

impl<'a> Replay<'a> {
    /// A replay of `users` users whose reward for an item is `reward(user, item)`.
    pub fn new(users: usize, reward: &'a dyn Fn(usize, i64) -> f32) -> Self {
        Self { users, reward }
    }
}

impl Env for Replay<'_> {
    fn n_users(&self) -> usize {
        self.users
    }
    fn start(&self, users: &[usize], _stream: u64) -> Box<dyn Session + '_> {
        Box::new(ReplaySession { users: users.to_vec(), reward: self.reward })
    }
}

struct ReplaySession<'a> {
    users: Vec<usize>,
    reward: &'a dyn Fn(usize, i64) -> f32,
}

impl Session for ReplaySession<'_> {
    fn step(&mut self, items: &[i64], rewards: &mut [f32]) {
        for ((&u, &a), r) in self.users.iter().zip(items).zip(rewards.iter_mut()) {
            *r = (self.reward)(u, a);
        }
    }
}

/// Serves `users` for `t` steps with a policy that needs no state beyond what it was served:
/// `pick(slot, served_so_far)` returns the next item of the `slot`-th user. Returns the items
/// and rewards per user.
pub fn serve(
    env: &dyn Env,
    users: &[usize],
    t: usize,
    stream: u64,
    pick: &mut dyn FnMut(usize, &[i64]) -> i64,
) -> Vec<(Vec<i64>, Vec<f32>)> {
    let mut s = env.start(users, stream);
    let mut out: Vec<(Vec<i64>, Vec<f32>)> =
        users.iter().map(|_| (Vec::with_capacity(t), Vec::with_capacity(t))).collect();
    let mut items = vec![0i64; users.len()];
    let mut rewards = vec![0f32; users.len()];
    for _ in 0..t {
        for (slot, item) in items.iter_mut().enumerate() {
            *item = pick(slot, &out[slot].0);
        }
        s.step(&items, &mut rewards);
        for (slot, o) in out.iter_mut().enumerate() {
            o.0.push(items[slot]);
            o.1.push(rewards[slot]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_pays_the_logged_reward_whatever_came_before() {
        let reward = |u: usize, a: i64| if (u as i64 + a) % 2 == 0 { 1.0 } else { 0.0 };
        let env = Replay::new(3, &reward);
        let order = |first: i64| {
            let mut step = 0;
            serve(&env, &[0, 1, 2], 2, 0, &mut |_, _| {
                step += 1;
                if step <= 3 {
                    first
                } else {
                    1 - first
                }
            })
        };
        let (a, b) = (order(0), order(1));
        for u in 0..3 {
            // The same items in the other order: the same reward per item.
            assert_eq!(a[u].1[0], b[u].1[1]);
            assert_eq!(a[u].1[1], b[u].1[0]);
        }
        assert_eq!(a[1].1, vec![0.0, 1.0]);
    }
}
