//! End-to-end tests of the CLI: caching semantics, faults, concurrency and diagnostics.

mod util;

use std::time::{Duration, Instant};

use util::{statuses, with_status, Done, Test};

/// a, b → c → d, plus an independent e.
const DIAMOND: &str = r#"
name: diamond
vars: {n: 10}
stages:
  a: {kind: util.sequence, params: {n: "${n}"}}
  b: {kind: util.sequence, params: {n: 5, start: 100}}
  c: {kind: util.sum, inputs: {x: [a.table, b.table]}}
  d: {kind: util.sum, inputs: {x: c.table}, params: {scale: 2}}
  e: {kind: util.sequence, params: {n: 3}}
"#;

#[test]
fn second_run_executes_nothing_and_reads_no_inputs() {
    let t = Test::new();
    t.pipeline(DIAMOND);
    let (_, r1) = t.run_report(&[]);
    assert_eq!(with_status(&r1, "ran"), ["a", "b", "c", "d", "e"]);
    assert!(r1["objects_read"].as_u64().unwrap() > 0, "the first run reads inputs");
    let (d, r2) = t.run_report(&[]);
    d.success();
    assert_eq!(with_status(&r2, "cached"), ["a", "b", "c", "d", "e"]);
    assert_eq!(r2["objects_read"], 0);
    assert_eq!(r2["bytes_read"], 0);
    // Same outputs both times.
    assert_eq!(r1["stages"][3]["outputs"], r2["stages"][3]["outputs"]);
}

#[test]
fn a_param_change_reruns_that_stage_and_its_downstream_only() {
    let t = Test::new();
    t.pipeline(DIAMOND);
    t.run_report(&[]).0.success();
    let (_, r) = t.run_report(&["--set", "b.n=6"]);
    assert_eq!(with_status(&r, "ran"), ["b", "c", "d"]);
    assert_eq!(with_status(&r, "cached"), ["a", "e"]);
    // A var override reaches the stages that use it.
    let (_, r) = t.run_report(&["--set", "n=11"]);
    assert_eq!(with_status(&r, "ran"), ["a", "c", "d"]);
}

#[test]
fn byte_identical_output_stops_the_rerun_from_spreading() {
    let t = Test::new();
    t.pipeline(DIAMOND);
    t.run_report(&[]).0.success();
    // sleep_ms changes b's key but not its output: c and d stay cached.
    let (_, r) = t.run_report(&["--set", "b.sleep_ms=1"]);
    assert_eq!(with_status(&r, "ran"), ["b"]);
    assert_eq!(with_status(&r, "cached"), ["a", "c", "d", "e"]);
}

#[test]
fn plan_names_the_reason_for_every_rerun() {
    let t = Test::new();
    t.pipeline(DIAMOND);
    let fresh = t.run(&["plan", "p.yaml"]).success();
    assert!(fresh.stdout.contains("never run"), "{}", fresh.stdout);
    t.run_report(&[]).0.success();
    let p = t.run(&["plan", "p.yaml"]).success();
    assert!(p.stdout.contains("0 of 5 stages would run"), "{}", p.stdout);
    let p = t.run(&["plan", "p.yaml", "--set", "b.n=6"]).success();
    assert!(p.stdout.contains("param `n` changed: 5 → 6"), "{}", p.stdout);
    assert!(p.stdout.contains("upstream `b` will run"), "{}", p.stdout);
    assert!(p.stdout.contains("3 of 5 stages would run"), "{}", p.stdout);
    // After running the change, the plan for the old params names the change back.
    t.run_report(&["--set", "b.n=6"]).0.success();
    let p = t.run(&["plan", "p.yaml", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(&p.stdout).unwrap();
    // b's old entry still exists, so everything is cached again.
    assert!(v["stages"].as_array().unwrap().iter().all(|s| s["action"] == "cached"), "{}", p.stdout);
    // A changed source file is named.
    let t = Test::new();
    std::fs::create_dir_all(t.path("ml")).unwrap();
    std::fs::write(t.path("ml/movies.csv"), "movieId,title,genres\n1,A,Crime\n2,B,Drama\n").unwrap();
    std::fs::write(t.path("ml/ratings.csv"), "userId,movieId,rating,timestamp\n1,1,4.0,10\n").unwrap();
    t.pipeline("stages:\n  r: {kind: data.movielens, params: {path: ml}}\n");
    t.run_report(&[]).0.success();
    std::fs::write(t.path("ml/ratings.csv"), "userId,movieId,rating,timestamp\n1,1,4.5,10\n").unwrap();
    let p = t.run(&["plan", "p.yaml"]).success();
    assert!(p.stdout.contains("source data of param `path` changed"), "{}", p.stdout);
}

#[test]
fn a_failure_stops_only_its_dependents() {
    let t = Test::new();
    t.pipeline(
        r#"
stages:
  ok: {kind: util.sequence}
  bad: {kind: util.fail, params: {message: boom}}
  after_bad: {kind: util.sum, inputs: {x: bad.table}}
  after_ok: {kind: util.sum, inputs: {x: ok.table}}
"#,
    );
    let (d, r) = t.run_report(&[]);
    let d = d.code(1);
    assert!(d.stdout.contains("stage `bad` failed: boom"), "{}", d.stdout);
    let s = statuses(&r);
    assert_eq!(s["ok"], "ran");
    assert_eq!(s["after_ok"], "ran");
    assert_eq!(s["bad"], "failed");
    assert_eq!(s["after_bad"], "skipped");
    // What succeeded was cached; the failure is tried again.
    let (_, r) = t.run_report(&[]);
    let s = statuses(&r);
    assert_eq!((s["ok"].as_str(), s["after_ok"].as_str(), s["bad"].as_str()), ("cached", "cached", "failed"));
}

fn entries(t: &Test) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(t.cache().join("entries"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn sigkill_mid_stage_leaves_no_manifest_and_the_next_run_completes() {
    let t = Test::new();
    t.pipeline("stages:\n  slow: {kind: util.sequence, params: {n: 5, sleep_ms: 1500}}\n  next: {kind: util.sum, inputs: {x: slow.table}}\n");
    let mut child = t.cmd(&["run", "p.yaml", "-q"]).spawn().unwrap();
    // Wait until the stage has its scratch dir (it is running), then kill -9.
    let start = Instant::now();
    loop {
        let running = std::fs::read_dir(t.cache().join("tmp"))
            .map(|rd| rd.flatten().any(|e| e.file_name().to_string_lossy().starts_with("scratch-")))
            .unwrap_or(false);
        if running || start.elapsed() > Duration::from_secs(20) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(entries(&t).is_empty(), "no manifest after a kill: {:?}", entries(&t));
    let (d, r) = t.run_report(&["-q"]);
    d.success();
    assert_eq!(with_status(&r, "ran"), ["next", "slow"]);
    assert_eq!(entries(&t).len(), 2);
}

fn objects_of(report: &serde_json::Value, id: &str) -> Vec<String> {
    let stage = report["stages"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap();
    stage["outputs"].as_object().unwrap().values().map(|v| v.as_str().unwrap().to_string()).collect()
}

#[test]
fn a_flipped_bit_is_detected_on_read_and_its_stage_reruns() {
    let t = Test::new();
    t.pipeline(DIAMOND);
    let (_, r) = t.run_report(&[]);
    let hash = &objects_of(&r, "a")[0];
    let obj = t.cache().join("objects").join(&hash[..2]).join(format!("{hash}.parquet"));
    let mut bytes = std::fs::read(&obj).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&obj, &bytes).unwrap();
    // c must run (its param changed), reads a's object, finds it corrupt: a reruns, then c.
    let (d, r) = t.run_report(&["--set", "c.scale=3"]);
    d.success();
    let s = statuses(&r);
    assert_eq!(s["a"], "ran", "{r}");
    assert_eq!(s["c"], "ran");
    assert_eq!(objects_of(&r, "a")[0], *hash, "the rerun reproduces the same bytes");
    assert_eq!(std::fs::read(&obj).unwrap().len(), bytes.len());
    // `cache verify` finds a flipped bit too, and the next run rebuilds it.
    let hash_d = &objects_of(&r, "d")[0];
    let obj_d = t.cache().join("objects").join(&hash_d[..2]).join(format!("{hash_d}.parquet"));
    let mut bytes = std::fs::read(&obj_d).unwrap();
    bytes[10] ^= 0x80;
    std::fs::write(&obj_d, &bytes).unwrap();
    let v = t.run(&["cache", "verify"]).code(1);
    assert!(v.stderr.contains("corrupt object"), "{}", v.stderr);
    let (_, r) = t.run_report(&["--set", "c.scale=3"]);
    assert_eq!(with_status(&r, "ran"), ["d"]);
}

#[test]
fn two_concurrent_runs_on_one_cache_both_succeed_with_identical_manifests() {
    let t = Test::new();
    t.pipeline(
        r#"
stages:
  a: {kind: util.sequence, params: {n: 100, sleep_ms: 300}}
  b: {kind: util.sequence, params: {n: 50, sleep_ms: 200}}
  c: {kind: util.sum, inputs: {x: [a.table, b.table]}, params: {sleep_ms: 200}}
"#,
    );
    let c1 = t.cmd(&["run", "p.yaml", "-q", "--report", "r1.json"]).spawn().unwrap();
    let c2 = t.cmd(&["run", "p.yaml", "-q", "--report", "r2.json"]).spawn().unwrap();
    let o1 = c1.wait_with_output().unwrap();
    let o2 = c2.wait_with_output().unwrap();
    assert!(o1.status.success() && o2.status.success());
    let r1: serde_json::Value = serde_json::from_slice(&std::fs::read(t.path("r1.json")).unwrap()).unwrap();
    let r2: serde_json::Value = serde_json::from_slice(&std::fs::read(t.path("r2.json")).unwrap()).unwrap();
    for id in ["a", "b", "c"] {
        assert_eq!(objects_of(&r1, id), objects_of(&r2, id));
    }
    let keys =
        |r: &serde_json::Value| r["stages"].as_array().unwrap().iter().map(|s| s["key"].clone()).collect::<Vec<_>>();
    assert_eq!(keys(&r1), keys(&r2));
    assert_eq!(entries(&t).len(), 3);
    // Each stage ran exactly once across the two processes (the other waited on its lock).
    let ran = with_status(&r1, "ran").len() + with_status(&r2, "ran").len();
    assert_eq!(ran, 3, "{r1}\n{r2}");
}

#[track_caller]
fn config_error(yaml: &str, code: &str, needle: &str) {
    let t = Test::new();
    t.pipeline(yaml);
    let d = t.run(&["run", "p.yaml"]).code(2);
    assert!(d.stderr.contains(&format!("error[{code}]")), "expected {code}:\n{}", d.stderr);
    assert!(d.stderr.contains(needle), "expected `{needle}` in:\n{}", d.stderr);
    assert!(!d.stderr.contains("panicked"), "{}", d.stderr);
    // Every diagnostic points into the file.
    assert!(d.stderr.contains("p.yaml:"), "no file:line:col in:\n{}", d.stderr);
    assert!(!t.cache().join("entries").exists() || entries(&t).is_empty());
}

#[test]
fn each_malformed_pipeline_gets_its_own_message_and_exit_code_2() {
    config_error("stages:\n  a: {kind: util.sequence\n", "spec::syntax", "invalid YAML");
    config_error("stages:\n  a: {kind: util.sequence, parms: {}}\n", "spec::unknown-key", "unknown key `parms`");
    config_error("stages:\n  a: {kind: util.sequence, resources: {cpu: many}}\n", "spec::wrong-type", "resources.cpu");
    config_error(
        "stages:\n  a: {kind: util.sequence, resources: {mem: lots}}\n",
        "spec::bad-resource",
        "resources.mem",
    );
    config_error(
        "stages:\n  a: {kind: util.sequence, resources: {time: \"1:2:3:4\"}}\n",
        "spec::bad-resource",
        "time limit",
    );
    config_error("stages:\n  a: {kind: util.sequense}\n", "spec::unknown-kind", "did you mean `util.sequence`");
    config_error("stages:\n  s: {kind: util.sum}\n", "spec::missing-input", "needs input `x`");
    config_error(
        "stages:\n  a: {kind: util.sequence}\n  s: {kind: util.sum, inputs: {x: nope.table}}\n",
        "spec::missing-input",
        "unknown stage `nope`",
    );
    config_error(
        "stages:\n  a: {kind: util.sequence}\n  s: {kind: util.sum, inputs: {x: a.tabel}}\n",
        "spec::unknown-output",
        "its outputs are `table`",
    );
    config_error(
        "stages:\n  a: {kind: util.sum, inputs: {x: b.table}}\n  b: {kind: util.sum, inputs: {x: a.table}}\n",
        "spec::cycle",
        "`a` → `b` → `a`",
    );
    config_error(
        "stages:\n  a: {kind: util.sequence}\n  a: {kind: util.sequence}\n",
        "spec::duplicate-id",
        "duplicate",
    );
    config_error("stages:\n  ../evil: {kind: util.sequence}\n", "spec::bad-id", "not a safe path component");
    config_error(
        "stages:\n  a: {kind: util.sequence, matrix: {n: []}, params: {n: \"${n}\"}}\n",
        "spec::empty-matrix",
        "axis `n` is an empty list",
    );
    config_error(
        "stages:\n  a: {kind: util.sequence, params: {n: -1}}\n",
        "spec::bad-param",
        "`n` must be in 0–10000000, got -1",
    );
    config_error("stages:\n  a: {kind: util.sequence, params: {m: 1}}\n", "spec::bad-param", "expects `n`");
    config_error(
        "stages:\n  a: {kind: util.sequence, params: {n: \"${nn}\"}}\n",
        "spec::unknown-var",
        "unknown var `nn`",
    );
}

#[test]
fn all_errors_are_reported_at_once_with_locations() {
    let t = Test::new();
    t.pipeline(
        "stages:\n  a: {kind: util.sequense}\n  b: {kind: util.sum, inputs: {x: zz.table}}\n  c: {kind: util.sequence, params: {n: x}}\n",
    );
    let d = t.run(&["plan", "p.yaml"]).code(2);
    assert!(d.stderr.contains("p.yaml:2:"), "{}", d.stderr);
    assert!(d.stderr.contains("p.yaml:3:"), "{}", d.stderr);
    assert!(d.stderr.contains("p.yaml:4:"), "{}", d.stderr);
    assert!(d.stderr.contains("3 errors in the pipeline"), "{}", d.stderr);
}

#[test]
fn matrix_expands_to_readable_ids_and_binds_matching_instances() {
    let t = Test::new();
    t.pipeline(
        r#"
vars: {seeds: [1, 2]}
stages:
  gen:
    kind: util.sequence
    matrix: {n: [3, 4], seed: "${seeds}"}
    params: {n: "${n}", start: "${seed}"}
  per_seed:
    kind: util.sum
    matrix: {seed: "${seeds}"}
    inputs: {x: gen.table}
  total: {kind: util.sum, inputs: {x: gen.table}}
  one: {kind: util.sum, inputs: {x: "gen[n=4,seed=2].table"}}
"#,
    );
    let (d, r) = t.run_report(&[]);
    d.success();
    let ids: Vec<String> = statuses(&r).into_keys().collect();
    assert_eq!(
        ids,
        [
            "gen[n=3,seed=1]",
            "gen[n=3,seed=2]",
            "gen[n=4,seed=1]",
            "gen[n=4,seed=2]",
            "one",
            "per_seed[seed=1]",
            "per_seed[seed=2]",
            "total"
        ]
    );
    let cat = |s: &str| t.run(&["cat", "p.yaml", s, "--format", "csv"]).success().stdout;
    // per_seed[seed=1] sums gen[n=3,seed=1] (1+2+3) and gen[n=4,seed=1] (1+2+3+4).
    assert_eq!(cat("per_seed[seed=1].table"), "x\n16\n");
    assert_eq!(cat("one.table"), "x\n14\n");
    assert_eq!(cat("total.table"), "x\n39\n");
}

#[test]
fn graph_cat_path_and_help() {
    let t = Test::new();
    t.pipeline(DIAMOND);
    let dot = t.run(&["graph", "p.yaml"]).success().stdout;
    assert!(dot.contains("\"a\" -> \"c\"") && dot.contains("\"c\" -> \"d\""), "{dot}");
    let mm = t.run(&["graph", "p.yaml", "--format", "mermaid"]).success().stdout;
    assert!(mm.starts_with("flowchart LR") && mm.contains("-->|table|"), "{mm}");
    let not_cached = t.run(&["cat", "p.yaml", "d.table"]).code(1);
    assert!(not_cached.stderr.contains("not cached"), "{}", not_cached.stderr);
    t.run_report(&[]).0.success();
    assert_eq!(t.run(&["cat", "p.yaml", "a.table", "--format", "csv", "--limit", "2"]).success().stdout, "x\n0\n1\n");
    assert_eq!(
        t.run(&["cat", "p.yaml", "b.table", "--format", "json", "--limit", "1"]).success().stdout,
        "[{\"x\":100}]\n"
    );
    assert_eq!(t.run(&["cat", "p.yaml", "d.table"]).success().stdout, "| x |\n|---:|\n| 1110 |\n");
    let path = t.run(&["path", "p.yaml", "d.table"]).success().stdout;
    assert!(std::path::Path::new(path.trim()).is_file(), "{path}");
    let bad = t.run(&["cat", "p.yaml", "d.nope"]).code(2);
    assert!(bad.stderr.contains("its outputs are `table`"), "{}", bad.stderr);
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["plan", "--help"],
        vec!["cache", "gc", "--help"],
        vec!["cat", "--help"],
    ] {
        t.run(&args).success();
    }
    let ls = t.run(&["cache", "ls"]).success().stdout;
    assert!(ls.contains("5 entries"), "{ls}");
    // gc keeping only what the pipeline uses under other params drops the stale entries.
    t.run_report(&["--set", "b.n=7"]).0.success();
    let gc = t.run(&["cache", "gc", "p.yaml", "--dry-run"]).success().stdout;
    assert!(gc.contains("would remove entry"), "{gc}");
    t.run(&["cache", "gc", "p.yaml"]).success();
    assert_eq!(entries(&t).len(), 5);
    let (_, r) = t.run_report(&[]);
    assert_eq!(with_status(&r, "cached").len(), 5);
}

#[test]
fn quickstart_runs_on_the_embedded_data() {
    let t = Test::new();
    let pipeline = util::repo_root().join("pipelines/quickstart.yaml");
    let data = util::repo_root().join("data/ml-latest-small");
    let p = pipeline.to_str().unwrap();
    let set = format!("data={}", data.display());
    // D = 16 keeps the debug-build test quick; the pipeline's default is the paper's 128.
    let run = t.run(&["run", p, "--set", &set, "--set", "dim=16", "--set", "iterations=40", "--report", "q.json"]);
    let run_stdout = run.stdout.clone();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(t.path("q.json")).unwrap()).unwrap();
    let s = statuses(&report);
    if cfg!(feature = "torch") {
        run.success();
        assert!(s.values().all(|v| v == "ran"), "{s:?}");
        // The report: training curves of every trainer as small multiples, one <svg> per panel.
        let rep = t.run(&["report", p, "--set", &set, "--set", "dim=16", "--set", "iterations=40", "--out", "rep"]);
        rep.success();
        let html = std::fs::read_to_string(t.path("rep/index.html")).unwrap();
        let panels = html.matches("<div class=\"panel\">").count();
        // 5 trainers × 9 curves (iteration excluded) + DARec's curves, all present.
        for base in ["dqn_r", "no_dyn", "no_rep", "no_joint", "s2r", "darec"] {
            assert!(html.contains(&format!("<h3>{base} · curves")), "curves of {base}");
        }
        assert!(panels >= 5 * 9, "{panels} panels");
        assert_eq!(html.matches("<svg").count(), panels + 1, "the graph + one per panel (no report.figure here)");
        assert!(html.contains("<h2>Validation choices</h2>") && html.contains("<h3>pick_s2r[seed=1]</h3>"));
    } else {
        // Without libtorch, DARec fails with a clear message and only its dependents are skipped.
        let run = run.code(1);
        assert!(run.stdout.contains("needs libtorch"), "{}", run.stdout);
        assert_eq!((s["darec[seed=1]"].as_str(), s["eval_darec[seed=1]"].as_str()), ("failed", "skipped"));
        assert_eq!(
            (s["dqn_r[seed=1]"].as_str(), s["no_dyn[seed=1]"].as_str(), s["test_dqn_r[seed=1]"].as_str()),
            ("failed", "skipped", "skipped")
        );
        assert_eq!((s["no_rep[alpha=0.6,seed=2]"].as_str(), s["table"].as_str()), ("failed", "skipped"));
        // ratings, split, stats, svd and the six static evaluations.
        assert_eq!(s.values().filter(|v| *v == "ran").count(), 10, "{s:?}");
    }
    let table =
        t.run(&["cat", p, "stats.table1", "--set", &set, "--set", "dim=16", "--set", "iterations=40"]).success().stdout;
    assert!(table.contains("| ml-latest-small | Adventure | Crime | 564 | 38 | 10 | 435 |"), "{table}");
    let mf = t
        .run(&[
            "cat",
            p,
            "eval[method=mf,seed=1].summary",
            "--set",
            &set,
            "--set",
            "dim=16",
            "--set",
            "iterations=40",
            "--format",
            "csv",
        ])
        .success()
        .stdout;
    assert!(mf.starts_with("method,users,reward,precision,recall,f1\nmf,435,"), "{mf}");
    if cfg!(feature = "torch") {
        // The report table has a row per method and printed at the end of the run.
        for label in
            ["| Random |", "| MF |", "| DARec |", "| DQN-R |", "| w/o DynAda |", "| w/o RepAda |", "| S2R-Rec |"]
        {
            assert!(run_stdout.contains(label), "{label} in {run_stdout}");
        }
    }
    let again = t.run(&["run", p, "--set", &set, "--set", "dim=16", "--set", "iterations=40", "--report", "q2.json"]);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(t.path("q2.json")).unwrap()).unwrap();
    assert_eq!(report["counts"]["ran"], 0, "{}", again.stdout);
}

#[test]
fn rq2_runs_on_the_embedded_data() {
    let t = Test::new();
    let pipeline = util::repo_root().join("pipelines/rq2.yaml");
    let data = util::repo_root().join("data/ml-latest-small");
    let p = pipeline.to_str().unwrap();
    let set = format!("data={}", data.display());
    // Two of the pipeline's five seeds: the test checks the wiring, not the statistics.
    let args = [
        "run",
        p,
        "--set",
        &set,
        "--set",
        "dim=8",
        "--set",
        "iterations=30",
        "--set",
        "seeds=[1, 2]",
        "--report",
        "r.json",
    ];
    let run = t.run(&args);
    let stdout = run.stdout.clone();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(t.path("r.json")).unwrap()).unwrap();
    let s = statuses(&report);
    for id in ["kmeans", "user_groups", "split[group=1]", "split[group=4]", "svd[group=4]"] {
        assert_eq!(s[id], "ran", "{id}: {s:?}");
    }
    if cfg!(feature = "torch") {
        run.success();
        assert!(s.values().all(|v| v == "ran"), "{s:?}");
        // One column group per sim group, a row per method.
        for needle in ["| 1 Reward |", "| 4 Reward |", "| DQN-R |", "| w/o RepAda |", "| w/o DynAda |"] {
            assert!(stdout.contains(needle), "{needle} in {stdout}");
        }
    } else {
        run.code(1);
        assert_eq!(s["dqn_r[group=1,seed=1]"], "failed");
    }
}

#[test]
fn rq3_runs_on_the_embedded_data_and_draws_its_figures() {
    let t = Test::new();
    let pipeline = util::repo_root().join("pipelines/rq3.yaml");
    let data = util::repo_root().join("data/ml-latest-small");
    let p = pipeline.to_str().unwrap();
    let set = format!("data={}", data.display());
    // Two of the pipeline's five seeds: the test checks the wiring, not the statistics.
    let common = ["--set", &set, "--set", "dim=8", "--set", "iterations=30", "--set", "seeds=[1, 2]"];
    let mut args = vec!["run", p, "--report", "r.json"];
    args.extend(common);
    let run = t.run(&args);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(t.path("r.json")).unwrap()).unwrap();
    let s = statuses(&report);
    for id in ["km_sim", "km_real", "user_groups", "split[group=1]", "split[group=4]", "svd[group=2]"] {
        assert_eq!(s[id], "ran", "{id}: {s:?}");
    }
    if cfg!(feature = "torch") {
        run.success();
        assert!(s.values().all(|v| v == "ran"), "{s:?}");
        for (out, magic) in [("figure.metric_png", &b"\x89PNG"[..]), ("figure.gain_svg", &b"<svg"[..])] {
            let mut a = vec!["path", p, out];
            a.extend(common);
            let path = t.run(&a).success().stdout;
            let bytes = std::fs::read(path.trim()).unwrap();
            assert!(bytes.starts_with(magic), "{out}");
        }
        let mut a = vec!["cat", p, "figure.metric_png"];
        a.extend(common);
        assert!(t.run(&a).code(1).stderr.contains("is a .png file"));
    } else {
        run.code(1);
        assert_eq!((s["darec[group=1,seed=1]"].as_str(), s["s2r[group=1,seed=1]"].as_str()), ("failed", "skipped"));
    }
}

#[test]
fn synth_gap_runs_with_the_oracle() {
    let t = Test::new();
    let pipeline = util::repo_root().join("pipelines/synth-gap.yaml");
    let p = pipeline.to_str().unwrap();
    let args = ["run", p, "--set", "users=300", "--set", "dim=8", "--set", "iterations=20", "--report", "r.json"];
    let run = t.run(&args);
    let stdout = run.stdout.clone();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(t.path("r.json")).unwrap()).unwrap();
    let s = statuses(&report);
    for id in ["world[gap=2]", "split[gap=2]", "oracle_split[gap=2]", "svd[gap=0]", "oracle_svd[gap=1]"] {
        assert_eq!(s[id], "ran", "{id}: {s:?}");
    }
    if cfg!(feature = "torch") {
        run.success();
        assert!(s.values().all(|v| v == "ran"), "{s:?}");
        assert!(stdout.contains("| Oracle (real dynamics) |"), "{stdout}");
    } else {
        run.code(1);
        assert_eq!(s["oracle[gap=0,seed=1]"], "failed");
    }
}

/// Every shipped pipeline validates and plans: a renamed param, an unknown input or a bad
/// binding in any of them is exit 2 here, not when a user runs it (planning reads no data).
#[test]
fn every_shipped_pipeline_plans() {
    let t = Test::new();
    let mut planned = Vec::new();
    for e in std::fs::read_dir(util::repo_root().join("pipelines")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let out = t.run(&["plan", p.to_str().unwrap()]).success().stdout;
            assert!(out.contains("stages would run"), "{}: {out}", p.display());
            planned.push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(planned.len() >= 10 && planned.iter().any(|n| n == "study-popularity.yaml"), "{planned:?}");
}

/// A model with the popularity term and the real pool's own π goes from `irs.train` to
/// `irs.eval`: the model table says so, the weights load into a network of that shape, and the
/// evaluation scores every test user.
#[test]
fn a_model_with_the_real_pools_own_pi_is_evaluated() {
    let t = Test::new();
    let pipeline = util::repo_root().join("pipelines/quickstart.yaml");
    let p = pipeline.to_str().unwrap();
    let data = format!("data={}", util::repo_root().join("data/ml-latest-small").display());
    let sets = [
        data.as_str(),
        "dim=8",
        "iterations=30",
        "seeds=[1]",
        "dqn_r.popularity=true",
        "dqn_r.popularity_per_pool=true",
        "dqn_r.real_negatives=2",
    ];
    let mut args = vec!["run", p, "test_dqn_r[*]"];
    for s in &sets {
        args.extend(["--set", s]);
    }
    let run = t.run(&args);
    if !cfg!(feature = "torch") {
        return;
    }
    run.success();
    let cat = |a: &str| {
        let mut args = vec!["cat", p, a, "--format", "csv"];
        for s in &sets {
            args.extend(["--set", s]);
        }
        t.run(&args).success().stdout
    };
    let model = cat("dqn_r[seed=1].model");
    assert!(model.contains("popularity,1") && model.contains("popularity_per_pool,1"), "{model}");
    let summary = cat("test_dqn_r[seed=1].summary");
    let row: Vec<&str> = summary.lines().nth(1).unwrap().split(',').collect();
    let users: usize = row[1].parse().unwrap();
    let reward: f64 = row[2].parse().unwrap();
    assert!(users > 100 && reward.is_finite() && (-1.0..=1.0).contains(&reward), "{summary}");
}

/// Runs the shipped `pipelines/NAME` with `--set`s: the run, its stdout and the stage statuses.
fn run_shipped(t: &Test, name: &str, sets: &[&str]) -> (Done, String, std::collections::BTreeMap<String, String>) {
    let pipeline = util::repo_root().join("pipelines").join(name);
    let mut args = vec!["run", pipeline.to_str().unwrap(), "--report", "r.json"];
    for s in sets {
        args.extend(["--set", s]);
    }
    let run = t.run(&args);
    let stdout = run.stdout.clone();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(t.path("r.json")).unwrap()).unwrap();
    (run, stdout, statuses(&report))
}

#[test]
fn a_world_fitted_to_the_embedded_movielens_sample_runs_and_knowing_tastes_beats_random_in_it() {
    let t = Test::new();
    let data = format!("data={}", util::repo_root().join("data/ml-latest-small").display());
    let (run, _, s) = run_shipped(&t, "world-fit.yaml", &["seeds=[1]", &data]);
    run.success();
    assert!(s.values().all(|v| v == "ran"), "{s:?}");
    let pipeline = util::repo_root().join("pipelines/world-fit.yaml");
    let cat = |a: &str| {
        t.run(&["cat", pipeline.to_str().unwrap(), a, "--format", "csv", "--set", "seeds=[1]", "--set", &data])
            .success()
            .stdout
    };
    let items = cat("world[beta=1].items");
    let header = items.lines().next().unwrap();
    assert_eq!(header, "item,topic,pool,source_item,genre", "{items}");
    // 300 items (the sim pool's most rated), in more than one topic (genre).
    assert_eq!(items.lines().count(), 301, "{items}");
    let genres: std::collections::BTreeSet<&str> =
        items.lines().skip(1).map(|l| l.rsplit(',').next().unwrap()).collect();
    assert!(genres.len() > 3, "{genres:?}");
    // values: method, column, metric, mean, ci95, n.
    let values = cat("table.values");
    let mean = |method: &str, beta: &str| -> f64 {
        let row = values
            .lines()
            .find(|l| l.starts_with(&format!("{method},{beta},reward,")))
            .unwrap_or_else(|| panic!("{values}"));
        row.split(',').nth(3).unwrap().parse().unwrap()
    };
    for beta in ["0", "1"] {
        assert!(mean("myopic", beta) > mean("random", beta) + 0.05, "β = {beta}: {values}");
    }
    // Most popular repeats topics, so boredom costs it; myopic avoids bored topics.
    assert!(mean("popular", "1") < mean("popular", "0"), "boredom lowers the reward: {values}");
}

#[test]
fn dynamics_gap_runs_in_an_interactive_world() {
    let t = Test::new();
    let small = ["betas=[0,1]", "seeds=[1,2]", "iterations=10", "test_users=60", "val_users=20"];
    let (run, stdout, s) = run_shipped(&t, "dynamics-gap.yaml", &small);
    for id in ["world[beta=1]", "baselines[beta=0,policy=myopic,seed=2]", "baselines[beta=1,policy=random,seed=1]"] {
        assert_eq!(s[id], "ran", "{id}: {s:?}");
    }
    if cfg!(feature = "torch") {
        run.success();
        assert!(s.values().all(|v| v == "ran"), "{s:?}");
        assert!(stdout.contains("| Oracle (real dynamics) |") && stdout.contains("1 gap closed"), "{stdout}");
        for row in [
            "| w/o RepAda (Δr: classifiers) |",
            "| w/o RepAda (Δr: classifiers on Q's state) |",
            "| w/o RepAda (Δr: response models) |",
            "| w/o RepAda (Δr: exact, privileged) |",
        ] {
            assert!(stdout.contains(row), "{row} in {stdout}");
        }
    } else {
        run.code(1);
        assert_eq!(s["oracle[beta=0,seed=1]"], "failed");
    }
}

#[test]
fn dynamics_gap_categories_runs_all_five_methods_on_mf_and_darec_vectors_of_a_world() {
    let t = Test::new();
    let small =
        ["betas=[1]", "seeds=[1]", "alphas=[1.0]", "iterations=10", "test_users=60", "val_users=20", "darec.epochs=2"];
    let (run, stdout, s) = run_shipped(&t, "dynamics-gap-categories.yaml", &small);
    for id in ["world[beta=1]", "svd[beta=1]", "baselines[beta=1,policy=popular,seed=1]"] {
        assert_eq!(s[id], "ran", "{id}: {s:?}");
    }
    if cfg!(feature = "torch") {
        run.success();
        assert!(s.values().all(|v| v == "ran"), "{s:?}");
        for row in [
            "| DQN-R |",
            "| w/o DynAda |",
            "| w/o RepAda |",
            "| w/o JntTrn |",
            "| S2R-Rec |",
            "| Oracle (real dynamics) |",
        ] {
            assert!(stdout.contains(row), "{row} in {stdout}");
        }
    } else {
        run.code(1);
        assert_eq!(s["darec[beta=1,seed=1]"], "failed");
    }
}

#[test]
fn ctrl_c_abandons_running_stages_and_caches_nothing_partial() {
    let t = Test::new();
    t.pipeline("stages:\n  quick: {kind: util.sequence}\n  slow: {kind: util.sequence, params: {n: 5, sleep_ms: 20000}}\n  next: {kind: util.sum, inputs: {x: slow.table}}\n");
    let child = t
        .cmd(&["run", "p.yaml", "--jobs", "2", "--report", "r.json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while entries(&t).is_empty() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(start.elapsed() < Duration::from_secs(15), "the slow stage was abandoned");
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(t.path("r.json")).unwrap()).unwrap();
    let s = statuses(&r);
    assert_eq!((s["quick"].as_str(), s["slow"].as_str(), s["next"].as_str()), ("ran", "aborted", "aborted"));
    assert_eq!(entries(&t).len(), 1, "only the finished stage has an entry");
}

#[test]
fn kinds_files_lists_what_a_kinds_code_fingerprint_covers() {
    let t = Test::new();
    let d = t.run(&["kinds", "irs.train", "--files"]).code(0);
    assert!(
        d.stdout.contains("file   neural/irs/train.rs") && d.stdout.contains("file   kinds/irs_train.rs"),
        "{}",
        d.stdout
    );
    for not in ["data/text.rs", "data/loader.rs", "kinds/data_movielens.rs", "kinds/data_split.rs"] {
        assert!(!d.stdout.contains(not), "irs.train must not cover {not}:\n{}", d.stdout);
    }
    assert!(!d.stdout.contains("data.movielens"), "only the kind asked for");
    let e = t.run(&["kinds", "irs.trian"]).code(2);
    assert!(e.stderr.contains("irs.train"), "{}", e.stderr);
}
