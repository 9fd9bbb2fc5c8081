//! Engine benchmarks (`cargo bench --bench engine`), printed as a table:
//! - no-op rerun of a generated 100-stage pipeline, whole process (goal < 50 ms);
//! - `plan` of generated 1,000- and 10,000-stage pipelines, cold and fully cached (goal < 1 s at 10k);
//! - hashing a 1 GB file vs `b3sum` on the same file (goal ≥ 0.8× its throughput).
//!
//! `S2R_BENCH_QUICK=1` shrinks the sizes for a smoke run.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use s2r_pipe::event::NullSink;
use s2r_pipe::exec::{execute, ExecOptions};
use s2r_pipe::graph::Graph;
use s2r_pipe::key::Machine;
use s2r_pipe::plan::plan;
use s2r_pipe::spec::parse_pipeline;
use s2r_pipe::store::{hash_file_uncached, Store};
use s2r_stages::Registry;

/// A DAG of `n` stages: n/10 sequences, then sums that each read their predecessor, a
/// pseudo-random earlier stage, and the first stage (a fan-out of n, like one loader feeding a
/// whole experiment grid).
fn generated(n: usize) -> String {
    let roots = (n / 10).max(1);
    let mut y = String::from("name: gen\nstages:\n");
    for i in 0..n {
        if i < roots {
            y.push_str(&format!("  s{i}: {{kind: util.sequence, params: {{n: {}, start: {i}}}}}\n", 5 + i % 7));
        } else {
            let a = i - 1;
            let b = ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33) as usize % i;
            y.push_str(&format!("  s{i}: {{kind: util.sum, inputs: {{x: [s{a}.table, s{b}.table, s0.table]}}}}\n"));
        }
    }
    y
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::var_os("S2R_BENCH_QUICK").is_some();
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::builtin();
    println!("| benchmark | result | goal |");
    println!("|---|---:|---|");

    // 1. No-op rerun, whole process.
    let p100 = dir.path().join("p100.yaml");
    std::fs::write(&p100, generated(100)).unwrap();
    let cache = dir.path().join("cache100");
    let bin = env!("CARGO_BIN_EXE_s2r-pipe");
    let run = || {
        let t = Instant::now();
        let out = Command::new(bin).args(["-q", "--cache-dir"]).arg(&cache).arg("run").arg(&p100).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        t.elapsed().as_secs_f64()
    };
    let cold = run();
    let warm = median((0..15).map(|_| run()).collect());
    println!("| run, 100 stages, cold (process) | {:.1} ms | — |", cold * 1e3);
    println!("| no-op rerun, 100 stages (process, median of 15) | {:.1} ms | < 50 ms |", warm * 1e3);

    // 2. plan of 1k and 10k stages.
    let sizes: &[usize] = if quick { &[1000] } else { &[1000, 10_000] };
    for &n in sizes {
        let text = generated(n);
        let store_dir = dir.path().join(format!("cache{n}"));
        let store = Store::open(&store_dir).unwrap();
        let t = Instant::now();
        let graph = Graph::new(parse_pipeline(&text, Path::new("gen.yaml"), &[], &reg).unwrap()).seal().unwrap();
        let parse = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let p = plan(&graph, &reg, &store, Machine::with_gpus(0));
        let cold = t.elapsed().as_secs_f64() + parse;
        assert_eq!(p.stages.len(), n);
        let opts = ExecOptions { jobs: 2, machine: Machine::with_gpus(0), ..Default::default() };
        let t = Instant::now();
        let s = execute(&graph, &reg, &store, &opts, &mut NullSink);
        let exec = t.elapsed().as_secs_f64();
        assert!(!s.failed());
        let t = Instant::now();
        let graph = Graph::new(parse_pipeline(&text, Path::new("gen.yaml"), &[], &reg).unwrap()).seal().unwrap();
        let p = plan(&graph, &reg, &store, Machine::with_gpus(0));
        let warm = t.elapsed().as_secs_f64();
        assert!(p.stages.iter().all(|s| s.action == s2r_pipe::plan::Action::Cached));
        println!("| parse + plan, {n} stages, empty cache | {:.0} ms | — |", cold * 1e3);
        println!(
            "| parse + plan, {n} stages, all cached (every key computed) | {:.0} ms | < 1 s at 10k, linear |",
            warm * 1e3
        );
        println!("| run, {n} stages, cold (in process, 2 jobs) | {:.2} s | — |", exec);
    }

    // 3. Hashing a 1 GB file vs b3sum.
    let size: usize = if quick { 64 << 20 } else { 1 << 30 };
    let big = dir.path().join("big.bin");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..size >> 20 {
            for c in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                c.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&block).unwrap();
        }
    }
    let _ = hash_file_uncached(&big, &|| false).unwrap(); // warm the page cache
    let ours = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                let _ = hash_file_uncached(&big, &|| false).unwrap();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    let gb = size as f64 / (1u64 << 30) as f64;
    println!("| blake3 of a {:.2} GiB file (ours, median of 5) | {:.2} GiB/s | — |", gb, gb / ours);
    match Command::new("b3sum").arg("--version").output() {
        Ok(o) if o.status.success() => {
            let theirs = median(
                (0..5)
                    .map(|_| {
                        let t = Instant::now();
                        let out = Command::new("b3sum").arg("--no-names").arg(&big).output().unwrap();
                        assert!(out.status.success());
                        t.elapsed().as_secs_f64()
                    })
                    .collect(),
            );
            println!("| b3sum on the same file (median of 5) | {:.2} GiB/s | — |", gb / theirs);
            println!("| ours / b3sum throughput | {:.2}× | ≥ 0.8× |", theirs / ours);
        }
        _ => println!("| b3sum | not installed (`cargo install b3sum`) | — |"),
    }
}
