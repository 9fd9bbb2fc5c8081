//! `select.best`: model selection on validation users (docs/design.md §6: test users are never used
//! for any choice).
//!
//! The candidates are the instances of a trained-model matrix (e.g. `train[alpha=…]`): their
//! validation summaries (`val`, from `irs.eval` on `split.val`) and their artifacts (`weights`,
//! `model`, `real_item_vecs`). A candidate's validation summary and its artifacts are matched by
//! the matrix values in the producers' ids (`val[alpha=0.7,seed=1]` ↔ `train[alpha=0.7,seed=1]`).
//! The best validation `metric` wins (ties: the first id in sort order); its artifacts pass
//! through, so the test evaluation downstream only ever sees the chosen model.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{BooleanArray, Float64Array, StringArray};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::artifact::{Artifact, Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{InputDoc, OutputDoc, ParamDoc};
use crate::api::error::StageError;
use crate::api::params;
use crate::api::stage::Stage;
use crate::data::table::{batch, f64_column};
use crate::eval::metrics::Metric;

fn axes_text(a: &BTreeMap<String, String>) -> String {
    if a.is_empty() {
        "(no matrix values)".into()
    } else {
        a.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
    }
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct P {
    #[serde(default = "d_metric")]
    metric: Metric,
}
fn d_metric() -> Metric {
    Metric::Reward
}

const PARAMS: &[ParamDoc] = &[ParamDoc {
    name: "metric",
    ty: "reward | precision | recall | f1",
    default: Some("reward"),
    help: "validation metric to maximise",
}];

fn parse(v: &Value) -> Result<P, StageError> {
    params::parse(v, PARAMS)
}

const PASSED: [&str; 3] = ["weights", "model", "real_item_vecs"];

/// The stage.
pub struct SelectBest;

impl Stage for SelectBest {
    fn kind(&self) -> &'static str {
        "select.best"
    }
    fn about(&self) -> &'static str {
        "model selection: the candidate with the best validation metric; passes its artifacts through"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[
            InputDoc { name: "val", required: true, many: true, help: "irs.eval summaries on validation users" },
            InputDoc { name: "weights", required: true, many: true, help: "irs.train weights of the candidates" },
            InputDoc { name: "model", required: true, many: true, help: "irs.train model of the candidates" },
            InputDoc {
                name: "real_item_vecs",
                required: true,
                many: true,
                help: "irs.train real_item_vecs of the candidates",
            },
        ]
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[
            OutputDoc { name: "weights", help: "the chosen candidate's weights" },
            OutputDoc { name: "model", help: "the chosen candidate's model" },
            OutputDoc { name: "real_item_vecs", help: "the chosen candidate's real item vectors" },
            OutputDoc { name: "choice", help: "candidate, metric (validation), chosen" },
        ]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        parse(p).map(|_| ())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<P>(p, PARAMS)
    }
    fn run(&self, _ctx: &Context, inputs: &Inputs, pv: &Value) -> Result<Outputs, StageError> {
        let p = parse(pv)?;
        let mut scored: Vec<(String, BTreeMap<String, String>, f64)> = Vec::new();
        for (from, art) in inputs.all("val") {
            let t = art.table("val")?;
            let v = f64_column(t, "val", p.metric.name())?;
            let m = v.first().copied().ok_or_else(|| StageError::Input(format!("`{from}`: empty summary")))?;
            scored.push((from.clone(), inputs.matrix_text(from), if m.is_nan() { f64::NEG_INFINITY } else { m }));
        }
        if scored.is_empty() {
            return Err(StageError::Input("no validation summaries bound to `val`".into()));
        }
        scored.sort_by(|a, b| a.0.cmp(&b.0));
        let best = scored.iter().enumerate().fold(0, |bi, (i, s)| if s.2 > scored[bi].2 { i } else { bi });
        let want = &scored[best].1;
        let mut out = Outputs::new();
        for name in PASSED {
            let hits: Vec<&(String, Artifact)> =
                inputs.all(name).iter().filter(|(from, _)| &inputs.matrix_text(from) == want).collect();
            match hits.as_slice() {
                [(_, a)] => {
                    out.insert(name.to_string(), a.clone());
                }
                [] => {
                    return Err(StageError::Input(format!(
                        "no `{name}` from a candidate with {} (the best on validation, `{}`); bound: {}",
                        axes_text(want),
                        scored[best].0,
                        inputs.all(name).iter().map(|(f, _)| format!("`{f}`")).collect::<Vec<_>>().join(", ")
                    )))
                }
                _ => {
                    return Err(StageError::Input(format!(
                        "{} artifacts bound to `{name}` have {}: bind one candidate matrix",
                        hits.len(),
                        axes_text(want)
                    )))
                }
            }
        }
        let choice = batch(vec![
            ("candidate", Arc::new(StringArray::from(scored.iter().map(|s| s.0.clone()).collect::<Vec<_>>()))),
            ("metric", Arc::new(Float64Array::from(scored.iter().map(|s| s.2).collect::<Vec<_>>()))),
            ("chosen", Arc::new(BooleanArray::from((0..scored.len()).map(|i| i == best).collect::<Vec<_>>()))),
        ])?;
        out.insert("choice".into(), Artifact::Table(choice));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn summary(reward: f64) -> Artifact {
        Artifact::Table(
            batch(vec![
                ("method", Arc::new(StringArray::from(vec!["s2r"]))),
                ("reward", Arc::new(Float64Array::from(vec![reward]))),
            ])
            .unwrap(),
        )
    }

    #[test]
    fn picks_the_best_validation_candidate_and_passes_its_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context::for_tests(dir.path());
        let mut inputs = Inputs::default();
        for (alpha, r) in [("0.6", 0.10), ("0.7", 0.30), ("0.8", 0.20)] {
            let m = || [("alpha", json!(alpha.parse::<f64>().unwrap())), ("seed", json!(1))];
            inputs.push_instance("val", format!("val[alpha={alpha},seed=1]"), m(), summary(r));
            for name in PASSED {
                let w = Artifact::Weights(alpha.as_bytes().to_vec());
                inputs.push_instance(name, format!("train[seed=1,alpha={alpha}]"), m(), w);
            }
        }
        let out = SelectBest.run(&ctx, &inputs, &serde_json::json!({})).unwrap();
        let Artifact::Weights(w) = &out["weights"] else { panic!("weights expected") };
        assert_eq!(w, b"0.7");
        let Artifact::Table(c) = &out["choice"] else { panic!() };
        assert_eq!(c.num_rows(), 3);
        // A candidate whose artifacts are missing is an error naming it.
        let mut partial = Inputs::default();
        partial.push_instance("val", "val[alpha=0.9]", [("alpha", json!(0.9))], summary(0.5));
        for name in PASSED {
            partial.push_instance(name, "train[alpha=0.6]", [("alpha", json!(0.6))], Artifact::Weights(vec![]));
        }
        let err = SelectBest.run(&ctx, &partial, &serde_json::json!({})).unwrap_err().to_string();
        assert!(err.contains("alpha=0.9"), "{err}");
    }
}
