//! Small stages for exercising the engine (tests, benchmarks, pipeline debugging): a number
//! sequence, a sum over inputs, and a stage that always fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::Int64Array;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::artifact::{Artifact, Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{InputDoc, OutputDoc, ParamDoc};
use crate::api::error::StageError;
use crate::api::params;
use crate::api::stage::Stage;
use crate::data::table::{batch, column};

fn sleep(ctx: &Context, ms: u64) -> Result<(), StageError> {
    let end = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < end {
        ctx.check_cancelled()?;
        std::thread::sleep(Duration::from_millis(5).min(end.saturating_duration_since(Instant::now())));
    }
    Ok(())
}

/// `util.sequence`: a table `x = start, start+step, …` of `n` rows.
pub struct Sequence;

/// The most rows `util.sequence` makes (80 MB of `x`): a test stage, not an allocator.
pub const MAX_ROWS: i64 = 10_000_000;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SequenceParams {
    #[serde(default = "ten")]
    n: i64,
    #[serde(default)]
    start: i64,
    #[serde(default = "one")]
    step: i64,
    #[serde(default)]
    sleep_ms: u64,
}
fn ten() -> i64 {
    10
}
fn one() -> i64 {
    1
}

const SEQ_PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "n", ty: "integer 0–10,000,000", default: Some("10"), help: "rows" },
    ParamDoc { name: "start", ty: "integer", default: Some("0"), help: "first value" },
    ParamDoc { name: "step", ty: "integer", default: Some("1"), help: "increment" },
    ParamDoc { name: "sleep_ms", ty: "integer", default: Some("0"), help: "pretend to work this long" },
];

impl Stage for Sequence {
    fn kind(&self) -> &'static str {
        "util.sequence"
    }
    fn about(&self) -> &'static str {
        "a table of n integers (engine tests and benchmarks)"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        SEQ_PARAMS
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[OutputDoc { name: "table", help: "column `x: int64`" }]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        let p: SequenceParams = params::parse(p, SEQ_PARAMS)?;
        if !(0..=MAX_ROWS).contains(&p.n) {
            return Err(params::invalid(format!("`n` must be in 0–{MAX_ROWS}, got {}", p.n), SEQ_PARAMS));
        }
        // The last value must fit in an i64.
        if p.n > 0 && (p.n - 1).checked_mul(p.step).and_then(|d| p.start.checked_add(d)).is_none() {
            return Err(params::invalid(
                format!(
                    "`start` + (`n` − 1) × `step` overflows a 64-bit integer ({} + {} × {})",
                    p.start,
                    p.n - 1,
                    p.step
                ),
                SEQ_PARAMS,
            ));
        }
        Ok(())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<SequenceParams>(p, SEQ_PARAMS)
    }
    fn run(&self, ctx: &Context, _inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        self.validate(p)?;
        let p: SequenceParams = params::parse(p, SEQ_PARAMS)?;
        sleep(ctx, p.sleep_ms)?;
        let xs: Vec<i64> = (0..p.n).map(|i| p.start + i * p.step).collect();
        let t = batch(vec![("x", Arc::new(Int64Array::from(xs)))])?;
        Ok(Outputs::from([("table".to_string(), Artifact::Table(t))]))
    }
}

/// `util.sum`: sums column `x` of every input table, times `scale`.
pub struct Sum;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SumParams {
    #[serde(default = "one")]
    scale: i64,
    #[serde(default)]
    sleep_ms: u64,
}

const SUM_PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "scale", ty: "integer", default: Some("1"), help: "multiplier" },
    ParamDoc { name: "sleep_ms", ty: "integer", default: Some("0"), help: "pretend to work this long" },
];

impl Stage for Sum {
    fn kind(&self) -> &'static str {
        "util.sum"
    }
    fn about(&self) -> &'static str {
        "sum of column x over all inputs (engine tests and benchmarks)"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        SUM_PARAMS
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[InputDoc { name: "x", required: true, many: true, help: "tables with an int64 column `x`" }]
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[OutputDoc { name: "table", help: "one row, column `x: int64`" }]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        params::parse::<SumParams>(p, SUM_PARAMS).map(|_| ())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<SumParams>(p, SUM_PARAMS)
    }
    fn run(&self, ctx: &Context, inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let p: SumParams = params::parse(p, SUM_PARAMS)?;
        sleep(ctx, p.sleep_ms)?;
        let overflow = || StageError::Data("the sum overflows a 64-bit integer".into());
        let mut total = 0i64;
        for (from, a) in inputs.all("x") {
            let t = a.table(from)?;
            for v in column::<Int64Array>(t, from, "x")?.values().iter() {
                total = total.checked_add(*v).ok_or_else(overflow)?;
            }
        }
        let total = total.checked_mul(p.scale).ok_or_else(overflow)?;
        let t = batch(vec![("x", Arc::new(Int64Array::from(vec![total])))])?;
        Ok(Outputs::from([("table".to_string(), Artifact::Table(t))]))
    }
}

/// `util.fail`: always fails with `message` (for testing failure handling).
pub struct Fail;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FailParams {
    #[serde(default = "default_message")]
    message: String,
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    mode: FailMode,
}

/// How `util.fail` fails: an error (the normal way), a panic, or an abort of the whole process
/// (what a libtorch assertion does: only a worker process survives it).
#[derive(Deserialize, Serialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum FailMode {
    #[default]
    Error,
    Panic,
    Abort,
}

fn default_message() -> String {
    "failed on purpose".to_string()
}

const FAIL_PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "message", ty: "string", default: Some("failed on purpose"), help: "the error" },
    ParamDoc { name: "sleep_ms", ty: "integer", default: Some("0"), help: "fail after this long" },
    ParamDoc {
        name: "mode",
        ty: "error | panic | abort",
        default: Some("error"),
        help: "abort kills the process running the stage (test the process executor with it)",
    },
];

impl Stage for Fail {
    fn kind(&self) -> &'static str {
        "util.fail"
    }
    fn about(&self) -> &'static str {
        "always fails (engine tests)"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        FAIL_PARAMS
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[InputDoc { name: "x", required: false, many: true, help: "ignored" }]
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[OutputDoc { name: "table", help: "never produced" }]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        params::parse::<FailParams>(p, FAIL_PARAMS).map(|_| ())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<FailParams>(p, FAIL_PARAMS)
    }
    fn run(&self, ctx: &Context, _inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let p: FailParams = params::parse(p, FAIL_PARAMS)?;
        sleep(ctx, p.sleep_ms)?;
        match p.mode {
            FailMode::Error => Err(StageError::Failed(p.message)),
            FailMode::Panic => panic!("{}", p.message),
            FailMode::Abort => {
                eprintln!("util.fail: aborting: {}", p.message);
                std::process::abort()
            }
        }
    }
}
