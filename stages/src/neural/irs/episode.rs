//! Episodes (a batch of sessions: actions and rewards) and a domain's items as the policy sees
//! them.

use tch::{Kind, Tensor};

/// A batch of episodes: actions and rewards, `B × T`.
#[derive(Debug, Clone)]
pub struct Episode {
    /// Item indices into the domain's pool.
    pub actions: Vec<i64>,
    /// Rewards.
    pub rewards: Vec<f32>,
}

/// Which pool a domain is: the policy keeps a per-item bias for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The simulator's pool.
    Sim,
    /// The real pool (logs, validation, test).
    Real,
}

/// A domain's items as the policy sees them.
pub struct Domain {
    /// `n_items × D`.
    pub items: Tensor,
    /// Number of items.
    pub n_items: i64,
    /// Which pool.
    pub side: Side,
    /// Each item's popularity in the pool's training ratings (`n_items`, standardised log counts,
    /// [`popularity`]), for Q's popularity term; None without it.
    pub pop: Option<Tensor>,
}

impl Domain {
    /// Item vectors (`n × D`) scaled to unit mean norm: MF vectors VΣ^½ of the two domains come
    /// from different matrices and differ in scale by an order of magnitude; unscaled, the
    /// bilinear Q values (and the TD loss) blew up at D = 128.
    pub fn new(items: Tensor, side: Side) -> Self {
        let n = items.size()[0];
        let mean_norm = items.norm_scalaropt_dim(2, &[1i64][..], false).mean(Kind::Float).double_value(&[]);
        let items = if mean_norm > 0.0 { items / mean_norm } else { items };
        Self { items, n_items: n, side, pop: None }
    }

    /// Item vectors as given (already scaled).
    pub fn raw(items: Tensor, side: Side) -> Self {
        let n_items = items.size()[0];
        Self { items, n_items, side, pop: None }
    }

    /// The same pool with the popularity `pop` (`n_items`) attached.
    pub fn with_pop(mut self, pop: Option<Tensor>) -> Self {
        self.pop = pop;
        self
    }

    /// A view of the same pool with the items `items` (the pool's popularity is kept): joint
    /// training maps the vectors at every iteration.
    pub fn with_items(&self, items: Tensor) -> Self {
        Self { items, n_items: self.n_items, side: self.side, pop: self.pop.as_ref().map(Tensor::shallow_clone) }
    }
}

/// Standardised log popularity of a pool: ln(1 + n_i) for each item's count n_i in the pool's
/// training ratings, minus its mean over the pool, over its standard deviation (all 0 when every
/// count is equal). Standardised per pool, so one weight applies to pools counted from different
/// numbers of users (the sim domain's users, the shared users' real logs).
pub fn popularity(counts: &[u32]) -> Vec<f32> {
    let logs: Vec<f64> = counts.iter().map(|&c| f64::from(c).ln_1p()).collect();
    let n = logs.len().max(1) as f64;
    let mean = logs.iter().sum::<f64>() / n;
    let sd = (logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    logs.iter().map(|x| if sd > 1e-12 { ((x - mean) / sd) as f32 } else { 0.0 }).collect()
}

/// Actions and rewards of `eps` as `B × T` tensors on `dev`.
pub fn batch_tensors(eps: &[Episode], dev: tch::Device) -> (Tensor, Tensor) {
    let t = eps[0].actions.len() as i64;
    let b = eps.len() as i64;
    let actions =
        Tensor::from_slice(&eps.iter().flat_map(|e| e.actions.clone()).collect::<Vec<_>>()).view([b, t]).to_device(dev);
    let rewards =
        Tensor::from_slice(&eps.iter().flat_map(|e| e.rewards.clone()).collect::<Vec<_>>()).view([b, t]).to_device(dev);
    (actions, rewards)
}
