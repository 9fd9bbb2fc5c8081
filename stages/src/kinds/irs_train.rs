//! `irs.train`: the interactive recommender (LSTM-DQN, see `neural/irs/`).
//!
//! A method is the item vectors the pipeline binds plus the training rule (docs/design.md §6):
//! - `dqn_r` (DQN-R): MF vectors, no Δr.
//! - `s2r_no_dyn` (w/o DynAda): DARec vectors, no Δr.
//! - `s2r_no_rep` (w/o RepAda): MF vectors, Δr.
//! - `s2r_no_joint` (w/o JntTrn): DARec vectors (frozen), Δr.
//! - `s2r` (S2R-Rec): the raw SVD vectors through DARec's item maps (`darec_weights`), fine-tuned
//!   jointly with L_rl + L_dom (gradient reversal into the maps), Δr. The classifiers L_sa + L_sas
//!   train on detached item vectors: their gradient would make the domains *more* separable.
//! - `oracle` (synthetic worlds only, `truth` or `world` bound): DQN on simulated users whose
//!   ratings follow the real dynamics — the upper bound.
//!
//! With `world` (and `logs`) bound instead of `sim`/`real_train`, the simulated users are an
//! interactive world's (world.synth): rollouts interact with its sim dynamics (the oracle's with
//! the real ones), the real logs are its behaviour-policy sessions, rewards are clicks, and the
//! validation curve is online, with the world's validation users.
//!
//! Needs the `torch` feature.

use serde_json::Value;

use crate::api::artifact::{Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{InputDoc, OutputDoc, ParamDoc};
use crate::api::error::StageError;
use crate::api::params;
use crate::api::stage::Stage;
use crate::neural::irs::config::TrainConfig;

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
    ParamDoc { name: "lr", ty: "number", default: Some("0.001"), help: "Adam learning rate" },
    ParamDoc { name: "target_every", ty: "integer", default: Some("100"), help: "target network refresh period" },
    ParamDoc { name: "k_interval", ty: "integer", default: Some("3"), help: "real-log batch period (paper: 2–4)" },
    ParamDoc { name: "hidden", ty: "integer", default: Some("64"), help: "LSTM width" },
    ParamDoc {
        name: "item_bias",
        ty: "boolean",
        default: Some("false"),
        help: "per-item bias of each pool in Q (the real one learns from the logs); false: a scalar bias",
    },
    ParamDoc {
        name: "popularity",
        ty: "boolean",
        default: Some("false (left out of the key)"),
        help: "Q gets π(s)·p_a: p_a = the item's standardised ln(1 + ratings) in its pool's training ratings (`sim`, `real_train`), π learnt from the state (replays only)",
    },
    ParamDoc {
        name: "popularity_per_pool",
        ty: "boolean",
        default: Some("false (left out of the key)"),
        help: "with `popularity`: the real pool has its own π, which only the real-log batches train (with `real_negatives`, they say which real items go unrated); false: one π for both pools",
    },
    ParamDoc {
        name: "item_bias_lr",
        ty: "number > 0",
        default: Some("lr"),
        help: "Adam learning rate of the per-item biases (each moves only when its item is in a batch)",
    },
    ParamDoc {
        name: "rating_max",
        ty: "number",
        default: Some("5 or 10 from the data"),
        help: "y_max of the reward map",
    },
    ParamDoc {
        name: "reward",
        ty: "signed | normalized",
        default: Some("signed"),
        help: "rated item: 2y/y_max − 1 (signed, TPGR) or y/y_max (normalized); unrated: 0 (sim users and real logs)",
    },
    ParamDoc { name: "seed", ty: "integer", default: Some("0"), help: "seed" },
    ParamDoc { name: "alpha", ty: "number", default: Some("0.8"), help: "r̃ = r + α·Δr (paper: 0.6–0.9)" },
    ParamDoc { name: "delta_r_warmup", ty: "integer", default: Some("200"), help: "iterations before Δr applies" },
    ParamDoc { name: "clf_noise", ty: "number ≥ 0", default: Some("1"), help: "classifier input noise std" },
    ParamDoc { name: "clf_hidden", ty: "integer", default: Some("32"), help: "classifier width" },
    ParamDoc {
        name: "clf_recent",
        ty: "integer ≤ 64",
        default: Some("0 (none; left out of the key)"),
        help: "the classifiers also see the item's similarity to each of the last W served",
    },
    ParamDoc { name: "clf_lr", ty: "number", default: Some("0.001"), help: "classifier learning rate" },
    ParamDoc { name: "dom_weight", ty: "number ≥ 0", default: Some("0.1"), help: "L_dom weight (s2r)" },
    ParamDoc {
        name: "real_bootstrap",
        ty: "logged | max",
        default: Some("logged"),
        help: "real-log TD targets: the logged next action, or double-DQN's max over unseen items",
    },
    ParamDoc {
        name: "real_conservative",
        ty: "number ≥ 0",
        default: Some("0"),
        help: "weight of a CQL term on real-log batches (logsumexp Q − Q of the logged item)",
    },
    ParamDoc {
        name: "real_negatives",
        ty: "integer ≥ 0",
        default: Some("0"),
        help: "unrated real items per logged step, as actions of reward 0 (the replay reward of an unrated item) whose session goes on as logged",
    },
    ParamDoc {
        name: "val_every",
        ty: "integer ≥ 1",
        default: Some("100"),
        help: "with `val` bound: validation sessions every this many iterations (and after the last)",
    },
    ParamDoc {
        name: "clf_sim_data",
        ty: "rollouts | logs | behaviour",
        default: Some("rollouts"),
        help: "sim side of the classifiers: replayed rollouts, the sim users' logged sessions (replay; Δr then on rated steps only), or the logs' behaviour policy served by the sim dynamics (worlds)",
    },
    ParamDoc {
        name: "delta_r_estimator",
        ty: "classifiers | state_classifiers | responses | exact",
        default: Some("classifiers (DARC's; left out of the key)"),
        help: "how Δr is estimated: the two domain classifiers with their own LSTM encoder of the history; the two classifiers as MLPs over the Q-network's LSTM states (s_t, e_a, s_{t+1}; no `clf_recent`); two click-response models (sim f, real f + h; Δr = their Bernoulli log-ratio; rewards in [0, 1] only); or (worlds only, a privileged diagnostic ceiling) the world's exact log-ratio of each step",
    },
    ParamDoc {
        name: "resp_penalty",
        ty: "number ≥ 0",
        default: Some("0.01 (left out of the key)"),
        help: "`responses`: L2 weight on the real residual h's outputs (a prior that the dynamics agree)",
    },
];

/// Parses and checks `irs.train` params.
pub fn train_config(v: &Value) -> Result<TrainConfig, StageError> {
    let p: TrainConfig = params::parse(v, PARAMS)?;
    p.check().map_err(|m| params::invalid(m, PARAMS))?;
    Ok(p)
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
    fn needs_torch(&self) -> bool {
        true
    }
    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[
            InputDoc {
                name: "sim",
                required: false,
                many: false,
                help: "split.sim: the simulated users replay these (replay; or bind `world`)",
            },
            InputDoc {
                name: "real_train",
                required: false,
                many: false,
                help: "split.real_train: logged real sessions (replay; or bind `world`)",
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
                name: "val",
                required: false,
                many: false,
                help: "split.val: greedy validation sessions during training → `val_curve`",
            },
            InputDoc {
                name: "world",
                required: false,
                many: false,
                help: "world.synth world: train by interacting with its sim dynamics (oracle: real), validate online",
            },
            InputDoc {
                name: "logs",
                required: false,
                many: false,
                help: "world.synth logs: the real logged sessions in a world",
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
            OutputDoc { name: "model", help: "key, value: hidden, dim, item_bias, session_len, rating_max, reward_scale, reward_offset, real_sessions, alpha (and popularity = 1, popularity_per_pool = 1 when on)" },
            OutputDoc {
                name: "curves",
                help: "iteration, td_loss, sim_reward, epsilon, clf_loss, acc_sa, acc_sas, dr_mean, dr_std, dom_loss; in \
                       a world, Δr against the exact log-ratio: dr_exact, dr_corr, dr_bored, dr_fresh, bored_share (NaN \
                       elsewhere)",
            },
            OutputDoc {
                name: "real_item_vecs",
                help: "the real item vectors the policy uses, and their `pop` with `popularity` (irs.eval's input)",
            },
            OutputDoc {
                name: "val_curve",
                help: "iteration, users, reward, precision, recall, f1 of greedy validation sessions (empty without `val`)",
            },
        ]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        train_config(p).map(|_| ())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<TrainConfig>(p, PARAMS)
    }
    fn run(&self, ctx: &Context, inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let p = train_config(p)?;
        #[cfg(feature = "torch")]
        {
            crate::neural::irs::io::run_train(ctx, inputs, &p)
        }
        #[cfg(not(feature = "torch"))]
        {
            let _ = (ctx, inputs, p);
            Err(StageError::Failed(
                "`irs.train` needs libtorch: build s2r-pipe with `--features torch`, or put a torch-built `s2r-pipe-worker` beside it (scripts/quickstart.sh builds both)"
                    .into(),
            ))
        }
    }
}
