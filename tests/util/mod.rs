//! Test harness: a fresh temp dir with a cache, a pipeline file and the `s2r-pipe` binary.

#![allow(dead_code)]

pub mod moto;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// a, b → c → d, plus a matrix stage e[k=1], e[k=2] (targets, executors).
pub const DIAMOND: &str = r#"
name: diamond
stages:
  a: {kind: util.sequence, params: {n: 10}}
  b: {kind: util.sequence, params: {n: 5, start: 100}}
  c: {kind: util.sum, inputs: {x: [a.table, b.table]}}
  d: {kind: util.sum, inputs: {x: c.table}, params: {scale: 2}}
  e: {kind: util.sequence, matrix: {k: [1, 2]}, params: {n: "${k}"}}
"#;

/// One test's sandbox.
pub struct Test {
    pub dir: tempfile::TempDir,
}

/// A finished command.
pub struct Done {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Done {
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(self.code, 0, "expected success\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "expected exit {code}\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_s2r-pipe"))
}

impl Test {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn cache(&self) -> PathBuf {
        self.path("cache")
    }

    /// Writes `p.yaml`.
    pub fn pipeline(&self, yaml: &str) -> &Self {
        std::fs::write(self.path("p.yaml"), yaml).expect("write pipeline");
        self
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.current_dir(self.dir.path()).env("S2R_CACHE_DIR", self.cache()).env_remove("S2R_LOG").args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Done {
        self.run_env(args, &[])
    }

    /// Runs with extra environment variables.
    pub fn run_env(&self, args: &[&str], env: &[(&str, String)]) -> Done {
        let mut c = self.cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out: Output = c.output().expect("run s2r-pipe");
        Done {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `run p.yaml --report report.json <extra>` and the parsed report.
    pub fn run_report(&self, extra: &[&str]) -> (Done, serde_json::Value) {
        let report = self.path("report.json");
        let _ = std::fs::remove_file(&report);
        let mut args = vec!["run", "p.yaml", "--report", "report.json"];
        args.extend_from_slice(extra);
        let d = self.run(&args);
        let v = std::fs::read(&report).map(|b| serde_json::from_slice(&b).expect("report is JSON")).unwrap_or_default();
        (d, v)
    }
}

/// id → status from a run report.
pub fn statuses(report: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    report["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s["status"].as_str().unwrap().to_string()))
        .collect()
}

/// Ids with a given status, sorted.
pub fn with_status(report: &serde_json::Value, status: &str) -> Vec<String> {
    statuses(report).into_iter().filter(|(_, s)| s == status).map(|(id, _)| id).collect()
}

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Pids of worker processes of this test's cache (of stage `id` only, when given: its request
/// file names it).
pub fn workers_of(t: &Test, id: Option<&str>) -> Vec<i32> {
    let cache = t.cache().join("tmp").to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).into_owned();
            let args: Vec<&str> = cmd.split('\0').collect();
            let is_worker = args.len() > 2 && args[1] == "worker" && args[2].contains(&cache);
            is_worker
                && id.is_none_or(|id| {
                    let req = std::fs::read_to_string(args[2]).unwrap_or_default();
                    serde_json::from_str::<serde_json::Value>(&req).is_ok_and(|v| v["id"] == id)
                })
        })
        .collect()
}

/// (id, key, outputs) of every stage in a run report, sorted.
pub fn keys_and_outputs(r: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().into(), s["key"].as_str().unwrap().into(), s["outputs"].to_string()))
        .collect();
    v.sort();
    v
}
