//! `s2r-pipe report` (the cached results as a page), completions and run targets.

mod util;

use util::{statuses, with_status, Test, DIAMOND};

#[test]
fn targets_run_only_what_they_need_and_downstream_adds_dependents() {
    let t = Test::new();
    t.pipeline(DIAMOND);
    let (d, r) = t.run_report(&["c"]);
    d.success();
    assert_eq!(with_status(&r, "ran"), ["a", "b", "c"], "c and what it needs, nothing else");
    assert!(!statuses(&r).contains_key("d") && !statuses(&r).contains_key("e[k=1]"));
    let (_, r) = t.run_report(&["a", "--downstream"]);
    assert_eq!(with_status(&r, "ran"), ["d"]);
    assert_eq!(with_status(&r, "cached"), ["a", "b", "c"]);
    // A glob over matrix ids, and a plain name matching every instance.
    let (_, r) = t.run_report(&["e[k=*]"]);
    assert_eq!(with_status(&r, "ran"), ["e[k=1]", "e[k=2]"]);
    let p = t.run(&["plan", "p.yaml", "e"]).success();
    assert!(p.stdout.contains("0 of 2 stages would run"), "{}", p.stdout);
    let g = t.run(&["graph", "p.yaml", "d", "--format", "mermaid"]).success();
    assert!(g.stdout.contains("[\"d<br/>") && !g.stdout.contains("e[k=1]"), "{}", g.stdout);
    // An unknown target is a usage error naming the nearest ids.
    let bad = t.run(&["run", "p.yaml", "dd"]).code(2);
    assert!(bad.stderr.contains("no stage matches the target `dd`") && bad.stderr.contains("`d`"), "{}", bad.stderr);
}

#[test]
fn completions_are_printed_for_each_shell() {
    let t = Test::new();
    for shell in ["bash", "zsh", "fish"] {
        let c = t.run(&["completions", shell]).success();
        assert!(
            c.stdout.contains("s2r-pipe") && c.stdout.contains("report"),
            "{shell}: {}",
            &c.stdout[..200.min(c.stdout.len())]
        );
    }
    t.run(&["completions", "tcsh"]).code(2);
}

/// Data, a split, Table 1, SVD at two dimensions, static evaluations over them, Table 2's layout
/// and a figure over the dimension, plus a stage the run leaves out.
fn small_pipeline(t: &Test) {
    let data = util::repo_root().join("data/ml-latest-small");
    t.pipeline(&format!(
        r#"
name: small
vars: {{seeds: [1, 2], dims: [4, 8]}}
stages:
  ratings: {{kind: data.movielens, params: {{path: "{}"}}}}
  split:
    kind: data.split
    inputs: {{ratings: ratings.ratings, items: ratings.items}}
    params: {{pair: Adventure_Crime, seed: 7}}
  stats: {{kind: data.stats, inputs: {{split: split.*, report: ratings.report}}, params: {{dataset: ml, pair: Adventure_Crime}}}}
  svd: {{kind: embed.svd, matrix: {{dim: "${{dims}}"}}, inputs: {{split: split.*}}, params: {{dim: "${{dim}}", seed: 7}}}}
  eval:
    kind: eval.static
    matrix: {{method: [mf, popular], dim: "${{dims}}", seed: "${{seeds}}"}}
    inputs: {{test: split.test, real_items: split.real_items, user_vecs: svd.sim_user_vecs, item_vecs: svd.real_item_vecs}}
    params: {{method: "${{method}}", seed: "${{seed}}"}}
  table: {{kind: report.table, inputs: {{summary: eval.summary}}, params: {{baseline: popular, columns: dim}}}}
  figure:
    kind: report.figure
    inputs: {{summary: eval.summary}}
    params: {{x_axis: dim, baseline: popular, title: small}}
  extra: {{kind: util.sequence, params: {{n: 3}}}}
"#,
        data.display()
    ));
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// The rows of the `n`-th `<table>` after the heading `h3`.
fn html_rows_after(html: &str, heading: &str) -> usize {
    let at = html.find(heading).unwrap_or_else(|| panic!("no `{heading}` in the page"));
    let rest = &html[at..];
    let table = &rest[rest.find("<tbody>").unwrap()..rest.find("</tbody>").unwrap()];
    count(table, "<tr")
}

#[test]
fn the_report_holds_every_table_figure_and_stage() {
    let t = Test::new();
    small_pipeline(&t);
    t.run_report(&["-q", "table", "figure", "stats"]).0.success();
    let r = t.run(&["report", "p.yaml", "--out", "rep"]).success();
    assert!(r.stderr.contains("1 of 16 stages are not cached") && r.stderr.contains("extra"), "{}", r.stderr);
    let html = std::fs::read_to_string(t.path("rep/index.html")).unwrap();
    let md = std::fs::read_to_string(t.path("rep/report.md")).unwrap();
    // Self-contained: no scripts, no fetched resources.
    assert!(!html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http"));
    // Table 2's layout: one row per method; Table 1: one row with the pair in its columns.
    assert_eq!(html_rows_after(&html, "<h3>table</h3>"), 2);
    assert_eq!(html_rows_after(&html, "<h3>stats</h3>"), 1);
    assert!(html.contains("<td>Adventure</td><td>Crime</td>"), "Table 1 has the pair's columns");
    // The summary: one row per stage instance, the missing one marked.
    assert_eq!(html_rows_after(&html, "<h2>Summary</h2>"), 16);
    assert!(html.contains("<tr class=\"missing\"><td>extra</td>"));
    // One <svg> for the graph and one per figure (metric and gain).
    assert_eq!(count(&html, "<svg"), 3, "graph + 2 figures");
    assert_eq!(count(&html, "<div class=\"figure\">"), 2);
    // The Markdown has the same tables, as `cat` prints them.
    for out in ["table.table", "stats.table1"] {
        let cat = t.run(&["cat", "p.yaml", out]).success().stdout;
        assert!(md.contains(cat.trim()), "{out} in report.md:\n{cat}");
    }
    assert!(md.contains("```mermaid") && md.contains("svd ×2"), "{md}");
    for f in ["figures/figure-metric_svg.svg", "figures/figure-gain_svg.svg"] {
        assert!(md.contains(f) && std::fs::read(t.path("rep").join(f)).unwrap().starts_with(b"<svg"), "{f}");
    }
}

/// Headless Chromium on the page: the DOM holds the tables, and a screenshot is not blank.
#[test]
fn the_report_renders_in_headless_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
    else {
        eprintln!("SKIPPED: no Chromium on this machine (`apt-get install chromium`; scripts/test.sh installs it)");
        return;
    };
    let t = Test::new();
    small_pipeline(&t);
    t.run_report(&["-q", "table", "figure", "stats"]).0.success();
    t.run(&["report", "p.yaml", "--out", "rep"]).success();
    let page = format!("file://{}", t.path("rep/index.html").display());
    let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"];
    let dom = std::process::Command::new(chromium).args(flags).args(["--dump-dom", &page]).output().unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("<table>") && dom.contains("Adventure") && dom.contains("<svg"),
        "{}",
        &dom[..dom.len().min(500)]
    );
    let shot = t.path("shot.png");
    let out = std::process::Command::new(chromium)
        .args(flags)
        .args([&format!("--screenshot={}", shot.display()), "--window-size=1200,1600", &page])
        .output()
        .unwrap();
    assert!(shot.exists(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    assert!(colours.len() > 10, "the screenshot is blank ({} colours)", colours.len());
}
