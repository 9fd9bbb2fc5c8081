//! `s2r-pipe report`: a pipeline's cached results as one self-contained HTML page (inline SVG and
//! CSS, no network, no JavaScript) and the same content as Markdown. Nothing is run: stages that
//! are not cached are listed as missing.
//!
//! The page holds the stage graph (one node per stage, matrix instances folded into it), the
//! summary (per instance: cached or missing with why, seconds of the run that made it), every
//! `report.table`, every `report.figure`, Table 1 of every `data.stats`, the validation choices of
//! every `select.best`, and the training curves of every `irs.train` and `adapt.darec` as small
//! multiples (a panel per curve, one thin line per instance). Charts are drawn by the stages'
//! plotting code (`s2r_stages::report::chart`, plotters with the embedded font).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use s2r_stages::report::chart::{panel_svg, Panel};
use s2r_stages::{Artifact, Registry};

use crate::graph::{Built, Graph};
use crate::key::Machine;
use crate::plan::{plan, Action};
use crate::show::{cells, render, Format};
use crate::store::Store;

/// A rendered report.
pub struct Page {
    /// `index.html`.
    pub html: String,
    /// `report.md`.
    pub markdown: String,
    /// Files the Markdown links (relative path → bytes): figures and curve panels as SVG.
    pub files: Vec<(String, Vec<u8>)>,
    /// Stage instances that are not cached.
    pub missing: Vec<String>,
    /// How many `<svg>` the page holds: figures, curve panels and the graph.
    pub svgs: usize,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn file_name(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// `t` with float columns as text to 4 decimals, as the tables print means and CIs.
fn pretty(t: &RecordBatch) -> RecordBatch {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (f, c) in t.schema().fields().iter().zip(t.columns()) {
        match (matches!(f.data_type(), DataType::Float32 | DataType::Float64), f64_values(c)) {
            (true, Some(v)) => {
                let text: Vec<Option<String>> = v
                    .iter()
                    .enumerate()
                    .map(|(i, x)| {
                        (!c.is_null(i)).then(|| if x.is_finite() { format!("{x:.4}") } else { x.to_string() })
                    })
                    .collect();
                fields.push(arrow::datatypes::Field::new(f.name(), DataType::Utf8, true));
                columns.push(std::sync::Arc::new(arrow::array::StringArray::from(text)));
            }
            _ => {
                fields.push(f.as_ref().clone());
                columns.push(c.clone());
            }
        }
    }
    RecordBatch::try_new(std::sync::Arc::new(arrow::datatypes::Schema::new(fields)), columns)
        .unwrap_or_else(|_| t.clone())
}

/// An HTML table of `t`.
fn html_table(t: &RecordBatch) -> String {
    let names: Vec<String> = t.schema().fields().iter().map(|f| f.name().clone()).collect();
    let numeric: Vec<bool> = t.schema().fields().iter().map(|f| f.data_type().is_numeric()).collect();
    let mut out = String::from("<table>\n<thead><tr>");
    for n in &names {
        let _ = write!(out, "<th>{}</th>", esc(n));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in cells(t).unwrap_or_default() {
        out.push_str("<tr>");
        for (c, v) in row.iter().enumerate() {
            let num = numeric[c] || v.contains(" ± ") || (!v.is_empty() && v.parse::<f64>().is_ok());
            let cls = if num { " class=\"n\"" } else { "" };
            let _ = write!(out, "<td{cls}>{}</td>", esc(v));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

fn f64_values(c: &ArrayRef) -> Option<Vec<f64>> {
    let c = arrow::compute::cast(c, &DataType::Float64).ok()?;
    let a = c.as_any().downcast_ref::<arrow::array::Float64Array>()?;
    Some((0..a.len()).map(|i| if a.is_null(i) { f64::NAN } else { a.value(i) }).collect())
}

/// The stage graph with matrix instances folded into their stage: nodes in columns by depth.
fn graph_svg(graph: &Graph<Built>, cached: &[bool]) -> (String, String) {
    let mut bases: Vec<(String, String)> = Vec::new(); // (base, kind)
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut counts: Vec<(usize, usize)> = Vec::new(); // (instances, cached)
    for (i, &is_cached) in cached.iter().enumerate() {
        let s = graph.stage(i);
        let b = s.id.base().to_string();
        let k = *index.entry(b.clone()).or_insert_with(|| {
            bases.push((b.clone(), s.kind.clone()));
            counts.push((0, 0));
            bases.len() - 1
        });
        counts[k].0 += 1;
        counts[k].1 += usize::from(is_cached);
    }
    let mut edges: BTreeSet<(usize, usize)> = BTreeSet::new();
    for i in 0..graph.len() {
        let to = index[graph.stage(i).id.base()];
        for d in graph.dependencies(i) {
            let from = index[graph.stage(d).id.base()];
            if from != to {
                edges.insert((from, to));
            }
        }
    }
    // Depth by instance topology (instances of one stage never feed each other in practice; a
    // stage is as deep as its deepest instance).
    let mut depth = vec![0usize; bases.len()];
    for &i in graph.topo() {
        let to = index[graph.stage(i).id.base()];
        for d in graph.dependencies(i) {
            let from = index[graph.stage(d).id.base()];
            if from != to {
                depth[to] = depth[to].max(depth[from] + 1);
            }
        }
    }
    let cols = depth.iter().max().map_or(1, |d| d + 1);
    let mut rows_in = vec![0usize; cols];
    let mut pos = vec![(0usize, 0usize); bases.len()];
    for (k, &d) in depth.iter().enumerate() {
        pos[k] = (d, rows_in[d]);
        rows_in[d] += 1;
    }
    let (w, h, gx, gy) = (170usize, 34usize, 60usize, 14usize);
    let width = cols * (w + gx) + 20;
    let height = rows_in.iter().max().copied().unwrap_or(1) * (h + gy) + 20;
    let at = |k: usize| (10 + pos[k].0 * (w + gx), 10 + pos[k].1 * (h + gy));
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"graph\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">\n"
    );
    for &(a, b) in &edges {
        let ((ax, ay), (bx, by)) = (at(a), at(b));
        let _ = writeln!(
            svg,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\" stroke-width=\"1\"/>",
            ax + w,
            ay + h / 2,
            bx,
            by + h / 2
        );
    }
    for (k, (b, kind)) in bases.iter().enumerate() {
        let (x, y) = at(k);
        let (n, c) = counts[k];
        let fill = if c == n {
            "#d8f0d8"
        } else if c == 0 {
            "#eeeeee"
        } else {
            "#fde8c8"
        };
        let label = if n > 1 { format!("{b} ×{n}") } else { b.clone() };
        let _ = writeln!(
            svg,
            "<g><title>{} ({}): {c} of {n} cached</title><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"5\" fill=\"{fill}\" stroke=\"#666\"/><text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"12\">{}</text><text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"9\" fill=\"#555\">{}</text></g>",
            esc(b),
            esc(kind),
            x + 6,
            y + 14,
            esc(&label),
            x + 6,
            y + 27,
            esc(kind)
        );
    }
    svg.push_str("</svg>\n");
    let mut mermaid = String::from("```mermaid\ngraph LR\n");
    for (k, (b, kind)) in bases.iter().enumerate() {
        let n = counts[k].0;
        let label = if n > 1 { format!("{b} ×{n}") } else { b.clone() };
        let _ = writeln!(mermaid, "  n{k}[\"{label}<br/>{kind}\"]");
    }
    for &(a, b) in &edges {
        let _ = writeln!(mermaid, "  n{a} --> n{b}");
    }
    mermaid.push_str("```\n");
    (svg, mermaid)
}

/// Renders the report of `graph`'s cached results in `store`.
pub fn build(graph: &Graph<Built>, registry: &Registry, store: &Store, machine: Machine) -> Page {
    let pl = plan(graph, registry, store, machine);
    let name = &graph.pipeline().name;
    let cached: Vec<bool> = pl.stages.iter().map(|s| s.action == Action::Cached).collect();
    let table_of = |i: usize, out: &str| -> Option<RecordBatch> {
        let o = pl.stages[i].outputs.get(out)?;
        match store.get(o) {
            Ok(Artifact::Table(t)) => Some(t),
            _ => None,
        }
    };
    let file_of = |i: usize, out: &str| -> Option<Vec<u8>> {
        let o = pl.stages[i].outputs.get(out)?;
        match store.get(o) {
            Ok(Artifact::File { bytes, .. }) => Some(bytes),
            _ => None,
        }
    };
    let mut html = String::new();
    let mut md = String::new();
    let mut files = Vec::new();
    let mut svgs = 0usize;
    let n_cached = cached.iter().filter(|c| **c).count();
    let missing: Vec<String> = pl.stages.iter().filter(|s| s.action != Action::Cached).map(|s| s.id.clone()).collect();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{0} — s2r-pipe report</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{0}</h1>\n<p class=\"meta\">{1} — {n_cached} of {2} stage instances cached{3}.</p>\n",
        esc(name),
        esc(&graph.pipeline().file.display().to_string()),
        pl.stages.len(),
        if missing.is_empty() { String::new() } else { format!(", {} missing", missing.len()) }
    );
    let _ = write!(
        md,
        "# {name}\n\n`{}` — {n_cached} of {} stage instances cached{}.\n\n",
        graph.pipeline().file.display(),
        pl.stages.len(),
        if missing.is_empty() { String::new() } else { format!(", {} missing", missing.len()) }
    );

    // The graph.
    let (gsvg, mermaid) = graph_svg(graph, &cached);
    html.push_str("<h2 id=\"graph\">Stages</h2>\n<div class=\"scroll\">\n");
    html.push_str(&gsvg);
    html.push_str("</div>\n");
    svgs += 1;
    md.push_str("## Stages\n\n");
    md.push_str(&mermaid);
    md.push('\n');

    let by_kind = |kind: &str| -> Vec<usize> { (0..graph.len()).filter(|&i| graph.stage(i).kind == kind).collect() };
    let section = |title: &str, kind: &str, output: &str, html: &mut String, md: &mut String| {
        let found: Vec<(usize, RecordBatch)> =
            by_kind(kind).into_iter().filter_map(|i| table_of(i, output).map(|t| (i, t))).collect();
        if found.is_empty() {
            return;
        }
        let _ = writeln!(html, "<h2>{}</h2>", esc(title));
        let _ = writeln!(md, "## {title}\n");
        for (i, t) in found {
            let t = pretty(&t);
            let id = graph.stage(i).id.to_string();
            let _ = writeln!(html, "<h3>{}</h3>\n{}", esc(&id), html_table(&t));
            let _ = writeln!(md, "### {id}\n\n{}", render(&t, Format::Markdown, None).unwrap_or_default());
        }
    };
    section("Tables", "report.table", "table", &mut html, &mut md);

    // Figures (report.figure's SVGs, inline).
    let figures: Vec<usize> = by_kind("report.figure");
    let mut any_figure = false;
    for i in figures {
        for out in ["metric_svg", "gain_svg"] {
            let Some(bytes) = file_of(i, out) else { continue };
            if !any_figure {
                html.push_str("<h2>Figures</h2>\n");
                md.push_str("## Figures\n\n");
                any_figure = true;
            }
            let id = graph.stage(i).id.to_string();
            let text = String::from_utf8_lossy(&bytes);
            let body = text.find("<svg").map(|k| &text[k..]).unwrap_or(&text);
            let _ = writeln!(html, "<h3>{} · {}</h3>\n<div class=\"figure\">{body}</div>", esc(&id), out);
            svgs += 1;
            let f = format!("figures/{}-{out}.svg", file_name(&id));
            let _ = writeln!(md, "### {id} · {out}\n\n![{id} {out}]({f})\n");
            files.push((f, bytes));
        }
    }
    section("Table 1", "data.stats", "table1", &mut html, &mut md);
    section("Validation choices", "select.best", "choice", &mut html, &mut md);

    // Training curves as small multiples: per stage, per curve table, a panel per column.
    let mut curve_html = String::new();
    let mut curve_md = String::new();
    for kind in ["irs.train", "adapt.darec"] {
        let mut bases: Vec<String> = Vec::new();
        for i in by_kind(kind) {
            let b = graph.stage(i).id.base().to_string();
            if !bases.contains(&b) {
                bases.push(b);
            }
        }
        for base in bases {
            let instances: Vec<usize> =
                by_kind(kind).into_iter().filter(|&i| graph.stage(i).id.base() == base).collect();
            // Colour by the matrix values other than the seed: seeds of one setting share it.
            let mut settings: Vec<String> = Vec::new();
            for out in ["curves", "val_curve"] {
                let tables: Vec<(usize, RecordBatch)> = instances
                    .iter()
                    .filter_map(|&i| table_of(i, out).filter(|t| t.num_rows() > 0).map(|t| (i, t)))
                    .collect();
                let Some((_, first)) = tables.first() else { continue };
                let schema = first.schema();
                let x_name = schema.field(0).name().clone();
                let mut panels = String::new();
                let mut panel_md = String::new();
                for field in schema.fields().iter().skip(1) {
                    if field.name() == "users" || !field.data_type().is_numeric() {
                        continue;
                    }
                    let mut lines = Vec::new();
                    for (i, t) in &tables {
                        let Some(col) = t.schema().index_of(field.name()).ok() else { continue };
                        let (Some(xs), Some(ys)) = (f64_values(t.column(0)), f64_values(t.column(col))) else {
                            continue;
                        };
                        let m = &graph.stage(*i).matrix;
                        let setting: Vec<String> = m
                            .iter()
                            .filter(|(k, _)| k.as_str() != "seed")
                            .map(|(k, v)| format!("{k}={}", v.as_str().map(str::to_string).unwrap_or(v.to_string())))
                            .collect();
                        let setting = setting.join(",");
                        let ci = settings.iter().position(|s| *s == setting).unwrap_or_else(|| {
                            settings.push(setting.clone());
                            settings.len() - 1
                        });
                        let label = graph.stage(*i).id.to_string();
                        let label = label.strip_prefix(&base).unwrap_or(&label).to_string();
                        lines.push((label, ci, xs.into_iter().zip(ys).collect::<Vec<_>>()));
                    }
                    // A column measured nowhere in these runs (e.g. the exact ratios outside a world).
                    if lines.iter().all(|l| l.2.iter().all(|q| !q.1.is_finite())) {
                        continue;
                    }
                    let title = format!("{}{}", field.name(), if out == "val_curve" { " (validation)" } else { "" });
                    let panel = Panel { title, x_label: x_name.clone(), lines };
                    let Ok(svg) = panel_svg(&panel, (330, 210)) else { continue };
                    let body = svg.find("<svg").map(|k| &svg[k..]).unwrap_or(&svg);
                    let _ = write!(panels, "<div class=\"panel\">{body}</div>");
                    svgs += 1;
                    let f = format!("curves/{}-{out}-{}.svg", file_name(&base), file_name(field.name()));
                    let _ = write!(panel_md, "![{}]({f}) ", field.name());
                    files.push((f, svg.into_bytes()));
                }
                let _ = writeln!(
                    curve_html,
                    "<h3>{} · {out} <span class=\"kind\">({kind}, {} runs)</span></h3>\n<div class=\"panels\">{panels}</div>",
                    esc(&base),
                    tables.len()
                );
                let _ = writeln!(curve_md, "### {base} · {out} ({kind}, {} runs)\n\n{panel_md}\n", tables.len());
            }
        }
    }
    if !curve_html.is_empty() {
        html.push_str("<h2>Training curves</h2>\n<p class=\"meta\">One panel per curve, one thin line per run; runs of one setting (seeds) share a colour.</p>\n");
        html.push_str(&curve_html);
        md.push_str("## Training curves\n\n");
        md.push_str(&curve_md);
    }

    // The summary, last.
    html.push_str("<h2>Summary</h2>\n<table>\n<thead><tr><th>stage</th><th>kind</th><th>status</th><th>seconds</th><th>note</th></tr></thead>\n<tbody>\n");
    md.push_str("## Summary\n\n| stage | kind | status | seconds | note |\n|---|---|---|---:|---|\n");
    for item in &pl.stages {
        let (status, seconds) = match (&item.action, &item.key) {
            (Action::Cached, Some(k)) => {
                ("cached", store.entry(k).ok().flatten().map(|m| format!("{:.2}", m.seconds)).unwrap_or_default())
            }
            _ => ("missing", String::new()),
        };
        let note = item.reasons.join("; ");
        let _ = writeln!(
            html,
            "<tr class=\"{status}\"><td>{}</td><td>{}</td><td>{status}</td><td class=\"n\">{seconds}</td><td>{}</td></tr>",
            esc(&item.id),
            esc(&item.kind),
            esc(&note)
        );
        let _ = writeln!(md, "| {} | {} | {status} | {seconds} | {} |", item.id, item.kind, note.replace('|', "\\|"));
    }
    html.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    Page { html, markdown: md, files, missing, svgs }
}

/// Writes `page` into `dir`: `index.html`, `report.md` and the SVG files the Markdown links.
pub fn write(page: &Page, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("index.html"), &page.html)?;
    std::fs::write(dir.join("report.md"), &page.markdown)?;
    for (rel, bytes) in &page.files {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, bytes)?;
    }
    Ok(())
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}\
h1{margin-bottom:0}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}h3{font-size:1em;margin:1.2em 0 .4em}\
.meta{color:#666}.kind{color:#888;font-weight:normal}\
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left}\
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}tr.missing td{color:#a40}\
.scroll{overflow-x:auto}.panels{display:flex;flex-wrap:wrap;gap:6px}.panel svg,.figure svg{max-width:100%;height:auto}";
