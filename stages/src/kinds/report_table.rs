//! `report.table`: the layout of the paper's Tables 2 and 3 — methods × dataset pairs × Reward /
//! P@T / R@T / F1@T — as mean ± 95% confidence interval over seeds, with the paired improvement
//! over a baseline method.
//!
//! Every bound `summary` (from `eval.static` / `irs.eval`) is one (method, column, seed) cell: the
//! method is the summary's `method` value, the column the value of the `columns` matrix axis in
//! the producer's id (e.g. `pair`), the seed the value of the `seed_axis` axis (a summary without
//! one counts as a single seed). CI = t_{0.975, n−1} · s / √n (Student's t; "—" for one seed).
//! Improvement = the mean over seeds of (method − baseline) on the reward, paired by seed, as a
//! percentage of the baseline's mean, with the CI of the paired differences.
//!
//! Outputs: `table` (strings, one row per method; `cat --format markdown` and `run` print it) and
//! `values` (long, numeric: method, column, metric, mean, ci95, n).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Float64Array, StringArray, UInt32Array};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::artifact::{Artifact, Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{InputDoc, OutputDoc, ParamDoc};
use crate::api::error::StageError;
use crate::api::params;
use crate::api::stage::Stage;
use crate::data::table::batch;
use crate::eval::metrics::Metric;
use crate::numerics::stats::mean_ci;
use crate::report::summaries::{collect, gap_closed, ordered_methods, paired};

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct P {
    #[serde(default)]
    columns: Option<String>,
    #[serde(default = "d_seed")]
    seed_axis: String,
    #[serde(default = "d_base")]
    baseline: String,
    #[serde(default)]
    order: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default = "d_t")]
    session_len: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metrics: Option<Vec<Metric>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oracle: Option<String>,
}
fn d_seed() -> String {
    "seed".into()
}
fn d_base() -> String {
    "dqn_r".into()
}
fn d_t() -> usize {
    32
}

const PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "columns", ty: "string", default: Some("none"), help: "matrix axis giving the column groups" },
    ParamDoc { name: "seed_axis", ty: "string", default: Some("seed"), help: "matrix axis of the seeds" },
    ParamDoc { name: "baseline", ty: "string", default: Some("dqn_r"), help: "method the improvement is over" },
    ParamDoc { name: "order", ty: "[string]", default: Some("sorted"), help: "row order of the methods" },
    ParamDoc { name: "labels", ty: "{method: label}", default: Some("{}"), help: "display names" },
    ParamDoc { name: "session_len", ty: "integer", default: Some("32"), help: "T in the headers" },
    ParamDoc {
        name: "metrics",
        ty: "[reward | precision | recall | f1]",
        default: Some("all four"),
        help: "the metric columns (a world's online sessions have reward and P@T only)",
    },
    ParamDoc {
        name: "oracle",
        ty: "string",
        default: Some("none"),
        help:
            "method whose gap to the baseline the others close: adds a `gap closed` column (per seed, then mean ± CI)",
    },
];

fn cell(m: f64, ci: f64) -> String {
    if m.is_nan() {
        "—".into()
    } else if ci.is_nan() {
        format!("{m:.4}")
    } else {
        format!("{m:.4} ± {ci:.4}")
    }
}

/// The stage.
pub struct ReportTable;

impl Stage for ReportTable {
    fn kind(&self) -> &'static str {
        "report.table"
    }
    fn about(&self) -> &'static str {
        "Tables 2/3: methods × columns × metrics, mean ± 95% CI over seeds, paired improvement over a baseline"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[InputDoc { name: "summary", required: true, many: true, help: "eval summaries (test users)" }]
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[
            OutputDoc { name: "table", help: "method, then `<column> <metric>` cells as `mean ± ci`, improvement" },
            OutputDoc { name: "values", help: "method, column, metric, mean, ci95, n" },
        ]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        params::parse::<P>(p, PARAMS).map(|_| ())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<P>(p, PARAMS)
    }
    fn run(&self, _ctx: &Context, inputs: &Inputs, pv: &Value) -> Result<Outputs, StageError> {
        let p: P = params::parse(pv, PARAMS)?;
        // Columns in binding order: the paper's Movie → TV, TV → OVA, OVA → Movie, not alphabetical.
        let (cells, cols) = collect(inputs, p.columns.as_deref(), &p.seed_axis)?;
        if cells.is_empty() {
            return Err(StageError::Input("no summaries bound to `summary`".into()));
        }
        let ordered = ordered_methods(&cells, &p.order);
        let t = p.session_len;
        let headers = ["Reward".to_string(), format!("P@{t}"), format!("R@{t}"), format!("F1@{t}")];
        let mut table_cols: Vec<(String, Vec<String>)> =
            vec![("method".into(), ordered.iter().map(|m| p.labels.get(m).cloned().unwrap_or(m.clone())).collect())];
        let (mut lm, mut lc, mut lk, mut lmean, mut lci, mut ln) = (vec![], vec![], vec![], vec![], vec![], vec![]);
        for c in &cols {
            for (k, h) in headers.iter().enumerate() {
                if p.metrics.as_ref().is_some_and(|ms| !ms.contains(&Metric::ALL[k])) {
                    continue;
                }
                let name = if c.is_empty() { h.clone() } else { format!("{c} {h}") };
                let mut col_cells = Vec::new();
                for m in &ordered {
                    let seeds = cells.get(&(m.clone(), c.clone()));
                    let v: Vec<f64> = seeds.map(|s| s.values().map(|x| x[k]).collect()).unwrap_or_default();
                    let (mean, ci) = mean_ci(&v);
                    col_cells.push(if v.is_empty() { "—".into() } else { cell(mean, ci) });
                    if !v.is_empty() {
                        lm.push(m.clone());
                        lc.push(c.clone());
                        lk.push(Metric::ALL[k].name().to_string());
                        lmean.push(mean);
                        lci.push(ci);
                        ln.push(v.len() as u32);
                    }
                }
                table_cols.push((name, col_cells));
            }
            // Paired improvement of the reward over the baseline, by seed.
            let name = if c.is_empty() { "vs baseline".to_string() } else { format!("{c} vs baseline") };
            let mut col_cells = Vec::new();
            for m in &ordered {
                let text = match paired(&cells, &p.baseline, m, c, 0).filter(|_| m != &p.baseline) {
                    Some(d) => {
                        lm.push(m.clone());
                        lc.push(c.clone());
                        lk.push("reward_improvement".into());
                        lmean.push(d.mean);
                        lci.push(d.ci);
                        ln.push(d.n as u32);
                        let pct = |x: f64| 100.0 * x / d.baseline_mean;
                        if d.ci.is_nan() {
                            format!("{:+.1}%", pct(d.mean))
                        } else {
                            format!("{:+.1}% ± {:.1}", pct(d.mean), pct(d.ci))
                        }
                    }
                    None => "—".to_string(),
                };
                col_cells.push(text);
            }
            table_cols.push((name, col_cells));
            if let Some(oracle) = &p.oracle {
                let name = if c.is_empty() { "gap closed".to_string() } else { format!("{c} gap closed") };
                let mut col_cells = Vec::new();
                for m in &ordered {
                    let g =
                        gap_closed(&cells, &p.baseline, oracle, m, c, 0).filter(|_| m != &p.baseline && m != oracle);
                    col_cells.push(match g {
                        Some(g) => {
                            lm.push(m.clone());
                            lc.push(c.clone());
                            lk.push("gap_closed".into());
                            lmean.push(g.mean);
                            lci.push(g.ci);
                            ln.push(g.n as u32);
                            if g.ci.is_nan() {
                                format!("{:.0}%", 100.0 * g.mean)
                            } else {
                                format!("{:.0}% ± {:.0}", 100.0 * g.mean, 100.0 * g.ci)
                            }
                        }
                        None => "—".to_string(),
                    });
                }
                table_cols.push((name, col_cells));
            }
        }
        let table = batch(
            table_cols
                .iter()
                .map(|(n, v)| (n.as_str(), Arc::new(StringArray::from(v.clone())) as arrow::array::ArrayRef))
                .collect(),
        )?;
        let values = batch(vec![
            ("method", Arc::new(StringArray::from(lm))),
            ("column", Arc::new(StringArray::from(lc))),
            ("metric", Arc::new(StringArray::from(lk))),
            ("mean", Arc::new(Float64Array::from(lmean))),
            ("ci95", Arc::new(Float64Array::from(lci))),
            ("n", Arc::new(UInt32Array::from(ln))),
        ])?;
        Ok(Outputs::from([("table".into(), Artifact::Table(table)), ("values".into(), Artifact::Table(values))]))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::data::table::column;

    fn summary(method: &str, r: f64) -> Artifact {
        Artifact::Table(
            batch(vec![
                ("method", Arc::new(StringArray::from(vec![method]))),
                ("users", Arc::new(UInt32Array::from(vec![10]))),
                ("reward", Arc::new(Float64Array::from(vec![r]))),
                ("precision", Arc::new(Float64Array::from(vec![r / 2.0]))),
                ("recall", Arc::new(Float64Array::from(vec![r * 2.0]))),
                ("f1", Arc::new(Float64Array::from(vec![r]))),
            ])
            .unwrap(),
        )
    }

    #[test]
    fn table_groups_by_method_column_and_seed_with_paired_improvement() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context::for_tests(dir.path());
        let mut inputs = Inputs::default();
        // C-D bound first: columns follow the binding order, not the alphabet.
        for (pair, off) in [("C-D", 0.1), ("A-B", 0.0)] {
            for (seed, noise) in [(1, 0.00), (2, 0.02)] {
                let m = || [("pair", json!(pair)), ("seed", json!(seed))];
                let (a, b) = (summary("dqn_r", 0.10 + off + noise), summary("s2r", 0.12 + off + noise));
                inputs.push_instance("summary", format!("test[pair={pair},seed={seed}]"), m(), a);
                inputs.push_instance("summary", format!("test_s2r[pair={pair},seed={seed}]"), m(), b);
            }
        }
        let p = serde_json::json!({"columns": "pair", "order": ["s2r", "dqn_r"], "labels": {"s2r": "S2R-Rec"}});
        let out = ReportTable.run(&ctx, &inputs, &p).unwrap();
        let Artifact::Table(t) = &out["table"] else { panic!() };
        let col = |n: &str| column::<StringArray>(t, "t", n).unwrap().clone();
        assert_eq!(col("method").value(0), "S2R-Rec");
        let names: Vec<String> = t.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(&names[..2], ["method", "C-D Reward"], "{names:?}");
        assert_eq!(col("A-B Reward").value(1), "0.1100 ± 0.1271"); // 0.10, 0.12: s = 0.01414, t = 12.706
                                                                   // The paired differences are exactly 0.02 for both seeds: 0.02 / 0.11 = +18.2%, zero-width CI.
        assert_eq!(col("A-B vs baseline").value(0), "+18.2% ± 0.0");
        assert_eq!(col("C-D vs baseline").value(1), "—");
        let Artifact::Table(v) = &out["values"] else { panic!() };
        assert_eq!(v.num_rows(), 2 * 2 * 4 + 2);
        // Two summaries of one method and seed in one cell are an error.
        let mut dup = Inputs::default();
        dup.push_instance("summary", "a[seed=1]", [("seed", json!(1))], summary("mf", 0.1));
        dup.push_instance("summary", "b[seed=1]", [("seed", json!(1))], summary("mf", 0.2));
        assert!(ReportTable.run(&ctx, &dup, &serde_json::json!({})).unwrap_err().to_string().contains("two summaries"));
    }
}
