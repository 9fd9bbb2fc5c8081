//! `s2r-pipe report` from a warm cache (`cargo bench --bench report`): build the page and write it,
//! 10 times, min / median / max. By default over a small data + SVD + static-evaluation pipeline
//! run in-process first (no libtorch needed); with `S2R_BENCH_PIPELINE=pipelines/quickstart.yaml
//! S2R_BENCH_CACHE=<a cache holding its run>` over that pipeline's cached results (build with
//! `--features torch` so the keys are the ones the torch build cached). Goal: ≤ 1 s for the
//! quickstart on 2 cores.

use std::path::{Path, PathBuf};
use std::time::Instant;

use s2r_pipe::event::NullSink;
use s2r_pipe::exec::{execute, ExecOptions};
use s2r_pipe::graph::load;
use s2r_pipe::key::Machine;
use s2r_pipe::page;
use s2r_pipe::store::Store;
use s2r_stages::Registry;

fn small(dir: &Path) -> PathBuf {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/ml-latest-small");
    let p = dir.join("small.yaml");
    std::fs::write(
        &p,
        format!(
            r#"
name: small
vars: {{seeds: [1, 2], dims: [4, 8]}}
stages:
  ratings: {{kind: data.movielens, params: {{path: "{}"}}}}
  split: {{kind: data.split, inputs: {{ratings: ratings.ratings, items: ratings.items}}, params: {{pair: Adventure_Crime, seed: 7}}}}
  stats: {{kind: data.stats, inputs: {{split: split.*, report: ratings.report}}, params: {{dataset: ml, pair: Adventure_Crime}}}}
  svd: {{kind: embed.svd, matrix: {{dim: "${{dims}}"}}, inputs: {{split: split.*}}, params: {{dim: "${{dim}}", seed: 7}}}}
  eval:
    kind: eval.static
    matrix: {{method: [mf, popular, random], dim: "${{dims}}", seed: "${{seeds}}"}}
    inputs: {{test: split.test, real_items: split.real_items, user_vecs: svd.sim_user_vecs, item_vecs: svd.real_item_vecs}}
    params: {{method: "${{method}}", seed: "${{seed}}"}}
  table: {{kind: report.table, inputs: {{summary: eval.summary}}, params: {{baseline: popular, columns: dim}}}}
  figure: {{kind: report.figure, inputs: {{summary: eval.summary}}, params: {{x_axis: dim, baseline: popular}}}}
"#,
            data.display()
        ),
    )
    .unwrap();
    p
}

fn main() {
    let registry = Registry::builtin();
    let machine = Machine::detect();
    let tmp = tempfile::tempdir().unwrap();
    let (pipeline, cache) = match (std::env::var("S2R_BENCH_PIPELINE"), std::env::var("S2R_BENCH_CACHE")) {
        (Ok(p), Ok(c)) => (PathBuf::from(p), PathBuf::from(c)),
        _ => {
            let p = small(tmp.path());
            let cache = tmp.path().join("cache");
            let store = Store::open(&cache).unwrap();
            let g = load(&p, &[], &registry).unwrap();
            let s = execute(&g, &registry, &store, &ExecOptions { machine, ..Default::default() }, &mut NullSink);
            assert!(!s.failed(), "the bench pipeline runs");
            (p, cache)
        }
    };
    let store = Store::open(&cache).unwrap();
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..10 {
        let t0 = Instant::now();
        let graph = load(&pipeline, &[], &registry).unwrap();
        let pg = page::build(&graph, &registry, &store, machine);
        page::write(&pg, &tmp.path().join("out")).unwrap();
        times.push(t0.elapsed().as_secs_f64());
        last = Some((graph.len(), pg.missing.len(), pg.svgs, pg.html.len()));
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (stages, missing, svgs, bytes) = last.unwrap();
    println!("| pipeline | stages | missing | charts | page bytes | min s | median s | max s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {stages} | {missing} | {svgs} | {bytes} | {:.3} | {:.3} | {:.3} |",
        pipeline.display(),
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
}
