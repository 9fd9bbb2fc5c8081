//! `irs.eval`: greedy T-step sessions of a trained policy (`irs.train`) for test or validation
//! users, with the shared metrics. Needs the `torch` feature.

use serde_json::Value;

use crate::api::artifact::{Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{InputDoc, OutputDoc, ParamDoc};
use crate::api::error::StageError;
use crate::api::params;
use crate::api::stage::Stage;
use crate::neural::irs::config::EvalConfig;

const EVAL_PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "method", ty: "string", default: None, help: "label of the summary row" },
    ParamDoc {
        name: "relevant_above",
        ty: "number",
        default: Some("3 for y_max 5, 5 for 10"),
        help: "relevance threshold",
    },
    ParamDoc {
        name: "reward",
        ty: "signed | normalized",
        default: Some("signed"),
        help: "rated item: 2y/y_max − 1 (signed, TPGR) or y/y_max (normalized); unrated: 0 (the metric; the policy's feedback uses its training map)",
    },
    ParamDoc {
        name: "users",
        ty: "test | val",
        default: Some("test"),
        help: "with `world` bound: which fresh real-dynamics users (the reward is the click rate)",
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
    fn needs_torch(&self) -> bool {
        true
    }
    fn params(&self) -> &'static [ParamDoc] {
        EVAL_PARAMS
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[
            InputDoc {
                name: "test",
                required: false,
                many: false,
                help: "split.test (or split.val for model selection); or bind `world`",
            },
            InputDoc {
                name: "world",
                required: false,
                many: false,
                help: "world.synth world: online sessions with its real-dynamics test (or `users: val`) users",
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
        crate::eval::tables::METRIC_OUTPUTS
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        params::parse::<EvalConfig>(p, EVAL_PARAMS).map(|_| ())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<EvalConfig>(p, EVAL_PARAMS)
    }
    fn run(&self, ctx: &Context, inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let p: EvalConfig = params::parse(p, EVAL_PARAMS)?;
        #[cfg(feature = "torch")]
        {
            crate::neural::irs::io::run_eval(ctx, inputs, &p)
        }
        #[cfg(not(feature = "torch"))]
        {
            let _ = (ctx, inputs, p);
            Err(StageError::Failed("`irs.eval` needs libtorch: build s2r-pipe with `--features torch`, or put a torch-built `s2r-pipe-worker` beside it (scripts/quickstart.sh builds both)".into()))
        }
    }
}
