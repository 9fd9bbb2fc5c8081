//! The shared cache against a real S3-compatible server (moto on 127.0.0.1) and a directory.

mod util;

use util::moto::Moto;
use util::{statuses, with_status, Test};

const PIPE: &str = r#"
stages:
  a: {kind: util.sequence, params: {n: 1000}}
  b: {kind: util.sequence, params: {n: 5, start: 100}}
  c: {kind: util.sum, inputs: {x: [a.table, b.table]}}
  d: {kind: util.sum, inputs: {x: c.table}, params: {scale: 2}}
"#;

fn report(t: &Test, name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(t.path(name)).unwrap()).unwrap()
}

fn entries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("entries")).map(|rd| rd.count()).unwrap_or(0)
}

#[test]
fn push_from_one_cache_pull_into_an_empty_one_and_run_is_all_cached() {
    let moto = Moto::start();
    moto.create_bucket("team");
    let env = moto.env();
    let t = Test::new();
    t.pipeline(PIPE);
    let remote = "s3://team/s2r";
    // Cache A runs and pushes.
    let d = t.run_env(&["--cache-dir", "A", "--remote", remote, "run", "p.yaml", "--push", "--report", "a.json"], &env);
    d.success();
    assert_eq!(with_status(&report(&t, "a.json"), "ran").len(), 4);
    // Cache B is empty: `run` reads through the remote, verifies, and runs nothing.
    t.run_env(&["--cache-dir", "B", "--remote", remote, "run", "p.yaml", "--report", "b.json"], &env).success();
    let b = report(&t, "b.json");
    assert_eq!(with_status(&b, "cached").len(), 4, "{b}");
    assert!(b["stages"][0]["note"].as_str().unwrap().starts_with("pulled from s3://team/s2r"));
    // Cache C: an explicit pull, then a run without any remote.
    let pull = t.run_env(&["--cache-dir", "C", "--remote", remote, "cache", "pull", "p.yaml"], &env).success();
    assert!(pull.stdout.contains("pulled 4 entries"), "{}", pull.stdout);
    t.run(&["--cache-dir", "C", "run", "p.yaml", "--report", "c.json"]).success();
    assert_eq!(with_status(&report(&t, "c.json"), "cached").len(), 4);
    // Push is idempotent.
    let again = t.run_env(&["--cache-dir", "A", "--remote", remote, "cache", "push", "p.yaml"], &env).success();
    assert!(again.stdout.contains("0 objects (0 bytes) uploaded"), "{}", again.stdout);
}

#[test]
fn a_tampered_object_is_rejected_and_never_enters_the_local_store() {
    let moto = Moto::start();
    moto.create_bucket("team");
    let env = moto.env();
    let t = Test::new();
    t.pipeline(PIPE);
    t.run_env(&["--cache-dir", "A", "--remote", "s3://team/x", "run", "p.yaml", "--push", "--report", "a.json"], &env)
        .success();
    let a = report(&t, "a.json");
    let stage_a = a["stages"].as_array().unwrap().iter().find(|s| s["id"] == "a").unwrap();
    let hash = stage_a["outputs"]["table"].as_str().unwrap();
    let key = stage_a["key"].as_str().unwrap();
    // Truncate the object on the server.
    moto.put_object("team", &format!("x/objects/{}/{hash}.parquet", &hash[..2]), b"PAR1 truncated");
    let pull = t.run_env(&["--cache-dir", "B", "--remote", "s3://team/x", "cache", "pull", "p.yaml"], &env).code(1);
    assert!(
        pull.stderr.contains(&format!("rejected entry `{key}`")) && pull.stderr.contains("corrupt or truncated"),
        "{}",
        pull.stderr
    );
    assert_eq!(entries(&t.path("B")), 0, "nothing from the bad entry was trusted");
    // A run reading through the remote recomputes that stage locally and reproduces the object.
    t.run_env(&["--cache-dir", "B", "--remote", "s3://team/x", "run", "p.yaml", "--report", "b.json"], &env).success();
    let b = report(&t, "b.json");
    let s = statuses(&b);
    assert_eq!(s["a"], "ran");
    assert_eq!(s["b"], "cached");
    let a_b = b["stages"].as_array().unwrap().iter().find(|s| s["id"] == "a").unwrap();
    assert!(a_b["note"].as_str().unwrap().contains("rejected entry"), "{a_b}");
    assert_eq!(a_b["outputs"]["table"], hash);
}

#[test]
fn an_interrupted_push_leaves_no_manifest_without_its_objects_and_the_next_push_completes() {
    let moto = Moto::start();
    moto.create_bucket("team");
    let mut env = moto.env();
    let t = Test::new();
    t.pipeline(PIPE);
    t.run(&["--cache-dir", "A", "run", "p.yaml"]).success();
    env.push(("S2R_TEST_FAIL_PUSH_AFTER", "2".into()));
    let d = t.run_env(&["--cache-dir", "A", "--remote", "s3://team/y", "cache", "push", "p.yaml"], &env).code(1);
    assert!(d.stderr.contains("push interrupted after 2"), "{}", d.stderr);
    env.pop();
    // Whatever manifests reached the remote name only objects that are there: pulling them works.
    let partial = t.run_env(&["--cache-dir", "P", "--remote", "s3://team/y", "cache", "pull"], &env).success();
    assert!(partial.stdout.contains("pulled 2 entries"), "{}", partial.stdout);
    t.run_env(&["--cache-dir", "A", "--remote", "s3://team/y", "cache", "push", "p.yaml"], &env).success();
    t.run_env(&["--cache-dir", "B", "--remote", "s3://team/y", "run", "p.yaml", "--report", "b.json"], &env).success();
    assert_eq!(with_status(&report(&t, "b.json"), "cached").len(), 4);
}

#[test]
fn an_unreachable_remote_is_retried_then_reported_and_the_run_still_completes() {
    let t = Test::new();
    t.pipeline(PIPE);
    let env = vec![
        ("AWS_ACCESS_KEY_ID", "x".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "x".to_string()),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9".to_string()),
    ];
    t.run(&["--cache-dir", "A", "run", "p.yaml"]).success();
    let d = t.run_env(&["--cache-dir", "A", "--remote", "s3://nope", "cache", "push"], &env).code(1);
    assert!(d.stderr.contains("failed after 4 attempt(s)"), "{}", d.stderr);
    let d = t
        .run_env(&["--cache-dir", "B", "--remote", "s3://nope", "run", "p.yaml", "--report", "b.json"], &env)
        .success();
    let _ = d;
    let b = report(&t, "b.json");
    assert_eq!(with_status(&b, "ran").len(), 4);
    assert!(b["stages"][0]["note"].as_str().unwrap().contains("ran locally"));
    assert_eq!(entries(&t.path("B")), 4, "the local store is complete and sound");
}

#[test]
fn a_directory_remote_round_trips() {
    let t = Test::new();
    t.pipeline(&format!("cache: {{remote: shared}}\n{PIPE}"));
    t.run(&["--cache-dir", "A", "run", "p.yaml", "--push"]).success();
    t.run(&["--cache-dir", "B", "run", "p.yaml", "--report", "b.json"]).success();
    assert_eq!(with_status(&report(&t, "b.json"), "cached").len(), 4);
    // gc bounds: everything is older than 0 s but kept by the pipeline; without it, --max-size 0 empties.
    let gc = t.run(&["--cache-dir", "B", "cache", "gc", "p.yaml", "--max-age", "0s"]).success();
    assert!(gc.stdout.contains("removed 0 entries"), "{}", gc.stdout);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let gc = t.run(&["--cache-dir", "B", "cache", "gc", "--max-size", "0", "--dry-run"]).success();
    assert!(gc.stdout.contains("would remove 4 entries"), "{}", gc.stdout);
    t.run(&["--cache-dir", "B", "cache", "gc", "--max-age", "0s"]).success();
    assert_eq!(entries(&t.path("B")), 0);
}
