//! `irs.train` and `irs.eval`: the interactive recommender (LSTM-DQN, see `irs.rs`).
//!
//! A method is the item vectors the pipeline binds plus the training rule (design.md §6):
//! - `dqn_r` (DQN-R): MF vectors, no Δr.
//! - `s2r_no_dyn` (w/o DynAda): DARec vectors, no Δr.
//! - `s2r_no_rep` (w/o RepAda): MF vectors, Δr.
//! - `s2r_no_joint` (w/o JntTrn): DARec vectors (frozen), Δr.
//! - `s2r` (S2R-Rec): the raw SVD vectors through DARec's item maps (`darec_weights`), fine-tuned
//!   jointly with L_rl + L_dom (gradient reversal into the maps), Δr. The classifiers L_sa + L_sas
//!   train on detached item vectors: their gradient would make the domains *more* separable.
//! - `oracle` (synthetic worlds only, `truth` bound): DQN on simulated users whose ratings follow
//!   the real dynamics — the upper bound.
//!
//! Needs the `torch` feature.

use serde::Deserialize;
use serde_json::Value;

use crate::artifact::{Inputs, Outputs};
use crate::error::StageError;
use crate::params;
use crate::stage::{Context, InputDoc, OutputDoc, ParamDoc, Stage};

/// Training params.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct TrainParams {
    /// `dqn_r` or `s2r_no_dyn`.
    pub method: String,
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
    /// Rating scale maximum y_max (default: 5 if every rating ≤ 5, else 10).
    #[serde(default)]
    pub rating_max: Option<f32>,
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
    /// Classifier width.
    #[serde(default = "d_clf_hidden")]
    pub clf_hidden: i64,
    /// Classifier learning rate.
    #[serde(default = "d_clf_lr")]
    pub clf_lr: f64,
    /// What the classifiers compare with the real logs: `rollouts` (sim replay) or `logs`.
    #[serde(default = "d_clf_sim")]
    pub clf_sim_data: String,
    /// Weight of L_dom in joint training.
    #[serde(default = "d_dom")]
    pub dom_weight: f64,
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
fn d_clf_hidden() -> i64 {
    32
}
fn d_clf_lr() -> f64 {
    1e-3
}
fn d_clf_sim() -> String {
    "rollouts".into()
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
    3e-4
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

/// Methods of `irs.train`.
pub const METHODS: &[&str] = &["dqn_r", "s2r_no_dyn", "s2r_no_rep", "s2r_no_joint", "s2r", "oracle"];

const PARAMS: &[ParamDoc] = &[
    ParamDoc {
        name: "method",
        ty: "dqn_r | s2r_no_dyn | s2r_no_rep | s2r_no_joint | s2r | oracle",
        default: None,
        help: "which method (its vectors come from the inputs)",
    },
    ParamDoc { name: "iterations", ty: "integer", default: Some("1000"), help: "gradient steps" },
    ParamDoc { name: "batch", ty: "integer", default: Some("32"), help: "episodes per batch (paper: 32, 64)" },
    ParamDoc { name: "session_len", ty: "integer", default: Some("32"), help: "T" },
    ParamDoc { name: "gamma", ty: "number", default: Some("0.9"), help: "discount" },
    ParamDoc { name: "lr", ty: "number", default: Some("0.0003"), help: "Adam learning rate" },
    ParamDoc { name: "target_every", ty: "integer", default: Some("100"), help: "target network refresh period" },
    ParamDoc { name: "k_interval", ty: "integer", default: Some("3"), help: "real-log batch period (paper: 2–4)" },
    ParamDoc { name: "hidden", ty: "integer", default: Some("64"), help: "LSTM width" },
    ParamDoc {
        name: "rating_max",
        ty: "number",
        default: Some("5 or 10 from the data"),
        help: "y_max of r = y / y_max",
    },
    ParamDoc { name: "seed", ty: "integer", default: Some("0"), help: "seed" },
    ParamDoc { name: "alpha", ty: "number", default: Some("0.8"), help: "r̃ = r + α·Δr (paper: 0.6–0.9)" },
    ParamDoc { name: "delta_r_warmup", ty: "integer", default: Some("200"), help: "iterations before Δr applies" },
    ParamDoc { name: "clf_noise", ty: "number ≥ 0", default: Some("1"), help: "classifier input noise std" },
    ParamDoc { name: "clf_hidden", ty: "integer", default: Some("32"), help: "classifier width" },
    ParamDoc { name: "clf_lr", ty: "number", default: Some("0.001"), help: "classifier learning rate" },
    ParamDoc { name: "dom_weight", ty: "number ≥ 0", default: Some("0.1"), help: "L_dom weight (s2r)" },
    ParamDoc {
        name: "clf_sim_data",
        ty: "rollouts | logs",
        default: Some("rollouts"),
        help: "sim side of the classifiers: replayed rollouts, or the sim users' logged sessions (Δr then on rated steps only)",
    },
];

impl TrainParams {
    /// Whether the method corrects sim rewards by Δr.
    pub fn has_delta_r(&self) -> bool {
        matches!(self.method.as_str(), "s2r_no_rep" | "s2r_no_joint" | "s2r")
    }

    /// From JSON, validated.
    pub fn from_json(v: &Value) -> Result<Self, StageError> {
        let p: TrainParams = params::parse(v, PARAMS)?;
        if !METHODS.contains(&p.method.as_str()) {
            return Err(params::invalid(format!("unknown method `{}`; `irs.train` has {METHODS:?}", p.method), PARAMS));
        }
        if p.iterations == 0
            || p.batch == 0
            || p.session_len == 0
            || p.hidden < 1
            || p.lr <= 0.0
            || !(0.0..1.0).contains(&p.gamma)
            || !p.alpha.is_finite()
            || p.clf_noise < 0.0
            || p.clf_hidden < 1
            || p.clf_lr <= 0.0
            || p.dom_weight < 0.0
            || !["rollouts", "logs"].contains(&p.clf_sim_data.as_str())
        {
            return Err(params::invalid(
                "`iterations`, `batch`, `session_len`, `hidden`, `clf_hidden` ≥ 1, `lr`, `clf_lr` > 0, `gamma` in [0, 1), `clf_noise`, `dom_weight` ≥ 0, `clf_sim_data` rollouts or logs",
                PARAMS,
            ));
        }
        Ok(p)
    }
}

/// The training stage.
pub struct IrsTrain;

impl Stage for IrsTrain {
    fn kind(&self) -> &'static str {
        "irs.train"
    }
    fn about(&self) -> &'static str {
        "LSTM-DQN trained on simulated users (+ real logs every k_interval); needs the torch feature"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[
            InputDoc { name: "sim", required: true, many: false, help: "split.sim: the simulated users replay these" },
            InputDoc {
                name: "real_train",
                required: true,
                many: false,
                help: "split.real_train: logged real sessions",
            },
            InputDoc {
                name: "sim_item_vecs",
                required: true,
                many: false,
                help: "item vectors of the sim pool (svd or darec)",
            },
            InputDoc {
                name: "real_item_vecs",
                required: true,
                many: false,
                help: "item vectors of the real pool (svd or darec)",
            },
            InputDoc {
                name: "darec_weights",
                required: false,
                many: false,
                help: "adapt.darec weights: the item maps `s2r` fine-tunes (then the vectors are svd's)",
            },
            InputDoc {
                name: "truth",
                required: false,
                many: false,
                help: "data.synth truth: required by `oracle` (synthetic worlds only)",
            },
        ]
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[
            OutputDoc { name: "weights", help: "safetensors of the Q network" },
            OutputDoc { name: "model", help: "key, value: hidden, dim, session_len, rating_max, alpha" },
            OutputDoc {
                name: "curves",
                help: "iteration, td_loss, sim_reward, epsilon, clf_loss, acc_sa, acc_sas, dr_mean, dr_std, dom_loss",
            },
            OutputDoc { name: "real_item_vecs", help: "the real item vectors the policy uses (irs.eval's input)" },
        ]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        TrainParams::from_json(p).map(|_| ())
    }
    fn run(&self, ctx: &Context, inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let p = TrainParams::from_json(p)?;
        #[cfg(feature = "torch")]
        {
            crate::irs::run_train(ctx, inputs, &p)
        }
        #[cfg(not(feature = "torch"))]
        {
            let _ = (ctx, inputs, p);
            Err(StageError::Failed(
                "`irs.train` needs libtorch: build s2r-pipe with `--features torch` (scripts/setup.sh installs it)"
                    .into(),
            ))
        }
    }
}

/// Evaluation params.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct EvalParams {
    /// Label in the summary.
    pub method: String,
    /// Relevance threshold (default: the dataset rule).
    #[serde(default)]
    pub relevant_above: Option<f32>,
}

const EVAL_PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "method", ty: "string", default: None, help: "label of the summary row" },
    ParamDoc {
        name: "relevant_above",
        ty: "number",
        default: Some("3 for y_max 5, 5 for 10"),
        help: "relevance threshold",
    },
];

/// The evaluation stage: greedy sessions for test (or validation) users.
pub struct IrsEval;

impl Stage for IrsEval {
    fn kind(&self) -> &'static str {
        "irs.eval"
    }
    fn about(&self) -> &'static str {
        "greedy T-step sessions of a trained policy for test or validation users; needs the torch feature"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        EVAL_PARAMS
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[
            InputDoc {
                name: "test",
                required: true,
                many: false,
                help: "split.test (or split.val for model selection)",
            },
            InputDoc {
                name: "real_item_vecs",
                required: true,
                many: false,
                help: "irs.train real_item_vecs: the vectors the policy was trained with",
            },
            InputDoc { name: "weights", required: true, many: false, help: "irs.train weights" },
            InputDoc { name: "model", required: true, many: false, help: "irs.train model" },
        ]
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        crate::kinds::eval_static::METRIC_OUTPUTS
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        params::parse::<EvalParams>(p, EVAL_PARAMS).map(|_| ())
    }
    fn run(&self, ctx: &Context, inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let p: EvalParams = params::parse(p, EVAL_PARAMS)?;
        #[cfg(feature = "torch")]
        {
            crate::irs::run_eval(ctx, inputs, &p)
        }
        #[cfg(not(feature = "torch"))]
        {
            let _ = (ctx, inputs, p);
            Err(StageError::Failed("`irs.eval` needs libtorch: build s2r-pipe with `--features torch`".into()))
        }
    }
}
