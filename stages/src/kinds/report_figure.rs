//! `report.figure`: the gap studies' charts (the paper's Fig. 3): a metric per group per method
//! with 95% confidence intervals over seeds (grouped bars), and each method's paired improvement
//! over a baseline per group (lines with CI bars), as SVG and PNG, plus the numbers as Parquet.
//!
//! Summaries are grouped as in `report.table`: the method from the summary, the group from the
//! `x_axis` matrix value of the producer's id (e.g. `group`, `gap`), seeds from `seed_axis`.
//! Groups whose values all parse as numbers are ordered numerically. Drawn with plotters; text
//! uses the DejaVu Sans font embedded in the binary (stages/assets, its licence beside it), so the
//! PNG needs no system fonts.

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
use crate::report::chart::{png, svg, Chart};
use crate::report::summaries::{collect, gap_closed, ordered_methods, paired};

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct P {
    x_axis: String,
    #[serde(default = "d_seed")]
    seed_axis: String,
    #[serde(default = "d_base")]
    baseline: String,
    #[serde(default = "d_metric")]
    metric: Metric,
    #[serde(default)]
    order: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    x_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oracle: Option<String>,
}
fn d_seed() -> String {
    "seed".into()
}
fn d_base() -> String {
    "dqn_r".into()
}
fn d_metric() -> Metric {
    Metric::Reward
}

const PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "x_axis", ty: "string", default: None, help: "matrix axis of the groups (x axis)" },
    ParamDoc { name: "seed_axis", ty: "string", default: Some("seed"), help: "matrix axis of the seeds" },
    ParamDoc { name: "baseline", ty: "string", default: Some("dqn_r"), help: "method the improvement is over" },
    ParamDoc { name: "metric", ty: "reward | precision | recall | f1", default: Some("reward"), help: "plotted" },
    ParamDoc { name: "order", ty: "[string]", default: Some("sorted"), help: "series order" },
    ParamDoc { name: "labels", ty: "{method: label}", default: Some("{}"), help: "legend names" },
    ParamDoc { name: "title", ty: "string", default: Some("\"\""), help: "chart title prefix" },
    ParamDoc { name: "x_label", ty: "string", default: Some("the x_axis name"), help: "x axis label" },
    ParamDoc {
        name: "oracle",
        ty: "string",
        default: Some("none"),
        help: "with it, the gain chart is the share (%) of the baseline → oracle gap each method closes, per seed then mean ± CI",
    },
];

fn parse(v: &Value) -> Result<P, StageError> {
    let p: P = params::parse(v, PARAMS)?;
    Ok(p)
}

/// The stage.
pub struct ReportFigure;

impl Stage for ReportFigure {
    fn kind(&self) -> &'static str {
        "report.figure"
    }
    fn about(&self) -> &'static str {
        "Fig. 3-style charts (SVG + PNG): a metric per group per method with 95% CIs, and the improvement over a baseline"
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
            OutputDoc {
                name: "data",
                help: "method, group, mean, ci95, n, improvement_pct, improvement_ci_pct (with `oracle`: the gap closed, %)",
            },
            OutputDoc { name: "metric_svg", help: "the metric per group per method (bars, 95% CI)" },
            OutputDoc { name: "metric_png", help: "the same as PNG" },
            OutputDoc {
                name: "gain_svg",
                help: "improvement over the baseline per group (%), 95% CI of the paired differences",
            },
            OutputDoc { name: "gain_png", help: "the same as PNG" },
        ]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        parse(p).map(|_| ())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<P>(p, PARAMS)
    }
    fn run(&self, ctx: &Context, inputs: &Inputs, pv: &Value) -> Result<Outputs, StageError> {
        let p = parse(pv)?;
        let k = p.metric.index();
        let (cells, mut groups) = collect(inputs, Some(&p.x_axis), &p.seed_axis)?;
        let ordered = ordered_methods(&cells, &p.order);
        groups.sort();
        if groups.iter().all(|g| g.parse::<f64>().is_ok()) {
            groups.sort_by(|a, b| a.parse::<f64>().unwrap_or(0.0).total_cmp(&b.parse::<f64>().unwrap_or(0.0)));
        }
        let label = |m: &str| p.labels.get(m).cloned().unwrap_or_else(|| m.to_string());
        let mut rows: Vec<(String, String, f64, f64, u32, f64, f64)> = Vec::new();
        let mut metric_series = Vec::new();
        let mut gain_series = Vec::new();
        for (mi, m) in ordered.iter().enumerate() {
            let mut mv = Vec::new();
            let mut gv = Vec::new();
            for g in &groups {
                let seeds = cells.get(&(m.clone(), g.clone()));
                let v: Vec<f64> = seeds.map(|s| s.values().map(|x| x[k]).collect()).unwrap_or_default();
                let (mean, ci) = mean_ci(&v);
                let (gain, gain_ci) = match &p.oracle {
                    Some(o) => gap_closed(&cells, &p.baseline, o, m, g, k)
                        .filter(|_| m != o)
                        .map_or((f64::NAN, f64::NAN), |d| (100.0 * d.mean, 100.0 * d.ci)),
                    None => paired(&cells, &p.baseline, m, g, k).map_or((f64::NAN, f64::NAN), |d| {
                        (100.0 * d.mean / d.baseline_mean, 100.0 * d.ci / d.baseline_mean)
                    }),
                };
                if !v.is_empty() {
                    rows.push((m.clone(), g.clone(), mean, ci, v.len() as u32, gain, gain_ci));
                }
                mv.push((mean, ci));
                gv.push((gain, gain_ci));
            }
            metric_series.push((label(m), mi, mv));
            if m != &p.baseline && p.oracle.as_ref() != Some(m) {
                gain_series.push((label(m), mi, gv));
            }
        }
        let x_label = p.x_label.clone().unwrap_or_else(|| p.x_axis.clone());
        let prefix = if p.title.is_empty() { String::new() } else { format!("{}: ", p.title) };
        let metric_chart = Chart {
            title: format!("{prefix}{} per {} (mean ± 95% CI)", p.metric.name(), p.x_axis),
            x_label: x_label.clone(),
            y_label: p.metric.name().to_string(),
            groups: groups.clone(),
            series: metric_series,
            bars: true,
        };
        let (gain_title, gain_y) = match &p.oracle {
            Some(o) => (
                format!("{prefix}share of the {} → {} gap closed (%)", label(&p.baseline), label(o)),
                format!("gap closed on {} (%)", p.metric.name()),
            ),
            None => (
                format!("{prefix}improvement over {} (%)", label(&p.baseline)),
                format!("Δ {} vs {} (%)", p.metric.name(), label(&p.baseline)),
            ),
        };
        let gain_chart =
            Chart { title: gain_title, x_label, y_label: gain_y, groups, series: gain_series, bars: false };
        let data = batch(vec![
            ("method", Arc::new(StringArray::from(rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>()))),
            ("group", Arc::new(StringArray::from(rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>()))),
            ("mean", Arc::new(Float64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>()))),
            ("ci95", Arc::new(Float64Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>()))),
            ("n", Arc::new(UInt32Array::from(rows.iter().map(|r| r.4).collect::<Vec<_>>()))),
            ("improvement_pct", Arc::new(Float64Array::from(rows.iter().map(|r| r.5).collect::<Vec<_>>()))),
            ("improvement_ci_pct", Arc::new(Float64Array::from(rows.iter().map(|r| r.6).collect::<Vec<_>>()))),
        ])?;
        let file = |ext: &str, bytes: Vec<u8>| Artifact::File { ext: ext.to_string(), bytes };
        Ok(Outputs::from([
            ("data".into(), Artifact::Table(data)),
            ("metric_svg".into(), file("svg", svg(&metric_chart)?.into_bytes())),
            ("metric_png".into(), file("png", png(&metric_chart, ctx.scratch(), "metric")?)),
            ("gain_svg".into(), file("svg", svg(&gain_chart)?.into_bytes())),
            ("gain_png".into(), file("png", png(&gain_chart, ctx.scratch(), "gain")?)),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(method: &str, r: f64) -> Artifact {
        Artifact::Table(
            batch(vec![
                ("method", Arc::new(StringArray::from(vec![method]))),
                ("reward", Arc::new(Float64Array::from(vec![r]))),
                ("precision", Arc::new(Float64Array::from(vec![r]))),
                ("recall", Arc::new(Float64Array::from(vec![r]))),
                ("f1", Arc::new(Float64Array::from(vec![r]))),
            ])
            .unwrap(),
        )
    }

    #[test]
    fn draws_svg_and_png_with_the_numbers_beside_them() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context::for_tests(dir.path());
        let mut inputs = Inputs::default();
        for gap in ["0", "0.5", "2", "10"] {
            for seed in 1..=3 {
                let g: f64 = gap.parse().unwrap();
                let s = f64::from(seed) * 0.001;
                let m = || [("gap", serde_json::from_str::<Value>(gap).unwrap()), ("seed", Value::from(seed))];
                inputs.push_instance("summary", format!("a[gap={gap},seed={seed}]"), m(), summary("dqn_r", 0.2 + s));
                let b = summary("s2r", 0.2 + 0.01 * g + 2.0 * s);
                inputs.push_instance("summary", format!("b[gap={gap},seed={seed}]"), m(), b);
            }
        }
        let p = serde_json::json!({"x_axis": "gap", "labels": {"s2r": "S2R-Rec"}, "title": "synthetic"});
        let out = ReportFigure.run(&ctx, &inputs, &p).unwrap();
        let Artifact::Table(d) = &out["data"] else { panic!() };
        let groups = crate::data::table::column::<StringArray>(d, "d", "group").unwrap();
        // Numeric groups in numeric order (not "0", "0.5", "10", "2").
        assert_eq!((0..4).map(|i| groups.value(i).to_string()).collect::<Vec<_>>(), ["0", "0.5", "2", "10"]);
        let gain = crate::data::table::f64_column(d, "d", "improvement_pct").unwrap();
        // s2r at gap 10: mean diff = 0.1 + 0.002 over a baseline mean of 0.202.
        assert!((gain[7] - 100.0 * 0.102 / 0.202).abs() < 1e-9, "{gain:?}");
        let Artifact::File { ext, bytes } = &out["metric_svg"] else { panic!() };
        assert_eq!(ext, "svg");
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("<svg") && text.contains("S2R-Rec") && text.contains("<rect"), "{}", &text[..200]);
        let Artifact::File { ext, bytes } = &out["gain_png"] else { panic!() };
        assert_eq!(ext, "png");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(bytes.len() > 5_000, "a drawn chart, not an empty image: {} bytes", bytes.len());
        // The same inputs draw the same bytes (so the cache's early cutoff works for figures).
        let again = ReportFigure.run(&ctx, &inputs, &p).unwrap();
        assert!(
            matches!((&out["gain_png"], &again["gain_png"]), (Artifact::File { bytes: a, .. }, Artifact::File { bytes: b, .. }) if a == b)
        );
    }
}
