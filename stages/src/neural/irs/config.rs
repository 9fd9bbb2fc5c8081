//! What `irs.train` and `irs.eval` are asked to do: the method, the DQN's and the Δr
//! classifiers' hyper-parameters, with their defaults (docs/design.md "Decisions"). Plain data, built
//! without libtorch, so pipelines validate everywhere.

use serde::{Deserialize, Serialize};

use crate::eval::metrics::RewardMap;

/// The methods of the paper's Table 2 that train a policy, plus the oracle of synthetic worlds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// DQN-R: MF vectors, no Δr.
    DqnR,
    /// w/o DynAda: DARec vectors, no Δr.
    S2rNoDyn,
    /// w/o RepAda: MF vectors, Δr.
    S2rNoRep,
    /// w/o JntTrn: DARec vectors (frozen), Δr.
    S2rNoJoint,
    /// S2R-Rec: DARec's item maps fine-tuned jointly, Δr.
    S2r,
    /// The DQN on simulated users that follow the real dynamics (synthetic worlds).
    Oracle,
}

impl Method {
    /// Whether the method corrects sim rewards by Δr.
    pub fn has_delta_r(self) -> bool {
        matches!(self, Method::S2rNoRep | Method::S2rNoJoint | Method::S2r)
    }
}

/// What the Δr classifiers compare with the real logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClfSimData {
    /// The sim replay buffer (the paper's setting).
    Rollouts,
    /// The sim users' own logged sessions (Δr then on rated steps only).
    Logs,
    /// Worlds: sessions of the real logs' behaviour policy served by the sim dynamics, so the two
    /// sides differ in their dynamics only (not in the policy that chose the items).
    Behaviour,
}

/// How Δr is estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeltaREstimator {
    /// DARC's two domain classifiers: Δr = logit D_sas − logit D_sa (the paper's).
    #[default]
    Classifiers,
    /// DARC's classifiers on the Q-network's own state: D_sa(h_t, e_a), D_sas(h_t, e_a, h_{t+1})
    /// with the online LSTM's states (detached), two MLPs over given vectors instead of an encoder
    /// of their own (`state_clf.rs`; its input moves as the DQN trains).
    StateClassifiers,
    /// Two response models: the sim one's click logit f(s, a) and the real one's f + h(s, a);
    /// Δr is the log-ratio of the two Bernoulli responses (`response.rs`). Click responses only.
    Responses,
    /// Worlds only, a diagnostic ceiling: the world's exact ln p_real/p_sim of each step given the
    /// simulated user's taste and history — what a perfect estimator would give. Privileged (no
    /// learner knows it); it says how much of the gap the reward correction itself can close.
    Exact,
}

/// How the TD target values the next state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bootstrap {
    /// Double DQN: the online network picks a* among the items not yet recommended, the target
    /// network values it.
    Max,
    /// The action the log took next, valued by the target network (SARSA on the behaviour
    /// policy's data). For logged sessions: a max over items the log never shows extrapolates
    /// from untrained values, and on the quickstart it diverged (real-log TD loss 0.4 → 6,000
    /// over 3,000 iterations while sim batches stayed near 1–9).
    Logged,
}

/// Training params.
#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The method.
    pub method: Method,
    /// Gradient steps.
    #[serde(default = "d_iters")]
    pub iterations: usize,
    /// Episodes per batch.
    #[serde(default = "d_batch")]
    pub batch: usize,
    /// Session length T.
    #[serde(default = "d_t")]
    pub session_len: usize,
    /// Discount γ.
    #[serde(default = "d_gamma")]
    pub gamma: f64,
    /// Adam learning rate.
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// Target network refresh period.
    #[serde(default = "d_target")]
    pub target_every: usize,
    /// A real-log batch every this many iterations (0 = never).
    #[serde(default = "d_k")]
    pub k_interval: usize,
    /// LSTM width.
    #[serde(default = "d_hidden")]
    pub hidden: i64,
    /// Per-item biases b_a of each pool in Q (else a scalar b only).
    #[serde(default = "d_item_bias")]
    pub item_bias: bool,
    /// Adam learning rate of the per-item biases (`item_bias`; default: `lr`).
    #[serde(default)]
    pub item_bias_lr: Option<f64>,
    /// The popularity term π(s)·p_a in Q: p_a is item a's standardised ln(1 + ratings) in its
    /// pool's training ratings (`sim` for the sim pool, `real_train` for the real one), π a linear
    /// function of the state learnt with the rest (replays only; not serialised when off).
    #[serde(default, deserialize_with = "default_if_null", skip_serializing_if = "is_default")]
    pub popularity: bool,
    /// With `popularity`: the real pool gets its own π, trained by the real-log batches only
    /// (else one π, learnt mostly in the simulator, serves both pools; not serialised when off).
    #[serde(default, deserialize_with = "default_if_null", skip_serializing_if = "is_default")]
    pub popularity_per_pool: bool,
    /// How the real-log batches' TD targets value the next state.
    #[serde(default = "d_real_bootstrap")]
    pub real_bootstrap: Bootstrap,
    /// Weight of the conservative (CQL) term on real-log batches (0 = none).
    #[serde(default)]
    pub real_conservative: f64,
    /// Unrated real items sampled per logged step as zero-reward actions (0 = none).
    #[serde(default = "d_real_negatives")]
    pub real_negatives: usize,
    /// Rating scale maximum y_max (default: 5 if every rating ≤ 5, else 10).
    #[serde(default)]
    pub rating_max: Option<f32>,
    /// Rating → reward of the simulated users and the real logs.
    #[serde(default)]
    pub reward: RewardMap,
    /// Seed.
    #[serde(default)]
    pub seed: u64,
    /// r̃ = r + α·Δr (Δr methods).
    #[serde(default = "d_alpha")]
    pub alpha: f64,
    /// Iterations before Δr is applied.
    #[serde(default = "d_warmup")]
    pub delta_r_warmup: usize,
    /// Std of the Gaussian noise on the classifiers' inputs while training them. 1 by default:
    /// σ = 0.3 estimates the true ratio better on synthetic worlds (dynamics.rs tests) but gave a
    /// lower validation reward on the quickstart in every run we compared (README, "Decisions").
    #[serde(default = "d_noise")]
    pub clf_noise: f64,
    /// Recent items whose similarity to the current one the classifiers also see: ⟨e_t, e_{t−j}⟩
    /// for j = 1..=W, a direct view of "what was just served resembles this" (0 = none; not
    /// serialised at 0, so earlier keys stay valid).
    #[serde(default, deserialize_with = "default_if_null", skip_serializing_if = "is_default")]
    pub clf_recent: usize,
    /// Classifier width.
    #[serde(default = "d_clf_hidden")]
    pub clf_hidden: i64,
    /// Classifier learning rate.
    #[serde(default = "d_clf_lr")]
    pub clf_lr: f64,
    /// What the classifiers compare with the real logs: `rollouts` (sim replay) or `logs`.
    #[serde(default = "d_clf_sim")]
    pub clf_sim_data: ClfSimData,
    /// How Δr is estimated (not serialised at the default, so earlier keys stay valid).
    #[serde(default, deserialize_with = "default_if_null", skip_serializing_if = "is_default")]
    pub delta_r_estimator: DeltaREstimator,
    /// `responses`: L2 weight on the real residual h's outputs (not serialised at the default).
    #[serde(
        default = "d_resp_penalty",
        deserialize_with = "resp_penalty_or_default",
        skip_serializing_if = "is_d_resp_penalty"
    )]
    pub resp_penalty: f64,
    /// Weight of L_dom in joint training.
    #[serde(default = "d_dom")]
    pub dom_weight: f64,
    /// With a `val` input: greedy validation sessions every this many iterations (and after the
    /// last), written to the `val_curve` output.
    #[serde(default = "d_val_every")]
    pub val_every: usize,
}
fn d_real_bootstrap() -> Bootstrap {
    Bootstrap::Logged
}
fn d_real_negatives() -> usize {
    0
}
fn d_item_bias() -> bool {
    false
}
fn d_val_every() -> usize {
    100
}
fn d_alpha() -> f64 {
    0.8
}
fn d_warmup() -> usize {
    200
}
fn d_noise() -> f64 {
    1.0
}
/// A param that accepts null as its default (`clf_recent: null` is the param unset, 0), as for
/// every optional param added after caches existed.
fn default_if_null<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(<Option<T> as serde::Deserialize>::deserialize(d)?.unwrap_or_default())
}
fn is_default<T: Default + PartialEq>(x: &T) -> bool {
    *x == T::default()
}
fn d_resp_penalty() -> f64 {
    0.01
}
fn is_d_resp_penalty(x: &f64) -> bool {
    *x == d_resp_penalty()
}
fn resp_penalty_or_default<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(d)?.unwrap_or_else(d_resp_penalty))
}
fn d_clf_hidden() -> i64 {
    32
}
fn d_clf_lr() -> f64 {
    1e-3
}
fn d_clf_sim() -> ClfSimData {
    ClfSimData::Rollouts
}
fn d_dom() -> f64 {
    0.1
}
fn d_iters() -> usize {
    1000
}
fn d_batch() -> usize {
    32
}
fn d_t() -> usize {
    32
}
fn d_gamma() -> f64 {
    0.9
}
fn d_lr() -> f64 {
    1e-3
}
fn d_target() -> usize {
    100
}
fn d_k() -> usize {
    3
}
fn d_hidden() -> i64 {
    64
}

impl TrainConfig {
    /// Whether the method corrects sim rewards by Δr.
    pub fn has_delta_r(&self) -> bool {
        self.method.has_delta_r()
    }

    /// Range checks (the message names every bound).
    pub fn check(&self) -> Result<(), String> {
        let p = self;
        if p.iterations == 0
            || p.batch == 0
            || p.session_len == 0
            || p.hidden < 1
            || p.lr <= 0.0
            || p.item_bias_lr.is_some_and(|r| r.is_nan() || r <= 0.0)
            || !(0.0..1.0).contains(&p.gamma)
            || !p.alpha.is_finite()
            || p.clf_noise < 0.0
            || p.clf_hidden < 1
            || p.clf_recent > 64
            || p.clf_lr <= 0.0
            || p.dom_weight < 0.0
            || p.val_every == 0
            || p.real_conservative.is_nan()
            || p.real_conservative < 0.0
            || !(p.resp_penalty >= 0.0 && p.resp_penalty.is_finite())
        {
            return Err("`iterations`, `batch`, `session_len`, `hidden`, `clf_hidden`, `val_every` ≥ 1, `lr`, `item_bias_lr`, `clf_lr` > 0, `gamma` in [0, 1), `clf_noise`, `dom_weight`, `real_conservative`, `resp_penalty` ≥ 0, `clf_recent` ≤ 64".into());
        }
        if p.delta_r_estimator == DeltaREstimator::StateClassifiers && p.clf_recent > 0 {
            return Err("`clf_recent` is for the history classifiers; `delta_r_estimator: state_classifiers` sees \
                        the Q-network's state, which already holds the recent items"
                .into());
        }
        if p.popularity_per_pool && !p.popularity {
            return Err(
                "`popularity_per_pool` gives the real pool its own π of the popularity term: set `popularity: true`"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Evaluation params.
#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Label in the summary.
    pub method: String,
    /// Relevance threshold (default: the dataset rule).
    #[serde(default)]
    pub relevant_above: Option<f32>,
    /// Rating → reward of the metric (the policy's own feedback uses the map it was trained with).
    #[serde(default)]
    pub reward: RewardMap,
    /// With a world bound: its test or validation users (default test).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<crate::env::world::EvalUsers>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_pools_own_pi_needs_the_popularity_term() {
        let parse = |v: serde_json::Value| serde_json::from_value::<TrainConfig>(v).unwrap();
        let alone = parse(serde_json::json!({"method": "dqn_r", "popularity_per_pool": true}));
        assert!(alone.check().unwrap_err().contains("popularity: true"));
        let both = parse(serde_json::json!({"method": "dqn_r", "popularity": true, "popularity_per_pool": true}));
        assert!(both.check().is_ok());
        // Off, it stays out of the serialised params (the cache keys of models without it).
        let off = serde_json::to_value(parse(serde_json::json!({"method": "dqn_r"}))).unwrap();
        assert!(off.get("popularity_per_pool").is_none(), "{off}");
    }

    #[test]
    fn the_state_classifiers_parse_and_refuse_recent_items() {
        let parse = |extra: serde_json::Value| {
            let mut v = serde_json::json!({"method": "s2r_no_rep", "delta_r_estimator": "state_classifiers"});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            serde_json::from_value::<TrainConfig>(v).unwrap()
        };
        let p = parse(serde_json::json!({}));
        assert_eq!(p.delta_r_estimator, DeltaREstimator::StateClassifiers);
        assert!(p.check().is_ok());
        let err = parse(serde_json::json!({"clf_recent": 3})).check().unwrap_err();
        assert!(err.contains("clf_recent") && err.contains("state_classifiers"), "{err}");
    }
}
