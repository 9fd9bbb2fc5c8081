//! One sim→real pair at the paper's scale (`cargo bench --features torch --bench paper_scale`):
//! a generated MovieLens directory with ML-25M's size (25M ratings of 162,541 users, ~62k movies
//! with genres) whose Adventure→Crime pair has the paper's Table 1 shape (25,148 users who rate
//! both, 652 Adventure and 508 Crime movies, ~114 sim and ~75 real ratings per user, so ~22.6k test
//! users), then `pipelines/rq1-movielens.yaml` on it for that pair, one seed and one α, every stage
//! in a worker process (`--executor process`) so the run report carries each stage's peak RSS.
//! Goals: the pair ≤ 15 min cold on 2 cores, peak RSS ≤ 8 GB.
//!
//! The pair's users come from one synthetic world (data.synth's model, categories Adventure and
//! Crime); the other 137,393 users rate ~61k Drama and Comedy movies of a second world, which the
//! split drops, as it drops ML-25M's other genres. `S2R_BENCH_ROWS` (default 25,000,000) scales
//! the second world; `S2R_BENCH_DIR` keeps the generated files, `S2R_BENCH_CACHE` the cache (a
//! warm rerun); `S2R_BENCH_ITERATIONS` (default 1,000, the pipelines') the RL budget.

#[path = "common/movielens_csv.rs"]
mod movielens_csv;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use s2r_stages::data::synth::generate;
use s2r_stages::kinds::data_synth::config as synth_config;

const PAIR_USERS: usize = 25_148;
const PAIR_RATINGS_PER_USER: f64 = 189.0;
const ML25M_USERS: usize = 162_541;

fn main() {
    let rows: usize = std::env::var("S2R_BENCH_ROWS").ok().and_then(|s| s.parse().ok()).unwrap_or(25_000_000);
    let iterations: usize = std::env::var("S2R_BENCH_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("S2R_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|| tmp.path().join("ml"));
    let cache = std::env::var_os("S2R_BENCH_CACHE").map(PathBuf::from).unwrap_or_else(|| tmp.path().join("cache"));
    println!("| step | result |");
    println!("|---|---:|");
    if !dir.join("ratings.csv").is_file() {
        let t = Instant::now();
        let pair = synth_config(&serde_json::json!({
            "users": PAIR_USERS,
            "sim_items": 652,
            "real_items": 508,
            "ratings_per_user": PAIR_RATINGS_PER_USER,
            "sim_share": 0.6,
            "categories": ["Adventure", "Crime"],
            "seed": 25,
        }))
        .unwrap();
        let rest_users = ML25M_USERS - PAIR_USERS;
        let rest_rows = rows.saturating_sub((PAIR_USERS as f64 * PAIR_RATINGS_PER_USER) as usize).max(rest_users);
        let rest = synth_config(&serde_json::json!({
            "users": rest_users,
            "sim_items": 31_000,
            "real_items": 30_263,
            "ratings_per_user": rest_rows as f64 / rest_users as f64,
            "categories": ["Drama", "Comedy"],
            "seed": 26,
        }))
        .unwrap();
        let (n, bytes) = movielens_csv::write(&dir, &[generate(&pair), generate(&rest)]);
        println!(
            "| generated ratings.csv | {n} rows, {:.0} MB, {:.0} s |",
            bytes as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
    }
    let bin = env!("CARGO_BIN_EXE_s2r-pipe");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let report = tmp.path().join("report.json");
    let sets = [
        format!("data={}", dir.display()),
        "pairs=[Adventure_Crime]".to_string(),
        "seeds=[1]".to_string(),
        "alphas=[0.8]".to_string(),
        format!("iterations={iterations}"),
    ];
    let mut cmd = Command::new(bin);
    cmd.current_dir(&root).args(["-q", "--cache-dir"]).arg(&cache).args(["run", "pipelines/rq1-movielens.yaml"]);
    for s in &sets {
        cmd.args(["--set", s]);
    }
    let t = Instant::now();
    let out = cmd.args(["--executor", "process", "--report"]).arg(&report).output().unwrap();
    let wall = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let mut peak = 0u64;
    println!(
        "| rq1-movielens, Adventure→Crime, 1 seed, α 0.8, {iterations} iterations: wall | {wall:.0} s (goal ≤ 900 s) |"
    );
    println!();
    println!("| stage | kind | status | seconds | peak RSS (MB) |");
    println!("|---|---|---|---:|---:|");
    for s in v["stages"].as_array().unwrap() {
        let rss = s["peak_rss_bytes"].as_u64();
        peak = peak.max(rss.unwrap_or(0));
        println!(
            "| {} | {} | {} | {:.1} | {} |",
            s["id"].as_str().unwrap(),
            s["kind"].as_str().unwrap(),
            s["status"].as_str().unwrap(),
            s["seconds"].as_f64().unwrap(),
            rss.map_or("—".to_string(), |b| format!("{:.0}", b as f64 / 1e6))
        );
    }
    println!();
    println!("largest stage peak RSS: {:.0} MB (goal ≤ 8,000 MB)", peak as f64 / 1e6);
    // The split's Table 1 row and the result, as the pipeline prints them.
    for target in ["stats[pair=Adventure_Crime].table1", "table.table"] {
        let mut cat = Command::new(bin);
        cat.current_dir(&root).args(["--cache-dir"]).arg(&cache).args(["cat", "pipelines/rq1-movielens.yaml", target]);
        for s in &sets {
            cat.args(["--set", s]);
        }
        let out = cat.args(["--format", "markdown"]).output().unwrap();
        println!("\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
}
