//! Regression tests for what a break-it campaign found (issue 16): maintenance beside live runs,
//! corrupt and foreign files in the store, hostile paths. `scripts/faults.sh` runs the campaign.

mod util;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use util::{statuses, with_status, Test};

const TWO: &str = r#"
stages:
  a: {kind: util.sequence, params: {n: 10, start: 1}}
  b: {kind: util.sequence, params: {n: 10, start: 1000}}
  s: {kind: util.sum, inputs: {x: a.table}}
"#;

fn object_of(t: &Test, report: &serde_json::Value, id: &str) -> PathBuf {
    let stage = report["stages"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap();
    let hash = stage["outputs"].as_object().unwrap().values().next().unwrap().as_str().unwrap().to_string();
    t.cache().join("objects").join(&hash[..2]).join(format!("{hash}.parquet"))
}

fn entry_of(t: &Test, report: &serde_json::Value, id: &str) -> PathBuf {
    let stage = report["stages"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap();
    t.cache().join("entries").join(format!("{}.json", stage["key"].as_str().unwrap()))
}

fn count(dir: PathBuf) -> usize {
    std::fs::read_dir(dir).map(|rd| rd.count()).unwrap_or(0)
}

#[test]
fn gc_in_a_loop_beside_runs_loses_nothing() {
    let t = Test::new();
    t.pipeline(
        "stages:\n  a: {kind: util.sequence, params: {n: 20, sleep_ms: 30}}\n  b: {kind: util.sum, inputs: {x: a.table}, params: {sleep_ms: 30}}\n  c: {kind: util.sum, inputs: {x: b.table}}\n",
    );
    let stop = Arc::new(AtomicBool::new(false));
    std::fs::create_dir_all(t.cache()).unwrap();
    let gcs = {
        let (stop, cache) = (stop.clone(), t.cache());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let out = std::process::Command::new(util::bin())
                    .env("S2R_CACHE_DIR", &cache)
                    .args(["cache", "gc"])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "gc failed: {}", String::from_utf8_lossy(&out.stderr));
                n += 1;
            }
            n
        })
    };
    for start in 0..8 {
        let (d, r) = t.run_report(&["-q", "--set", &format!("a.start={start}")]);
        d.success();
        assert_eq!(with_status(&r, "ran").len(), 3, "{r}");
        let cat = t.run(&["cat", "p.yaml", "c.table", "--set", &format!("a.start={start}"), "--format", "csv"]);
        let cat = cat.success();
        let expected: i64 = (start..start + 20).sum();
        assert!(cat.stdout.contains(&expected.to_string()), "{}", cat.stdout);
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = gcs.join().unwrap();
    assert!(rounds >= 2, "gc ran beside the runs ({rounds} rounds)");
    // With no run live, gc removes everything unreferenced, every temp file and every lock file.
    t.run(&["cache", "gc"]).success();
    assert_eq!(count(t.cache().join("tmp")), 0);
    assert_eq!(count(t.cache().join("locks")), 0);
    let (d, r) = t.run_report(&["-q", "--set", "a.start=7"]);
    d.success();
    assert_eq!(with_status(&r, "cached").len(), 3);
}

#[test]
fn gc_spares_a_live_stages_scratch_dir_and_removes_leftovers() {
    let t = Test::new();
    t.pipeline("stages:\n  slow: {kind: util.sequence, params: {n: 5, sleep_ms: 2500}}\n");
    // Leftovers of killed runs: a scratch dir and a temp file.
    std::fs::create_dir_all(t.cache().join("tmp/scratch-dead/sub")).unwrap();
    std::fs::write(t.cache().join("tmp/scratch-dead/sub/f"), "x").unwrap();
    std::fs::write(t.cache().join("tmp/.tmpDEAD"), "x").unwrap();
    t.run(&["cache", "gc"]).success();
    assert_eq!(count(t.cache().join("tmp")), 0, "leftovers removed when no run is live");
    let child = t.cmd(&["run", "p.yaml", "-q"]).spawn().unwrap();
    let start = std::time::Instant::now();
    while count(t.cache().join("tmp")) == 0 && start.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let g = t.run(&["cache", "gc", "--grace", "0s"]).success();
    assert!(g.stdout.contains("a run is live"), "{}", g.stdout);
    assert_eq!(count(t.cache().join("tmp")), 1, "the live scratch dir stays");
    assert!(child.wait_with_output().unwrap().status.success());
}

#[test]
fn a_truncated_object_is_replaced_by_the_rerun() {
    let t = Test::new();
    t.pipeline(TWO);
    let (_, r) = t.run_report(&[]);
    let obj = object_of(&t, &r, "a");
    let good = std::fs::read(&obj).unwrap();
    std::fs::write(&obj, &good[..good.len() / 2]).unwrap();
    let (d, r) = t.run_report(&[]);
    d.success();
    assert_eq!(with_status(&r, "ran"), ["a"], "a reran; s's key did not change");
    assert_eq!(std::fs::read(&obj).unwrap(), good, "the object is whole again");
    t.run(&["cat", "p.yaml", "a.table"]).success();
    // A same-size corruption is caught by a put of the same content too.
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 1;
    std::fs::write(&obj, &bad).unwrap();
    let c = t.run(&["cat", "p.yaml", "a.table"]).code(1);
    assert!(c.stderr.contains("corrupt object") && c.stderr.contains("rebuilds it"), "{}", c.stderr);
    let (_, r) = t.run_report(&[]);
    assert_eq!(with_status(&r, "ran"), ["a"]);
    assert_eq!(std::fs::read(&obj).unwrap(), good);
}

#[test]
fn an_edited_manifest_is_detected_by_run_and_verify() {
    let t = Test::new();
    t.pipeline(TWO);
    let (_, r) = t.run_report(&[]);
    let (obj_a, obj_b) = (object_of(&t, &r, "a"), object_of(&t, &r, "b"));
    assert_eq!(std::fs::metadata(&obj_a).unwrap().len(), std::fs::metadata(&obj_b).unwrap().len(), "same size");
    let hash = |p: &PathBuf| p.file_stem().unwrap().to_string_lossy().into_owned();
    // Point a's manifest at b's object (same size): the checksum no longer matches.
    let entry = entry_of(&t, &r, "a");
    let text = std::fs::read_to_string(&entry).unwrap().replace(&hash(&obj_a), &hash(&obj_b));
    std::fs::write(&entry, text).unwrap();
    let (d, r) = t.run_report(&[]);
    d.success();
    assert_eq!(statuses(&r)["a"], "ran");
    let cat = t.run(&["cat", "p.yaml", "a.table", "--format", "csv"]).success();
    assert!(cat.stdout.contains("\n1\n") && !cat.stdout.contains("1000"), "{}", cat.stdout);
    // `cache verify` finds an edited manifest, and one whose object disagrees with it.
    let entry = entry_of(&t, &r, "b");
    let text = std::fs::read_to_string(&entry).unwrap().replacen("\"seconds\": ", "\"seconds\": 1", 1);
    std::fs::write(&entry, text).unwrap();
    let v = t.run(&["cache", "verify"]).code(1);
    assert!(v.stderr.contains("bad manifest") && v.stderr.contains("checksum"), "{}", v.stderr);
    assert!(v.stdout.contains("1 corrupt removed"), "{}", v.stdout);
    t.run(&["cache", "verify"]).success();
}

#[test]
fn foreign_files_in_the_store_are_reported_and_left_alone() {
    let t = Test::new();
    t.pipeline(TWO);
    let (_, r) = t.run_report(&[]);
    let objects = t.cache().join("objects");
    std::fs::write(objects.join("notes.txt"), "mine").unwrap();
    std::fs::create_dir_all(objects.join("no")).unwrap();
    std::fs::write(objects.join("no/notes.txt"), "mine").unwrap();
    std::fs::write(t.cache().join("entries/README"), "mine").unwrap();
    // A directory where an object should be.
    let obj = object_of(&t, &r, "s");
    std::fs::remove_file(&obj).unwrap();
    std::fs::create_dir_all(obj.join("x")).unwrap();
    let v = t.run(&["cache", "verify"]).code(1);
    assert!(v.stderr.contains("removed the directory"), "{}", v.stderr);
    assert!(v.stderr.contains("notes.txt` is not the store's"), "{}", v.stderr);
    assert!(v.stdout.contains("3 foreign files left alone"), "{}", v.stdout);
    let v = t.run(&["cache", "verify"]).success();
    assert!(v.stdout.contains("0 corrupt removed, 0 entries dropped"), "{}", v.stdout);
    t.run(&["cache", "gc"]).success();
    assert!(objects.join("notes.txt").exists() && objects.join("no/notes.txt").exists());
    let (d, r) = t.run_report(&[]);
    d.success();
    assert_eq!(with_status(&r, "ran"), ["s"]);
}

#[test]
fn a_failed_last_run_record_does_not_fail_a_stage() {
    let t = Test::new();
    t.pipeline("name: p\nstages:\n  a: {kind: util.sequence, params: {n: 3}}\n");
    std::fs::create_dir_all(t.cache().join("index")).unwrap();
    // The pipeline's index directory cannot be created (a file is in the way), as when ENOSPC
    // hits after the entry was written.
    std::fs::write(t.cache().join("index/p"), "in the way").unwrap();
    let (d, r) = t.run_report(&[]);
    d.success();
    assert_eq!(with_status(&r, "ran"), ["a"]);
    std::fs::remove_file(t.cache().join("index/p")).unwrap();
    let (_, r) = t.run_report(&[]);
    assert_eq!(with_status(&r, "cached"), ["a"]);
}

fn movielens_dir(t: &Test) -> PathBuf {
    let d = t.path("ml");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("movies.csv"), "movieId,title,genres\n1,A,Crime\n2,B,Drama\n").unwrap();
    std::fs::write(d.join("ratings.csv"), "userId,movieId,rating,timestamp\n1,1,4.0,10\n1,2,3.0,11\n").unwrap();
    d
}

#[test]
fn hostile_dataset_paths_fail_fast_with_clear_errors() {
    let t = Test::new();
    let d = movielens_dir(&t);
    // Stray symlinks and a loop beside the files the loader reads do not matter.
    std::os::unix::fs::symlink("loop", d.join("loop")).unwrap();
    std::os::unix::fs::symlink("/nonexistent", d.join("dangling")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.join("zeros")).unwrap();
    t.pipeline("stages:\n  r: {kind: data.movielens, params: {path: ml}}\n");
    t.run_report(&["-q"]).0.success();
    // The ratings file itself a symlink to /dev/zero: refused before anything is read.
    std::fs::remove_file(d.join("ratings.csv")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.join("ratings.csv")).unwrap();
    let started = std::time::Instant::now();
    let (d1, _) = t.run_report(&["-q"]);
    let d1 = d1.code(1);
    assert!(
        d1.stderr.contains("is not a regular file") || d1.stdout.contains("is not a regular file"),
        "{}{}",
        d1.stdout,
        d1.stderr
    );
    assert!(started.elapsed().as_secs() < 30);
    // `/etc` is not hashed: only the files a loader reads are.
    t.pipeline("stages:\n  r: {kind: data.movielens, params: {path: /etc}}\n");
    let (d2, r) = t.run_report(&["-q"]);
    d2.code(1);
    assert!(r.to_string().contains("lacks `ratings.csv`"), "{r}");
    // A file where the directory should be.
    t.pipeline("stages:\n  r: {kind: data.movielens, params: {path: p.yaml}}\n");
    let (_, r) = t.run_report(&["-q"]);
    assert!(r.to_string().contains("is not a directory"), "{r}");
}

#[test]
fn a_cache_dir_that_cannot_be_used_is_a_usage_error_said_once() {
    let t = Test::new();
    t.pipeline(TWO);
    let d = t.run(&["--cache-dir", "p.yaml", "run", "p.yaml"]).code(2);
    assert!(d.stderr.contains("cannot use `p.yaml` as the cache directory"), "{}", d.stderr);
    assert_eq!(d.stderr.matches("not a directory").count(), 1, "the OS error once: {}", d.stderr);
    let d = t.run(&["--cache-dir", "p.yaml/sub", "plan", "p.yaml"]).code(2);
    assert_eq!(d.stderr.matches("Not a directory").count(), 1, "{}", d.stderr);
}

#[test]
fn hashing_stops_when_asked() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("big");
    std::fs::write(&f, vec![7u8; 40 << 20]).unwrap();
    let polls = std::sync::atomic::AtomicUsize::new(0);
    let e = s2r_pipe::store::hash_file_uncached(&f, &|| polls.fetch_add(1, Ordering::Relaxed) >= 1).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::Interrupted);
    assert_eq!(polls.load(Ordering::Relaxed), 2, "stopped after the first 16 MiB block");
    let full = s2r_pipe::store::hash_file_uncached(&f, &|| false).unwrap();
    assert_eq!(full, blake3::hash(&std::fs::read(&f).unwrap()).to_hex().to_string());
}

/// `plan` of `text` (bytes), expecting exit 2; its stderr.
fn plan_error(t: &Test, name: &str, text: &[u8], extra: &[&str]) -> String {
    std::fs::write(t.path(name), text).unwrap();
    let mut args = vec!["plan", name];
    args.extend_from_slice(extra);
    let started = std::time::Instant::now();
    let d = t.run(&args).code(2);
    assert!(started.elapsed().as_secs() < 10, "{name} took {:?}", started.elapsed());
    d.stderr
}

#[test]
fn hostile_pipeline_files_get_a_located_error_quickly() {
    let t = Test::new();
    let ok = "stages:\n  a: {kind: util.sequence, params: {n: 3}}\n";
    // A leading BOM is not a second document.
    std::fs::write(t.path("bom.yaml"), format!("\u{feff}{ok}")).unwrap();
    t.run(&["plan", "bom.yaml"]).success();
    for (name, text) in [("empty.yaml", ""), ("null.yaml", "null\n"), ("comment.yaml", "# nothing\n---\n")] {
        let e = plan_error(&t, name, text.as_bytes(), &[]);
        assert!(e.contains(&format!("`{name}` is empty")) && e.contains(&format!("{name}:1:1")), "{e}");
    }
    let e = plan_error(&t, "list.yaml", b"- 1\n- 2\n", &[]);
    assert!(e.contains("list.yaml:1:1") && e.contains("whole file"), "{e}");
    let e = plan_error(&t, "latin1.yaml", b"stages:\n  a: {kind: util.sequence, params: {n: 3}} # caf\xe9\n", &[]);
    assert!(e.contains("not UTF-8 text (byte 0xe9)") && e.contains("latin1.yaml:2:49"), "{e}");
    let e = plan_error(&t, "nul.yaml", format!("{ok}\0\x01").as_bytes(), &[]);
    assert!(e.contains("control characters") && e.contains("nul.yaml:3:1"), "{e}");
    // Billion laughs: located at the first alias.
    let mut lol = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n".to_string();
    let mut prev = 'a';
    for c in "bcdefghi".chars() {
        lol.push_str(&format!("{c}: &{c} [{}]\n", vec![format!("*{prev}"); 9].join(",")));
        prev = c;
    }
    lol.push_str("stages:\n  x: {kind: util.sequence, params: {n: *i}}\n");
    let e = plan_error(&t, "lol.yaml", lol.as_bytes(), &[]);
    assert!(e.contains("lol.yaml:2:8") && e.contains("aliases"), "{e}");
    // Deep nesting is refused before either YAML parser runs (100k levels took 60 s).
    let deep = format!("stages: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let e = plan_error(&t, "deep.yaml", deep.as_bytes(), &[]);
    assert!(e.contains("nested more than 128 levels") && e.contains("deep.yaml:1:"), "{e}");
    let mut blocks = "stages:\n  a:\n    kind: util.sequence\n    params:\n      x:\n".to_string();
    for i in 0..3000 {
        blocks.push_str(&format!("{}- \n", " ".repeat(8 + i)));
    }
    let e = plan_error(&t, "blocks.yaml", blocks.as_bytes(), &[]);
    assert!(e.contains("nested more than 128 levels"), "{e}");
    // Params that would allocate or overflow without bound.
    let e = plan_error(&t, "big.yaml", b"stages:\n  a: {kind: util.sequence, params: {n: 100000000000}}\n", &[]);
    assert!(e.contains("`n` must be in 0–10000000") && e.contains("big.yaml:2:"), "{e}");
    let e = plan_error(
        &t,
        "over.yaml",
        b"stages:\n  a: {kind: util.sequence, params: {n: 3, start: 9223372036854775807}}\n",
        &[],
    );
    assert!(e.contains("overflows a 64-bit integer"), "{e}");
    let axis = format!("[{}]", (0..100).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
    let grid = format!(
        "stages:\n  a: {{kind: util.sequence, matrix: {{x: {axis}, y: {axis}, z: {axis}}}, params: {{n: 1}}}}\n"
    );
    let e = plan_error(&t, "grid.yaml", grid.as_bytes(), &[]);
    assert!(e.contains("makes 1000000 instances") && e.contains("grid.yaml:2:"), "{e}");
    // An error from `--set` names the `--set`, not a line of the file.
    std::fs::write(t.path("ok.yaml"), ok).unwrap();
    let e = plan_error(&t, "ok.yaml", ok.as_bytes(), &["--set", "a.n=abc"]);
    assert!(e.contains("`--set a.n=abc`: stage `a`") && !e.contains("ok.yaml:"), "{e}");
    let e = plan_error(&t, "ok.yaml", ok.as_bytes(), &["--set", &format!("a.n={}", "[".repeat(1000))]);
    assert!(e.contains("`--set a.n=…`") && e.contains("nests more than"), "{e}");
}

#[test]
fn integer_overflow_in_a_stage_is_an_error_not_a_wrap() {
    let t = Test::new();
    t.pipeline(
        "stages:\n  a: {kind: util.sequence, params: {n: 2, start: 4611686018427387904}}\n  s: {kind: util.sum, inputs: {x: a.table}}\n",
    );
    let (d, r) = t.run_report(&["-q"]);
    d.code(1);
    assert_eq!(statuses(&r)["s"], "failed");
    assert!(r.to_string().contains("overflows a 64-bit integer"), "{r}");
}
