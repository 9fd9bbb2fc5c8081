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
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Deserialize;
use serde_json::Value;

use crate::artifact::{Artifact, Inputs, Outputs};
use crate::error::StageError;
use crate::kinds::report_table::{collect, mean_ci, ordered_methods, paired, METRICS};
use crate::params;
use crate::stage::{Context, InputDoc, OutputDoc, ParamDoc, Stage};
use crate::table::batch;

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The embedded font is a valid TrueType file; failure here is a build defect.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct P {
    x_axis: String,
    #[serde(default = "d_seed")]
    seed_axis: String,
    #[serde(default = "d_base")]
    baseline: String,
    #[serde(default = "d_metric")]
    metric: String,
    #[serde(default)]
    order: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    x_label: Option<String>,
}
fn d_seed() -> String {
    "seed".into()
}
fn d_base() -> String {
    "dqn_r".into()
}
fn d_metric() -> String {
    "reward".into()
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
];

fn parse(v: &Value) -> Result<P, StageError> {
    let p: P = params::parse(v, PARAMS)?;
    if !METRICS.contains(&p.metric.as_str()) {
        return Err(params::invalid(format!("unknown metric `{}`", p.metric), PARAMS));
    }
    Ok(p)
}

/// One series: legend, palette index (a method keeps its colour across charts), and
/// (mean, CI half-width) per group.
pub type Series = (String, usize, Vec<(f64, f64)>);

/// One chart: groups on x, one series per method, (mean, CI half-width) per group (NaN = none).
pub struct Chart {
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Group names.
    pub groups: Vec<String>,
    /// The series.
    pub series: Vec<Series>,
    /// Bars (true) or lines with points.
    pub bars: bool,
}

fn y_range(c: &Chart) -> (f64, f64) {
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for (_, _, v) in &c.series {
        for &(m, ci) in v {
            if m.is_finite() {
                let ci = if ci.is_finite() { ci } else { 0.0 };
                lo = lo.min(m - ci);
                hi = hi.max(m + ci);
            }
        }
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let pad = 0.08 * (hi - lo);
    (if lo < 0.0 { lo - pad } else { 0.0 }, hi + pad)
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, c: &Chart) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: &dyn std::fmt::Display| x.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let g = c.groups.len().max(1);
    let (lo, hi) = y_range(c);
    let mut chart = ChartBuilder::on(&root)
        .caption(&c.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5f64..(g as f64 - 0.5), lo..hi)
        .map_err(|x| e(&x))?;
    let groups = c.groups.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(g)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                groups.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc(&c.x_label)
        .y_desc(&c.y_label)
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(|x| e(&x))?;
    let m = c.series.len().max(1);
    let width = 0.8 / m as f64;
    for (si, (name, ci, vals)) in c.series.iter().enumerate() {
        let color = Palette99::pick(*ci).to_rgba();
        let offset = if c.bars { (si as f64 - (m as f64 - 1.0) / 2.0) * width } else { 0.0 };
        let pts: Vec<(f64, f64, f64)> = vals
            .iter()
            .enumerate()
            .filter(|(_, v)| v.0.is_finite())
            .map(|(gi, v)| (gi as f64 + offset, v.0, if v.1.is_finite() { v.1 } else { 0.0 }))
            .collect();
        if c.bars {
            chart
                .draw_series(pts.iter().map(|&(x, y, _)| {
                    Rectangle::new([(x - width / 2.0, 0.0f64.max(lo)), (x + width / 2.0, y)], color.filled())
                }))
                .map_err(|x| e(&x))?
                .label(name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        } else {
            chart
                .draw_series(LineSeries::new(pts.iter().map(|&(x, y, _)| (x, y)), color.stroke_width(2)))
                .map_err(|x| e(&x))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2)));
            chart
                .draw_series(pts.iter().map(|&(x, y, _)| Circle::new((x, y), 4, color.filled())))
                .map_err(|x| e(&x))?;
        }
        // 95% CI bars.
        let cap = if c.bars { width / 4.0 } else { 0.06 };
        chart
            .draw_series(pts.iter().filter(|p| p.2 > 0.0).flat_map(|&(x, y, ci)| {
                [
                    PathElement::new(vec![(x, y - ci), (x, y + ci)], BLACK.stroke_width(1)),
                    PathElement::new(vec![(x - cap, y - ci), (x + cap, y - ci)], BLACK.stroke_width(1)),
                    PathElement::new(vec![(x - cap, y + ci), (x + cap, y + ci)], BLACK.stroke_width(1)),
                ]
            }))
            .map_err(|x| e(&x))?;
    }
    if !c.bars && lo < 0.0 {
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(-0.5, 0.0), (g as f64 - 0.5, 0.0)], BLACK.mix(0.5))))
            .map_err(|x| e(&x))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// The chart as SVG text.
pub fn svg(c: &Chart) -> Result<String, StageError> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (900, 520)).into_drawing_area();
        draw(root, c).map_err(|m| StageError::Failed(format!("cannot draw `{}`: {m}", c.title)))?;
    }
    Ok(out)
}

/// The chart as PNG bytes (drawn into a file in `scratch`).
pub fn png(c: &Chart, scratch: &std::path::Path, name: &str) -> Result<Vec<u8>, StageError> {
    register_font();
    let path = scratch.join(format!("{name}.png"));
    {
        let root = BitMapBackend::new(&path, (900, 520)).into_drawing_area();
        draw(root, c).map_err(|m| StageError::Failed(format!("cannot draw `{}`: {m}", c.title)))?;
    }
    std::fs::read(&path).map_err(|source| StageError::Io { path, source })
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
            OutputDoc { name: "data", help: "method, group, mean, ci95, n, improvement_pct, improvement_ci_pct" },
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
    fn run(&self, ctx: &Context, inputs: &Inputs, pv: &Value) -> Result<Outputs, StageError> {
        let p = parse(pv)?;
        let k = METRICS.iter().position(|m| *m == p.metric).expect("validated");
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
                let (gain, gain_ci) = paired(&cells, &p.baseline, m, g, k).map_or((f64::NAN, f64::NAN), |d| {
                    (100.0 * d.mean / d.baseline_mean, 100.0 * d.ci / d.baseline_mean)
                });
                if !v.is_empty() {
                    rows.push((m.clone(), g.clone(), mean, ci, v.len() as u32, gain, gain_ci));
                }
                mv.push((mean, ci));
                gv.push((gain, gain_ci));
            }
            metric_series.push((label(m), mi, mv));
            if m != &p.baseline {
                gain_series.push((label(m), mi, gv));
            }
        }
        let x_label = p.x_label.clone().unwrap_or_else(|| p.x_axis.clone());
        let prefix = if p.title.is_empty() { String::new() } else { format!("{}: ", p.title) };
        let metric_chart = Chart {
            title: format!("{prefix}{} per {} (mean ± 95% CI)", p.metric, p.x_axis),
            x_label: x_label.clone(),
            y_label: p.metric.clone(),
            groups: groups.clone(),
            series: metric_series,
            bars: true,
        };
        let gain_chart = Chart {
            title: format!("{prefix}improvement over {} (%)", label(&p.baseline)),
            x_label,
            y_label: format!("Δ {} vs {} (%)", p.metric, label(&p.baseline)),
            groups,
            series: gain_series,
            bars: false,
        };
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
                inputs.push("summary", format!("a[gap={gap},seed={seed}]"), summary("dqn_r", 0.2 + s));
                inputs.push("summary", format!("b[gap={gap},seed={seed}]"), summary("s2r", 0.2 + 0.01 * g + 2.0 * s));
            }
        }
        let p = serde_json::json!({"x_axis": "gap", "labels": {"s2r": "S2R-Rec"}, "title": "synthetic"});
        let out = ReportFigure.run(&ctx, &inputs, &p).unwrap();
        let Artifact::Table(d) = &out["data"] else { panic!() };
        let groups = crate::table::column::<StringArray>(d, "d", "group").unwrap();
        // Numeric groups in numeric order (not "0", "0.5", "10", "2").
        assert_eq!((0..4).map(|i| groups.value(i).to_string()).collect::<Vec<_>>(), ["0", "0.5", "2", "10"]);
        let gain = crate::table::f64_column(d, "d", "improvement_pct").unwrap();
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
