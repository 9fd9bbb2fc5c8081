//! The Slurm executor against a real single-node Slurm (`scripts/setup-slurm.sh`, which the test
//! command runs first). Without a reachable Slurm each test prints SKIPPED, unless
//! `S2R_REQUIRE_SLURM=1` (set by the test command), where that is a failure.
//!
//! The tests share one node with few CPUs, so they run one at a time.

#![cfg_attr(feature = "torch", allow(dead_code, unused_imports))]

mod util;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use util::{keys_and_outputs, statuses, with_status, workers_of, Test, DIAMOND};

static NODE: Mutex<()> = Mutex::new(());

/// Whether Slurm answers with a usable node; panics where it must (`S2R_REQUIRE_SLURM=1`).
fn slurm_up(test: &str) -> bool {
    let ok = Command::new("sinfo").args(["-h", "-o", "%t"]).output().is_ok_and(|o| {
        o.status.success()
            && String::from_utf8_lossy(&o.stdout).lines().any(|l| ["idle", "mix", "alloc"].contains(&l.trim()))
    });
    if !ok {
        assert!(
            std::env::var("S2R_REQUIRE_SLURM").is_err(),
            "{test}: S2R_REQUIRE_SLURM is set but Slurm does not answer (bash scripts/setup-slurm.sh)"
        );
        eprintln!("SKIPPED {test}: no Slurm here (start one with `bash scripts/setup-slurm.sh`)");
    }
    ok
}

/// `sbatch` and `squeue` wrappers that log each call (and squeue's answer) to `slurm.log`, first
/// on PATH for the test's runs.
fn wrappers(t: &Test) -> (String, PathBuf) {
    let bin = t.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = t.path("slurm.log");
    for tool in ["sbatch", "squeue"] {
        let real =
            String::from_utf8(Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap().stdout)
                .unwrap()
                .trim()
                .to_string();
        let script = format!(
            "#!/bin/sh\nout=$({real} \"$@\")\nrc=$?\nprintf '%s %s\\n%s\\n' {tool} \"$*\" \"$out\" >> '{}'\nprintf '%s\\n' \"$out\"\nexit $rc\n",
            log.display()
        );
        let p = bin.join(tool);
        std::fs::write(&p, script).unwrap();
        Command::new("chmod").arg("+x").arg(&p).status().unwrap();
    }
    (format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()), log)
}

/// The lines of the wrappers' log that are calls of `tool` (submissions, for sbatch: not the
/// `--version` check).
fn calls(log: &PathBuf, tool: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(&format!("{tool} ")) && !l.ends_with("--version"))
        .map(str::to_string)
        .collect()
}

/// Slurm's job id for stage `id` of this test (by the job name `s2r:ID` and the test's cache).
fn job_of(t: &Test, id: &str, timeout: Duration) -> Option<String> {
    let start = Instant::now();
    let cache = t.cache().to_string_lossy().into_owned();
    // At least one look, then until `timeout`.
    loop {
        let out = Command::new("squeue").args(["-h", "-t", "RUNNING", "-o", "%i|%j|%Z"]).output().unwrap();
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = l.split('|').collect();
            if f.len() == 3 && f[1] == format!("s2r:{id}") && f[2].starts_with(&cache) {
                return Some(f[0].to_string());
            }
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// This test's jobs Slurm still has queued or running.
fn live_jobs(t: &Test) -> Vec<String> {
    let cache = t.cache().to_string_lossy().into_owned();
    let out = Command::new("squeue").args(["-h", "-o", "%i|%Z"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split('|').nth(1).is_some_and(|d| d.starts_with(&cache)))
        .map(|l| l.split('|').next().unwrap().to_string())
        .collect()
}

fn report(t: &Test, file: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(t.path(file)).unwrap()).unwrap()
}

fn error_of(r: &serde_json::Value, id: &str) -> String {
    r["stages"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap()["error"].as_str().unwrap_or("").to_string()
}

fn nproc() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(not(feature = "torch"))]
#[test]
fn slurm_gives_the_keys_and_objects_of_in_process_polls_in_batches_and_a_second_run_submits_nothing() {
    let _node = NODE.lock().unwrap_or_else(|e| e.into_inner());
    if !slurm_up("slurm_gives_the_keys…") {
        return;
    }
    let t = Test::new();
    t.pipeline(DIAMOND);
    let (path, log) = wrappers(&t);
    let start = Instant::now();
    let d = t.run_env(&["run", "p.yaml", "--executor", "slurm", "--report", "r.json"], &[("PATH", path.clone())]);
    let seconds = start.elapsed().as_secs_f64();
    let d = d.success();
    let r = report(&t, "r.json");
    assert_eq!(with_status(&r, "ran").len(), 6, "{r}");
    let other = Test::new();
    other.pipeline(DIAMOND);
    let (_, r_in) = other.run_report(&["-q"]);
    assert_eq!(keys_and_outputs(&r), keys_and_outputs(&r_in), "the same keys and objects as in-process");
    let sbatch = calls(&log, "sbatch");
    assert_eq!(sbatch.len(), 6, "one job per stage: {sbatch:?}");
    // One squeue per poll for every job in flight: four jobs are ready at once.
    let squeue = calls(&log, "squeue");
    assert!(squeue.iter().any(|c| c.split("-j ").nth(1).is_some_and(|ids| ids.split(',').count() >= 2)), "{squeue:?}");
    assert!(
        (squeue.len() as f64) <= seconds / 0.5 + 3.0,
        "{} squeue calls in {seconds:.1} s at one per 0.5 s poll",
        squeue.len()
    );
    // Queued jobs are shown as pending (the node has fewer CPUs than ready stages, or Slurm's
    // scheduler has not yet run), then done.
    assert!(d.stderr.contains("PENDING"), "{}", d.stderr);
    let d = t.run_env(&["run", "p.yaml", "--executor", "slurm", "--report", "r2.json"], &[("PATH", path)]).success();
    assert_eq!(with_status(&report(&t, "r2.json"), "cached").len(), 6, "{}", d.stderr);
    assert_eq!(calls(&log, "sbatch").len(), 6, "a second run submits nothing");
    // The pipeline's `executor:` section chooses Slurm too; a bad field is a usage error.
    t.pipeline(
        &format!("executor: {{kind: slurm, retries: 1, args: [--comment=s2r-test]}}\n{DIAMOND}")
            .replace("n: 10", "n: 12"),
    );
    let (d, r) = t.run_report(&["-q"]);
    d.success();
    assert_eq!(with_status(&r, "ran"), ["a", "c", "d"]);
    t.pipeline(&format!("executor: {{kind: slurm, partitio: x}}\n{DIAMOND}"));
    let e = t.run(&["run", "p.yaml"]).code(2);
    assert!(e.stderr.contains("unknown field `executor.partitio`"), "{}", e.stderr);
    // A partition Slurm does not have: sbatch refuses, the stages fail with its message.
    t.pipeline(DIAMOND.replace("n: 10", "n: 13").as_str());
    let (d, r) = t.run_report(&["-q", "--executor", "slurm", "--partition", "nosuch"]);
    d.code(1);
    assert!(error_of(&r, "a").contains("sbatch refused the job") && error_of(&r, "a").contains("partition"), "{r}");
}

#[cfg(not(feature = "torch"))]
#[test]
fn more_ready_stages_than_cpus_all_complete_and_wait_as_pending() {
    let _node = NODE.lock().unwrap_or_else(|e| e.into_inner());
    if !slurm_up("more_ready_stages_than_cpus…") {
        return;
    }
    // Each stage asks for every CPU of the node, so one runs at a time and the rest wait.
    let cpus = nproc();
    let stages: String = (0..4)
        .map(|i| format!("  s{i}: {{kind: util.sequence, params: {{n: {}, sleep_ms: 1000}}, resources: {{cpu: {cpus}, mem: 64M, time: 5}}}}\n", i + 3))
        .collect();
    let t = Test::new();
    t.pipeline(&format!("stages:\n{stages}"));
    let d = t.run(&["run", "p.yaml", "--executor", "slurm", "--report", "r.json"]).success();
    let r = report(&t, "r.json");
    assert_eq!(with_status(&r, "ran").len(), 4, "{r}");
    assert!(d.stderr.contains("PENDING (Resources)"), "queued jobs are shown as pending:\n{}", d.stderr);
    assert!(d.stderr.contains("RUNNING"), "{}", d.stderr);
}

/// Waits for stage `id`'s job to be RUNNING and its worker process to be up; the worker's pids.
fn running_worker(t: &Test, id: &str) -> (String, Vec<i32>) {
    let job = job_of(t, id, Duration::from_secs(60)).unwrap_or_else(|| panic!("`{id}`'s job is running"));
    let start = Instant::now();
    loop {
        let w = workers_of(t, Some(id));
        if !w.is_empty() {
            return (job, w);
        }
        assert!(start.elapsed() < Duration::from_secs(30), "`{id}`'s worker started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(not(feature = "torch"))]
#[test]
fn scancel_of_a_job_and_kill_9_of_a_worker_fail_their_stages_alone_and_the_next_run_completes() {
    let _node = NODE.lock().unwrap_or_else(|e| e.into_inner());
    if !slurm_up("scancel_of_a_job…") {
        return;
    }
    let t = Test::new();
    t.pipeline(
        "stages:\n  one: {kind: util.sequence, params: {n: 5, sleep_ms: 6000}}\n  after_one: {kind: util.sum, inputs: {x: one.table}}\n  two: {kind: util.sequence, params: {n: 6, sleep_ms: 6000}}\n  after_two: {kind: util.sum, inputs: {x: two.table}}\n  other: {kind: util.sequence, params: {n: 3}}\n",
    );
    let child = t.cmd(&["run", "p.yaml", "-q", "--executor", "slurm", "--report", "r.json"]).spawn().unwrap();
    let (job_one, _) = running_worker(&t, "one");
    assert!(Command::new("scancel").arg(&job_one).status().unwrap().success());
    let (_, pids) = running_worker(&t, "two");
    for pid in pids {
        // SAFETY: kill(2) with a pid read from /proc.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let r = report(&t, "r.json");
    let s = statuses(&r);
    assert_eq!(
        [&s["one"], &s["after_one"], &s["two"], &s["after_two"], &s["other"]].map(String::as_str),
        ["failed", "skipped", "failed", "skipped", "ran"],
        "{r}"
    );
    assert!(error_of(&r, "one").contains(&format!("Slurm job {job_one} CANCELLED")), "{r}");
    let two = error_of(&r, "two");
    assert!(two.contains("FAILED") && two.contains("killed by SIGKILL"), "{two}");
    assert_eq!(std::fs::read_dir(t.cache().join("entries")).unwrap().count(), 1, "only `other` has an entry");
    let (d, r) = t.run_report(&["-q", "--executor", "slurm"]);
    d.success();
    assert_eq!(with_status(&r, "ran"), ["after_one", "after_two", "one", "two"]);
    assert_eq!(with_status(&r, "cached"), ["other"]);
}

#[cfg(not(feature = "torch"))]
#[test]
fn ctrl_c_cancels_the_runs_jobs_and_records_nothing() {
    let _node = NODE.lock().unwrap_or_else(|e| e.into_inner());
    if !slurm_up("ctrl_c_cancels…") {
        return;
    }
    let t = Test::new();
    // One runs, the other waits behind it (each asks for the whole node).
    let cpus = nproc();
    t.pipeline(&format!(
        "stages:\n  a: {{kind: util.sequence, params: {{n: 5, sleep_ms: 30000}}, resources: {{cpu: {cpus}}}}}\n  b: {{kind: util.sequence, params: {{n: 6, sleep_ms: 30000}}, resources: {{cpu: {cpus}}}}}\n"
    ));
    let mut child = t.cmd(&["run", "p.yaml", "-q", "--executor", "slurm"]).spawn().unwrap();
    // Either may be the one Slurm starts first: wait for whichever runs (waiting for `a` alone let
    // `b` run and finish first).
    let start = Instant::now();
    while job_of(&t, "a", Duration::ZERO).or_else(|| job_of(&t, "b", Duration::ZERO)).is_none() {
        assert!(start.elapsed() < Duration::from_secs(60), "a job is running");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(live_jobs(&t).len(), 2, "one running, one pending");
    let start = Instant::now();
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(start.elapsed() < Duration::from_secs(20), "stopped in {:?}", start.elapsed());
    let until = Instant::now() + Duration::from_secs(20);
    while !live_jobs(&t).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(live_jobs(&t).is_empty(), "the run's jobs are cancelled: {:?}", live_jobs(&t));
    assert_eq!(std::fs::read_dir(t.cache().join("entries")).unwrap().count(), 0, "no entry");
}

#[cfg(not(feature = "torch"))]
#[test]
fn a_stage_over_its_time_limit_fails_as_timeout() {
    let _node = NODE.lock().unwrap_or_else(|e| e.into_inner());
    if !slurm_up("a_stage_over_its_time_limit…") {
        return;
    }
    let t = Test::new();
    // Slurm enforces limits by the minute: a 1-minute limit on a 3-minute stage.
    t.pipeline(
        "stages:\n  slow: {kind: util.sequence, params: {n: 5, sleep_ms: 180000}, resources: {time: 1}}\n  next: {kind: util.sum, inputs: {x: slow.table}}\n  quick: {kind: util.sequence, params: {n: 2}, resources: {time: \"0:30\"}}\n",
    );
    let (d, r) = t.run_report(&["-q", "--executor", "slurm"]);
    d.code(1);
    let s = statuses(&r);
    assert_eq!([&s["slow"], &s["next"], &s["quick"]].map(String::as_str), ["failed", "skipped", "ran"], "{r}");
    let e = error_of(&r, "slow");
    assert!(e.contains("TIMEOUT") && e.contains("over its time limit of 0-00:01:00"), "{e}");
    let seconds =
        r["stages"].as_array().unwrap().iter().find(|x| x["id"] == "slow").unwrap()["seconds"].as_f64().unwrap();
    assert!(seconds < 170.0, "killed at its limit, not at its end: {seconds} s");
}

/// The state directory of the Slurm that scripts/setup-slurm.sh started.
fn slurm_state() -> PathBuf {
    std::env::var_os("S2R_SLURM_STATE").map(PathBuf::from).unwrap_or_else(|| util::repo_root().join("target/slurm"))
}

#[cfg(not(feature = "torch"))]
#[test]
fn a_controller_restarted_mid_run_leaves_the_run_complete_and_no_corrupt_entry() {
    let _node = NODE.lock().unwrap_or_else(|e| e.into_inner());
    if !slurm_up("a_controller_restarted…") {
        return;
    }
    let pid_file = slurm_state().join("ctld.pid");
    let Ok(pid) = std::fs::read_to_string(&pid_file) else {
        eprintln!("SKIPPED a_controller_restarted…: no {} (not our Slurm)", pid_file.display());
        return;
    };
    let pid: i32 = pid.trim().parse().unwrap();
    // A stale pid file (another checkout's Slurm replaced this one) names no slurmctld.
    if !std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "slurmctld") {
        eprintln!("SKIPPED a_controller_restarted…: {} names no running slurmctld", pid_file.display());
        return;
    }
    let t = Test::new();
    t.pipeline(
        "stages:\n  a: {kind: util.sequence, params: {n: 5, sleep_ms: 5000}}\n  b: {kind: util.sum, inputs: {x: a.table}}\n  c: {kind: util.sum, inputs: {x: b.table}}\n",
    );
    let child = t.cmd(&["run", "p.yaml", "-q", "--executor", "slurm", "--report", "r.json"]).spawn().unwrap();
    running_worker(&t, "a");
    // SAFETY: kill(2) of the controller started by setup-slurm.sh.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let until = Instant::now() + Duration::from_secs(20);
    // SAFETY: signal 0 only checks.
    while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Down for a few polls while `a` finishes, then back.
    std::thread::sleep(Duration::from_secs(4));
    assert!(Command::new("slurmctld").status().unwrap().success(), "slurmctld restarts");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the run completes across the restart: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(with_status(&report(&t, "r.json"), "ran"), ["a", "b", "c"]);
    let v = t.run(&["cache", "verify"]).success();
    assert!(v.stdout.contains("0 corrupt removed, 0 entries dropped"), "{}", v.stdout);
    let (d, r) = t.run_report(&["-q", "--executor", "slurm"]);
    d.success();
    assert_eq!(with_status(&r, "cached").len(), 3);
}

/// A torch stage (DARec, few epochs) through a Slurm job gives the in-process keys and objects.
#[cfg(feature = "torch")]
#[test]
fn a_torch_stage_through_slurm_gives_the_keys_and_objects_of_in_process() {
    let _node = NODE.lock().unwrap_or_else(|e| e.into_inner());
    if !slurm_up("a_torch_stage_through_slurm…") {
        return;
    }
    let data = util::repo_root().join("data/ml-latest-small");
    let yaml = format!(
        r#"
stages:
  ratings: {{kind: data.movielens, params: {{path: "{}"}}}}
  split:
    kind: data.split
    inputs: {{ratings: ratings.ratings, items: ratings.items}}
    params: {{sim: Adventure, real: Crime, shared_users: 200, test_frac: 0.9, val_frac: 0.2, min_item_ratings: 5, min_user_ratings: 5, seed: 7}}
  svd: {{kind: embed.svd, inputs: {{split: split.*}}, params: {{dim: 16, seed: 7}}}}
  darec: {{kind: adapt.darec, inputs: {{split: split.*, svd: svd.*}}, params: {{epochs: 2, seed: 1}}, resources: {{cpu: 1, mem: 2G, time: 10}}}}
"#,
        data.display()
    );
    let t = Test::new();
    t.pipeline(&yaml);
    let (d, r) = t.run_report(&["-q", "--executor", "slurm"]);
    d.success();
    assert_eq!(with_status(&r, "ran").len(), 4, "{r}");
    let other = Test::new();
    other.pipeline(&yaml);
    let (d, r_in) = other.run_report(&["-q"]);
    d.success();
    assert_eq!(keys_and_outputs(&r), keys_and_outputs(&r_in));
    let (d, again) = t.run_report(&["-q", "--executor", "slurm"]);
    d.success();
    assert_eq!(with_status(&again, "cached").len(), 4, "a second run submits nothing");
}
