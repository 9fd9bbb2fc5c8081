//! `data.stats`: Table 1 of the paper (users sim-only / shared / test, items sim / real, ratings
//! train sim / real and test real) for one split, as a one-row table that `s2r-pipe cat … --format
//! markdown` prints like Table 1.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray, UInt32Array};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::artifact::{Artifact, Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{InputDoc, OutputDoc, ParamDoc};
use crate::api::error::StageError;
use crate::api::params;
use crate::api::stage::Stage;
use crate::data::table::{batch, column, counter};

/// The stats stage.
pub struct Stats;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct P {
    #[serde(default)]
    dataset: String,
    #[serde(default)]
    sim: String,
    #[serde(default)]
    real: String,
    #[serde(default)]
    pair: Option<String>,
}

const PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "dataset", ty: "string", default: Some("\"\""), help: "label of the dataset column" },
    ParamDoc { name: "sim", ty: "string", default: Some("\"\""), help: "label of the sim category" },
    ParamDoc { name: "real", ty: "string", default: Some("\"\""), help: "label of the real category" },
    ParamDoc {
        name: "pair",
        ty: "string `Sim_Real`",
        default: Some("none"),
        help: "the Sim and Real columns from one value, as `data.split`'s `pair` (for a matrix over pairs)",
    },
];

/// The Sim and Real labels: `sim`/`real`, or split from `pair` (`Adventure_Crime`).
fn labels(p: &P) -> Result<(String, String), StageError> {
    match &p.pair {
        None => Ok((p.sim.clone(), p.real.clone())),
        Some(_) if !p.sim.is_empty() || !p.real.is_empty() => {
            Err(params::invalid("give either `pair` or `sim` and `real`, not both", PARAMS))
        }
        Some(pair) => pair
            .split_once('_')
            .map(|(s, r)| (s.to_string(), r.to_string()))
            .ok_or_else(|| params::invalid(format!("`pair` must be `Sim_Real`, got `{pair}`"), PARAMS)),
    }
}

impl Stage for Stats {
    fn kind(&self) -> &'static str {
        "data.stats"
    }
    fn about(&self) -> &'static str {
        "Table 1: users, items and ratings of a sim/real split"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[
            InputDoc { name: "sim", required: true, many: false, help: "split.sim" },
            InputDoc { name: "real_train", required: true, many: false, help: "split.real_train" },
            InputDoc { name: "val", required: false, many: false, help: "split.val" },
            InputDoc { name: "test", required: true, many: false, help: "split.test" },
            InputDoc { name: "sim_items", required: true, many: false, help: "split.sim_items" },
            InputDoc { name: "real_items", required: true, many: false, help: "split.real_items" },
            InputDoc { name: "users", required: true, many: false, help: "split.users" },
            InputDoc { name: "info", required: false, many: false, help: "split.info" },
            InputDoc {
                name: "report",
                required: false,
                many: false,
                help: "the loader's report (duplicates, lossy titles)",
            },
        ]
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[OutputDoc { name: "table1", help: "one row in Table 1's layout" }]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        labels(&params::parse::<P>(p, PARAMS)?).map(|_| ())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<P>(p, PARAMS)
    }
    fn run(&self, _ctx: &Context, inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let p: P = params::parse(p, PARAMS)?;
        let (sim_label, real_label) = labels(&p)?;
        let users = inputs.table("users")?;
        let ids = column::<UInt32Array>(users, "users", "user")?;
        let roles = column::<StringArray>(users, "users", "role")?;
        let with_role = |r: &str| {
            (0..users.num_rows()).filter(|&k| roles.value(k) == r).map(|k| ids.value(k)).collect::<HashSet<u32>>()
        };
        let shared = with_role("shared");
        let sim = inputs.table("sim")?;
        let sim_users: HashSet<u32> = column::<UInt32Array>(sim, "sim", "user")?.values().iter().copied().collect();
        let sim_only = sim_users.difference(&shared).count();
        let rows = |name: &str| -> Result<i64, StageError> { Ok(inputs.table(name)?.num_rows() as i64) };
        let val_users = with_role("val").len() as i64;
        let mut cols: Vec<(&str, ArrayRef)> = vec![
            ("Dataset", Arc::new(StringArray::from(vec![p.dataset]))),
            ("Sim", Arc::new(StringArray::from(vec![sim_label]))),
            ("Real", Arc::new(StringArray::from(vec![real_label]))),
        ];
        let mut ints = vec![
            ("Users train sim-only", sim_only as i64),
            ("Users train shared", shared.len() as i64),
            ("Users val", val_users),
            ("Users test real", with_role("test").len() as i64),
            ("Items train sim", rows("sim_items")?),
            ("Items train real", rows("real_items")?),
            ("Items test real", rows("real_items")?),
            ("Ratings train sim", rows("sim")?),
            ("Ratings train real", rows("real_train")?),
            ("Ratings test real", rows("test")?),
        ];
        if inputs.has("val") {
            ints.push(("Ratings val real", rows("val")?));
        }
        if inputs.has("report") {
            let rep = inputs.table("report")?;
            for key in ["duplicates", "lossy_titles", "unrated_dropped"] {
                if let Some(v) = counter(rep, "report", key)? {
                    ints.push((
                        match key {
                            "duplicates" => "Duplicate ratings dropped",
                            "lossy_titles" => "Non-UTF-8 titles",
                            _ => "Unrated rows dropped",
                        },
                        v,
                    ));
                }
            }
        }
        if inputs.has("info") {
            let info = inputs.table("info")?;
            if let Some(v) = counter(info, "info", "items_in_both_dropped")? {
                ints.push(("Items in both dropped", v));
            }
        }
        for (name, v) in ints {
            cols.push((name, Arc::new(Int64Array::from(vec![v]))));
        }
        Ok(Outputs::from([("table1".to_string(), Artifact::Table(batch(cols)?))]))
    }
}
