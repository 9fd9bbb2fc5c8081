//! The fuzz loop of `scripts/faults.sh`: generated and mutated pipeline files through the real
//! pipeline parser, and mutated MovieLens/anime files through the real loaders, all in-process.
//! Every input must give a result or a clean error: a panic, or an input that takes longer than
//! `--slow-ms`, is counted and the first few are printed (with the input saved under `--out`).
//!
//! ```text
//! cargo run --example fuzz -- --pipelines 1000000 --data 100000 --seed 1 --out target/fuzz
//! ```
//! The last line is `fuzz: N inputs (P pipelines, D data), K panics, S slow, E errors, O ok`;
//! the exit code is 1 when K or S is not 0.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use s2r_pipe::spec::parse_pipeline;
use s2r_stages::{Context, Inputs, Registry};
use serde_json::json;

struct Args {
    pipelines: usize,
    data: usize,
    seed: u64,
    out: PathBuf,
    slow: Duration,
}

fn args() -> Args {
    let mut a = Args {
        pipelines: 10_000,
        data: 1_000,
        seed: 1,
        out: PathBuf::from("target/fuzz"),
        slow: Duration::from_secs(2),
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let val = v.get(i + 1).cloned().unwrap_or_default();
        match v[i].as_str() {
            "--pipelines" => a.pipelines = val.parse().expect("--pipelines N"),
            "--data" => a.data = val.parse().expect("--data N"),
            "--seed" => a.seed = val.parse().expect("--seed N"),
            "--out" => a.out = PathBuf::from(val),
            "--slow-ms" => a.slow = Duration::from_millis(val.parse().expect("--slow-ms N")),
            other => panic!("unknown argument `{other}`"),
        }
        i += 2;
    }
    a
}

#[derive(Default)]
struct Tally {
    inputs: AtomicUsize,
    panics: AtomicUsize,
    slow: AtomicUsize,
    errors: AtomicUsize,
    ok: AtomicUsize,
}

impl Tally {
    fn record(&self, out: &Path, what: &str, input: &[u8], run: impl FnOnce() -> bool, slow: Duration) {
        let n = self.inputs.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        let r = std::panic::catch_unwind(AssertUnwindSafe(run));
        let took = start.elapsed();
        let keep = |kind: &str, count: &AtomicUsize| {
            if count.fetch_add(1, Ordering::Relaxed) < 5 {
                let p = out.join(format!("{kind}-{what}-{n}.bin"));
                let _ = std::fs::write(&p, input);
                eprintln!("{kind}: {what} input #{n} ({} bytes, {took:?}) saved as {}", input.len(), p.display());
            }
        };
        match r {
            Err(_) => keep("panic", &self.panics),
            Ok(ok) => {
                if took > slow {
                    keep("slow", &self.slow);
                }
                if ok { &self.ok } else { &self.errors }.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// YAML fragments the mutator splices in: syntax, pipeline keys, references, bombs in small.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    ":",
    ": ",
    ",",
    "-",
    "- ",
    "\n",
    "\n  ",
    "  ",
    "'",
    "\"",
    "#",
    "&a ",
    "*a",
    "!!str ",
    "!!binary ",
    "|",
    ">",
    "---\n",
    "...\n",
    "~",
    "null",
    "true",
    "1e309",
    "-0",
    "9223372036854775808",
    "0x10",
    ".nan",
    "${",
    "}",
    "${seeds}",
    "${missing}",
    "stages:",
    "kind:",
    "params:",
    "inputs:",
    "matrix:",
    "vars:",
    "resources:",
    "cache:",
    "util.sequence",
    "util.sum",
    "data.movielens",
    "a.table",
    "b.*",
    "x.y.z",
    "[1, 2, 3]",
    "{n: 1}",
    "\t",
    "\r\n",
    "\u{feff}",
    "\0",
    "é",
    "🦀",
    "<<: *a",
    "? ",
    "%YAML 1.2\n",
];

const KINDS: &[&str] =
    &["util.sequence", "util.sum", "util.fail", "data.movielens", "data.split", "report.table", "nope"];

/// A random pipeline built from the grammar: stages, params, matrices, vars, references.
fn generate(rng: &mut ChaCha8Rng) -> String {
    let mut s = String::new();
    if rng.random_bool(0.3) {
        s.push_str(&format!("name: p{}\n", rng.random_range(0..5)));
    }
    if rng.random_bool(0.4) {
        s.push_str("vars: {seeds: [1, 2], n: 3}\n");
    }
    s.push_str("stages:\n");
    let n = rng.random_range(0..6);
    for i in 0..n {
        let kind = KINDS[rng.random_range(0..KINDS.len())];
        s.push_str(&format!("  s{i}:\n    kind: {kind}\n"));
        if rng.random_bool(0.7) {
            let v = match rng.random_range(0..6) {
                0 => "\"${n}\"".to_string(),
                1 => rng.random_range(-5..1_000i64).to_string(),
                2 => "abc".into(),
                3 => "[1, 2]".into(),
                4 => i64::MAX.to_string(),
                _ => "\"${seed}\"".into(),
            };
            s.push_str(&format!("    params: {{n: {v}, start: {}}}\n", rng.random_range(-3..3)));
        }
        if rng.random_bool(0.3) {
            s.push_str("    matrix: {seed: \"${seeds}\"}\n");
        }
        if i > 0 && rng.random_bool(0.6) {
            let j = rng.random_range(0..n);
            let out = ["table", "*", "nope", "ratings"][rng.random_range(0..4)];
            s.push_str(&format!("    inputs: {{x: s{j}.{out}}}\n"));
        }
        if rng.random_bool(0.1) {
            s.push_str(&format!(
                "    resources: {{cpu: {}, gpu: {}}}\n",
                rng.random_range(0..4),
                rng.random_range(0..2)
            ));
        }
    }
    s
}

/// Byte-level and token-level mutations of `base`.
fn mutate(rng: &mut ChaCha8Rng, base: &[u8], tokens: &[&str]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..rng.random_range(1..6) {
        let at = if b.is_empty() { 0 } else { rng.random_range(0..=b.len()) };
        match rng.random_range(0..8) {
            0 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !b.is_empty() => {
                let end = (at + rng.random_range(0..40)).min(b.len());
                b.drain(at.min(end)..end);
            }
            2 => {
                let t = tokens[rng.random_range(0..tokens.len())];
                b.splice(at..at, t.bytes());
            }
            3 => b.truncate(at),
            4 if !b.is_empty() => {
                // Duplicate a slice (repeated keys, repeated lines).
                let start = rng.random_range(0..b.len());
                let end = (start + rng.random_range(1..80)).min(b.len());
                let piece = b[start..end].to_vec();
                b.splice(at..at, piece);
            }
            5 => b.insert(at, rng.random::<u8>()),
            6 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b[i] = [b'0', b'9', b'-', b'.', b',', b'\n', b'"', b' '][rng.random_range(0..8)];
            }
            _ => {
                let t = tokens[rng.random_range(0..tokens.len())];
                b.extend_from_slice(t.as_bytes());
            }
        }
    }
    b
}

fn movielens_base(rng: &mut ChaCha8Rng) -> (Vec<u8>, Vec<u8>) {
    let mut movies = b"movieId,title,genres\n".to_vec();
    for i in 1..=20 {
        let g = ["Crime", "Drama|Crime", "Adventure", "(no genres listed)", "Comedy|Adventure"][i % 5];
        let title = if i % 4 == 0 { format!("\"Movie, {i}\"") } else { format!("Movie {i}") };
        movies.extend_from_slice(format!("{i},{title},{g}\n").as_bytes());
    }
    let mut ratings = b"userId,movieId,rating,timestamp\n".to_vec();
    for u in 1..=15 {
        for _ in 0..rng.random_range(1..8) {
            let r = rng.random_range(1..=10) as f32 / 2.0;
            ratings.extend_from_slice(
                format!("{u},{},{r:.1},{}\n", rng.random_range(1..=22), rng.random_range(0..1_000_000)).as_bytes(),
            );
        }
    }
    (ratings, movies)
}

fn anime_base(rng: &mut ChaCha8Rng) -> (Vec<u8>, Vec<u8>) {
    let mut anime = b"anime_id,name,genre,type,episodes,rating,members\n".to_vec();
    for i in 1..=15 {
        let ty = ["TV", "Movie", "OVA", "", "Special"][i % 5];
        anime.extend_from_slice(format!("{i},\"Anime {i}\",\"Action, Drama\",{ty},12,7.5,{}\n", i * 10).as_bytes());
    }
    let mut rating = b"user_id,anime_id,rating\n".to_vec();
    for u in 1..=12 {
        for _ in 0..rng.random_range(1..8) {
            rating.extend_from_slice(
                format!("{u},{},{}\n", rng.random_range(1..=17), rng.random_range(-1..=10)).as_bytes(),
            );
        }
    }
    (rating, anime)
}

const DATA_TOKENS: &[&str] = &[
    ",",
    "\n",
    "\r\n",
    "\"",
    "::",
    "\0",
    "-1",
    "5.0",
    "0.5",
    "11",
    "4294967296",
    "1e3",
    "NaN",
    "inf",
    "\u{feff}",
    "é",
    "userId",
    "movieId",
    "rating",
    "timestamp",
    "user_id",
    "anime_id",
    "title",
    "genres",
    "|",
    "(no genres listed)",
];

fn main() {
    let a = args();
    std::fs::create_dir_all(&a.out).expect("--out dir");
    let registry = Registry::builtin();
    let tally = Tally::default();
    let started = Instant::now();
    // Seeds for mutation: the repository's pipelines.
    let mut bases: Vec<Vec<u8>> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("pipelines") {
        for e in rd.flatten() {
            if e.path().extension().is_some_and(|x| x == "yaml") {
                bases.push(std::fs::read(e.path()).expect("read pipeline"));
            }
        }
    }
    bases.sort();
    let file = Path::new("fuzz.yaml");
    let chunks = 64usize;
    let per = a.pipelines.div_ceil(chunks);
    use rayon::prelude::*;
    (0..chunks).into_par_iter().for_each(|c| {
        let mut rng = ChaCha8Rng::seed_from_u64(a.seed * 1_000_003 + c as u64);
        for k in 0..per.min(a.pipelines.saturating_sub(c * per)) {
            let input: Vec<u8> = match k % 4 {
                0 => generate(&mut rng).into_bytes(),
                1 => {
                    let g = generate(&mut rng);
                    mutate(&mut rng, g.as_bytes(), TOKENS)
                }
                _ if !bases.is_empty() => {
                    let b = rng.random_range(0..bases.len());
                    mutate(&mut rng, &bases[b], TOKENS)
                }
                _ => generate(&mut rng).into_bytes(),
            };
            let sets: Vec<String> = if rng.random_bool(0.1) {
                vec![["n=4", "s0.n=abc", "s1.start=1", "seeds=[1]", "x", "s9.n=1"][rng.random_range(0..6)].to_string()]
            } else {
                vec![]
            };
            tally.record(
                &a.out,
                "pipeline",
                &input,
                || {
                    let text = String::from_utf8_lossy(&input);
                    parse_pipeline(&text, file, &sets, &registry).is_ok()
                },
                a.slow,
            );
        }
    });
    let pipelines_done = tally.inputs.load(Ordering::Relaxed);
    let dchunks = 16usize;
    let dper = a.data.div_ceil(dchunks);
    (0..dchunks).into_par_iter().for_each(|c| {
        let mut rng = ChaCha8Rng::seed_from_u64(a.seed * 7_000_003 + c as u64);
        let dir = tempfile::tempdir().expect("temp dir");
        let ctx = Context::for_tests(dir.path());
        for k in 0..dper.min(a.data.saturating_sub(c * dper)) {
            let anime = k % 2 == 1;
            let (mut big, mut small) = if anime { anime_base(&mut rng) } else { movielens_base(&mut rng) };
            match rng.random_range(0..3) {
                0 => big = mutate(&mut rng, &big, DATA_TOKENS),
                1 => small = mutate(&mut rng, &small, DATA_TOKENS),
                _ => {
                    big = mutate(&mut rng, &big, DATA_TOKENS);
                    small = mutate(&mut rng, &small, DATA_TOKENS);
                }
            }
            let (kind, names) = if anime {
                ("data.anime", ["rating.csv", "anime.csv"])
            } else {
                ("data.movielens", ["ratings.csv", "movies.csv"])
            };
            let d = dir.path().join("d");
            let _ = std::fs::create_dir_all(&d);
            std::fs::write(d.join(names[0]), &big).expect("write");
            std::fs::write(d.join(names[1]), &small).expect("write");
            let mut joined = big.clone();
            joined.extend_from_slice(b"\n=====\n");
            joined.extend_from_slice(&small);
            let stage = &registry.get(kind).expect("kind").stage;
            let params = json!({"path": d});
            tally.record(&a.out, kind, &joined, || stage.run(&ctx, &Inputs::default(), &params).is_ok(), a.slow);
        }
    });
    let t = |x: &AtomicUsize| x.load(Ordering::Relaxed);
    let total = t(&tally.inputs);
    println!(
        "fuzz: {total} inputs ({pipelines_done} pipelines, {} data), {} panics, {} slow, {} errors, {} ok in {:.1} s",
        total - pipelines_done,
        t(&tally.panics),
        t(&tally.slow),
        t(&tally.errors),
        t(&tally.ok),
        started.elapsed().as_secs_f64()
    );
    std::process::exit(if t(&tally.panics) + t(&tally.slow) == 0 { 0 } else { 1 });
}
