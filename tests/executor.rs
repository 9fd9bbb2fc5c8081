//! The `process` executor: each stage in a worker subprocess (`s2r-pipe worker`).

mod util;

use std::time::{Duration, Instant};

use util::{keys_and_outputs, statuses, with_status, workers_of, Test, DIAMOND};

#[test]
fn the_process_executor_gives_the_keys_and_objects_of_in_process() {
    let t = Test::new();
    t.pipeline(DIAMOND);
    let (d, r_proc) = t.run_report(&["--executor", "process", "-q"]);
    d.success();
    assert_eq!(with_status(&r_proc, "ran").len(), 6);
    let (d, again) = t.run_report(&["--executor", "process", "-q"]);
    d.success();
    assert_eq!(with_status(&again, "cached").len(), 6, "a second run starts no worker");
    let other = Test::new();
    other.pipeline(DIAMOND);
    let (_, r_in) = other.run_report(&["-q"]);
    assert_eq!(keys_and_outputs(&r_proc), keys_and_outputs(&r_in));
    // The pipeline's `executor:` section chooses it too; an unknown one is a usage error.
    t.pipeline(&format!("executor: {{kind: process}}\n{DIAMOND}").replace("n: 10", "n: 11"));
    let (d, r) = t.run_report(&["-q"]);
    d.success();
    assert_eq!(with_status(&r, "ran"), ["a", "c", "d"]);
    t.pipeline(&format!("executor: {{kind: cluster}}\n{DIAMOND}"));
    let e = t.run(&["run", "p.yaml"]).code(2);
    assert!(e.stderr.contains("the executors are `in-process`, `process` and `slurm`"), "{}", e.stderr);
}

const ABORTS: &str = r#"
stages:
  a: {kind: util.sequence, params: {n: 10}}
  boom: {kind: util.fail, inputs: {x: a.table}, params: {mode: abort, message: "like a libtorch assertion"}}
  after: {kind: util.sum, inputs: {x: boom.table}}
  other: {kind: util.sum, inputs: {x: a.table}}
"#;

#[test]
fn a_stage_that_aborts_fails_alone_in_a_worker() {
    let t = Test::new();
    t.pipeline(ABORTS);
    let (d, r) = t.run_report(&["--executor", "process", "-q"]);
    d.code(1);
    let s = statuses(&r);
    assert_eq!(
        (s["a"].as_str(), s["boom"].as_str(), s["after"].as_str(), s["other"].as_str()),
        ("ran", "failed", "skipped", "ran")
    );
    let boom = r["stages"].as_array().unwrap().iter().find(|s| s["id"] == "boom").unwrap();
    let err = boom["error"].as_str().unwrap();
    assert!(err.contains("killed by SIGABRT") && err.contains("like a libtorch assertion"), "{err}");
    let (_, r) = t.run_report(&["--executor", "process", "-q"]);
    assert_eq!(with_status(&r, "cached"), ["a", "other"], "what finished is cached");
    // In-process, the same abort takes the whole run down: the reason for the process executor.
    let t2 = Test::new();
    t2.pipeline(ABORTS);
    let d = t2.run(&["run", "p.yaml", "-q"]);
    assert_ne!(d.code, 0);
    assert!(d.code == 134 || d.code == -1, "aborted: {}", d.code);
}

fn workers(t: &Test) -> Vec<i32> {
    workers_of(t, None)
}

fn wait_for_workers(t: &Test) -> Vec<i32> {
    let start = Instant::now();
    loop {
        let w = workers(t);
        if !w.is_empty() || start.elapsed() > Duration::from_secs(20) {
            return w;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_worker_fails_its_stage_with_the_signal_named_and_the_next_run_completes() {
    let t = Test::new();
    t.pipeline("stages:\n  slow: {kind: util.sequence, params: {n: 5, sleep_ms: 4000}}\n  fast: {kind: util.sequence, params: {n: 3}}\n  next: {kind: util.sum, inputs: {x: slow.table}}\n");
    let child =
        t.cmd(&["run", "p.yaml", "-q", "--executor", "process", "--report", "r.json", "--jobs", "2"]).spawn().unwrap();
    let start = Instant::now();
    let mut slow = workers_of(&t, Some("slow"));
    while slow.is_empty() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
        slow = workers_of(&t, Some("slow"));
    }
    assert!(!slow.is_empty(), "the slow stage's worker is running");
    std::thread::sleep(Duration::from_millis(300));
    // Only the slow stage's worker (a torch-built worker takes ~0.4 s to start: `fast` may still run).
    for pid in slow {
        // SAFETY: kill(2) with a pid read from /proc.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(t.path("r.json")).unwrap()).unwrap();
    let s = statuses(&r);
    assert_eq!((s["slow"].as_str(), s["next"].as_str(), s["fast"].as_str()), ("failed", "skipped", "ran"), "{r}");
    assert!(r.to_string().contains("killed by SIGKILL"), "{r}");
    let (d, r) = t.run_report(&["-q", "--executor", "process"]);
    d.success();
    assert_eq!(with_status(&r, "ran"), ["next", "slow"]);
}

#[test]
fn ctrl_c_stops_the_workers_and_records_nothing() {
    let t = Test::new();
    t.pipeline("stages:\n  slow: {kind: util.sequence, params: {n: 5, sleep_ms: 20000}}\n");
    let mut child = t.cmd(&["run", "p.yaml", "-q", "--executor", "process"]).spawn().unwrap();
    assert!(!wait_for_workers(&t).is_empty());
    let start = Instant::now();
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(start.elapsed() < Duration::from_secs(10), "the worker stopped at once");
    assert!(workers(&t).is_empty(), "no worker left behind");
    assert_eq!(std::fs::read_dir(t.cache().join("entries")).unwrap().count(), 0, "no entry");
}

#[test]
fn gc_beside_a_long_worker_stage_leaves_its_directories_alone() {
    let t = Test::new();
    t.pipeline("stages:\n  slow: {kind: util.sequence, params: {n: 5, sleep_ms: 3000}}\n");
    let child = t.cmd(&["run", "p.yaml", "-q", "--executor", "process"]).spawn().unwrap();
    assert!(!wait_for_workers(&t).is_empty());
    // Wait for the stage's scratch dir too (a torch-built worker starts in ~0.4 s).
    let start = Instant::now();
    while std::fs::read_dir(t.cache().join("tmp")).unwrap().count() < 2 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Make the worker's directory and the stage's scratch dir look hours old, as in a long training.
    let tmp = t.cache().join("tmp");
    let dirs: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.path()).collect();
    assert!(dirs.len() >= 2, "a worker dir and a scratch dir: {dirs:?}");
    for d in &dirs {
        let ok = std::process::Command::new("touch").args(["-d", "3 hours ago"]).arg(d).status().unwrap();
        assert!(ok.success());
    }
    let g = t.run(&["cache", "gc", "--grace", "0s"]).success();
    assert!(g.stdout.contains("a run is live"), "{}", g.stdout);
    for d in &dirs {
        assert!(d.exists(), "{} was removed under a live stage", d.display());
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_report_carries_each_workers_peak_memory() {
    // 10M int64 rows are 80 MB in the worker that makes them (plus their Parquet encoding).
    let pipe = "stages:\n  big: {kind: util.sequence, params: {n: 10000000}}\n  small: {kind: util.sequence, params: {n: 10}}\n";
    let t = Test::new();
    t.pipeline(pipe);
    let (d, r) = t.run_report(&["--executor", "process", "-q", "--jobs", "1"]);
    d.success();
    let peak = |id: &str| {
        let s = r["stages"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap();
        s["peak_rss_bytes"].as_u64().unwrap_or_else(|| panic!("no peak for `{id}`: {s}"))
    };
    let (big, small) = (peak("big"), peak("small"));
    assert!(big >= small + 80_000_000, "big {big} small {small}");
    assert!(small > 1_000_000, "a worker's peak is its whole process: {small}");
    assert!(r["peak_rss_bytes"].as_u64().unwrap() > 0);
    // The summary table shows it; in process, stages share the orchestrator's peak and have none.
    let shown = Test::new();
    shown.pipeline(pipe);
    let d = shown.run(&["run", "p.yaml", "--executor", "process"]);
    assert!(d.stdout.contains("peak MB") || d.stderr.contains("peak MB"), "{}\n{}", d.stdout, d.stderr);
    let other = Test::new();
    other.pipeline(pipe);
    let (_, r) = other.run_report(&["-q"]);
    assert!(r["stages"].as_array().unwrap().iter().all(|s| s.get("peak_rss_bytes").is_none()), "{r}");
    assert!(r["peak_rss_bytes"].as_u64().unwrap() >= big / 2);
}
