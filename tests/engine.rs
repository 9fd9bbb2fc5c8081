//! Engine tests below the CLI: code fingerprints, key canonicalization, parser robustness.

use std::path::Path;
use std::sync::Arc;

use arrow::array::Int64Array;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use s2r_pipe::event::{NullSink, Status};
use s2r_pipe::exec::{execute, ExecOptions};
use s2r_pipe::graph::Graph;
use s2r_pipe::key::Machine;
use s2r_pipe::plan::plan;
use s2r_pipe::spec::parse_pipeline;
use s2r_pipe::store::Store;
use s2r_stages::data::table::{batch, column};
use s2r_stages::kinds::util::{Sequence, Sum};
use s2r_stages::{Artifact, Inputs, Outputs, Registry, StageError};
use s2r_stages::{Context, InputDoc, OutputDoc, ParamDoc, Stage};
use serde_json::Value;

/// `test.scale`: multiplies column x by a factor baked into the code (a stand-in for an edit).
struct Scale(i64);

impl Stage for Scale {
    fn kind(&self) -> &'static str {
        "test.scale"
    }
    fn about(&self) -> &'static str {
        "x × factor"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        &[]
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[InputDoc { name: "x", required: true, many: false, help: "" }]
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[OutputDoc { name: "table", help: "" }]
    }
    fn validate(&self, _p: &Value) -> Result<(), StageError> {
        Ok(())
    }
    fn run(&self, _ctx: &Context, inputs: &Inputs, _p: &Value) -> Result<Outputs, StageError> {
        let t = inputs.table("x")?;
        let xs: Vec<i64> = column::<Int64Array>(t, "x", "x")?.values().iter().map(|v| v * self.0).collect();
        Ok(Outputs::from([("table".into(), Artifact::Table(batch(vec![("x", Arc::new(Int64Array::from(xs)))])?))]))
    }
}

fn registry(scale_factor: i64, scale_fp: &str) -> Registry {
    let mut r = Registry::empty();
    r.register(Arc::new(Sequence), "seq-v1");
    r.register(Arc::new(Sum), "sum-v1");
    r.register(Arc::new(Scale(scale_factor)), scale_fp);
    r
}

const PIPE: &str = r#"
stages:
  a: {kind: util.sequence, params: {n: 4}}
  scaled: {kind: test.scale, inputs: {x: a.table}}
  scaled2: {kind: test.scale, inputs: {x: scaled.table}}
  total: {kind: util.sum, inputs: {x: [scaled2.table, other.table]}}
  other: {kind: util.sequence, params: {n: 2}}
  lone: {kind: util.sum, inputs: {x: other.table}}
"#;

fn run(dir: &Path, reg: &Registry) -> Vec<(String, Status)> {
    let graph = Graph::new(parse_pipeline(PIPE, Path::new("p.yaml"), &[], reg).unwrap()).seal().unwrap();
    let store = Store::open(dir).unwrap();
    let opts = ExecOptions { jobs: 2, machine: Machine::with_gpus(0), ..Default::default() };
    let s = execute(&graph, reg, &store, &opts, &mut NullSink);
    s.results.into_iter().map(|r| (r.id, r.status)).collect()
}

fn ids_with(results: &[(String, Status)], st: Status) -> Vec<&str> {
    results.iter().filter(|r| r.1 == st).map(|r| r.0.as_str()).collect()
}

#[test]
fn a_changed_code_fingerprint_reruns_that_kind_and_its_downstream_only() {
    let dir = tempfile::tempdir().unwrap();
    let r1 = run(dir.path(), &registry(2, "scale-v1"));
    assert_eq!(ids_with(&r1, Status::Ran).len(), 6);
    // Same code: all cached.
    assert_eq!(ids_with(&run(dir.path(), &registry(2, "scale-v1")), Status::Cached).len(), 6);
    // The plan names the code change.
    let reg2 = registry(3, "scale-v2");
    let graph = Graph::new(parse_pipeline(PIPE, Path::new("p.yaml"), &[], &reg2).unwrap()).seal().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let p = plan(&graph, &reg2, &store, Machine::with_gpus(0));
    let scaled = p.stages.iter().find(|s| s.id == "scaled").unwrap();
    assert!(scaled.reasons.iter().any(|r| r.contains("code of `test.scale` changed")), "{:?}", scaled.reasons);
    // The edited kind and everything downstream of it rerun; nothing else.
    let r2 = run(dir.path(), &reg2);
    assert_eq!(ids_with(&r2, Status::Ran), ["scaled", "scaled2", "total"]);
    assert_eq!(ids_with(&r2, Status::Cached), ["a", "other", "lone"]);
    // A fingerprint change that does not change the output is cut off after the stage itself.
    let r3 = run(dir.path(), &registry(3, "scale-v3"));
    assert_eq!(ids_with(&r3, Status::Ran), ["scaled", "scaled2"]);
    assert_eq!(ids_with(&r3, Status::Cached), ["a", "total", "other", "lone"]);
}

#[test]
fn keys_do_not_depend_on_yaml_map_order_or_number_spelling() {
    let reg = Registry::builtin();
    let a = "stages:\n  s: {kind: util.sequence, params: {n: 3, start: 1, step: 2}}\n";
    let b = "stages:\n  s:\n    params: {step: 2.0, start: 1, n: 3}\n    kind: util.sequence\n";
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = |text: &str| {
        let g = Graph::new(parse_pipeline(text, Path::new("p.yaml"), &[], &reg).unwrap()).seal().unwrap();
        plan(&g, &reg, &store, Machine::with_gpus(0)).stages[0].key.clone().unwrap()
    };
    assert_eq!(key(a), key(b));
    assert_ne!(key(a), key("stages:\n  s: {kind: util.sequence, params: {n: 3, start: 1, step: 3}}\n"));
}

#[test]
fn writing_a_default_out_does_not_change_a_key() {
    let reg = Registry::builtin();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = |text: &str| {
        let g = Graph::new(parse_pipeline(text, Path::new("p.yaml"), &[], &reg).unwrap()).seal().unwrap();
        plan(&g, &reg, &store, Machine::with_gpus(0)).stages[0].key.clone().unwrap()
    };
    let bare = key("stages:\n  s: {kind: util.sequence, params: {n: 3}}\n");
    assert_eq!(bare, key("stages:\n  s: {kind: util.sequence, params: {n: 3, start: 0, step: 1, sleep_ms: 0}}\n"));
    assert_eq!(
        key("stages:\n  s: {kind: util.sequence}\n"),
        key("stages:\n  s: {kind: util.sequence, params: {n: 10}}\n")
    );
    assert_ne!(bare, key("stages:\n  s: {kind: util.sequence, params: {n: 3, step: 2}}\n"));
}

/// `test.gpu`: a stage that asks for a GPU slot (its result does not depend on the device).
const GPU_PIPE: &str = r#"
stages:
  a: {kind: util.sequence, params: {n: 4}}
  g: {kind: util.sum, inputs: {x: a.table}, resources: {gpu: 1}}
  after: {kind: util.sum, inputs: {x: g.table}}
"#;

#[test]
fn gc_push_and_pull_use_the_keys_run_used_on_a_machine_with_gpus() {
    use s2r_pipe::store::gc::{collect, GcPolicy};
    let reg = Registry::builtin();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let graph = Graph::new(parse_pipeline(GPU_PIPE, Path::new("gpu.yaml"), &[], &reg).unwrap()).seal().unwrap();
    // A machine with one GPU (faked: util stages ignore the device): `g` is keyed `cuda`.
    let gpu = Machine::with_gpus(1);
    let s = execute(&graph, &reg, &store, &ExecOptions { jobs: 2, machine: gpu, ..Default::default() }, &mut NullSink);
    assert!(s.results.iter().all(|r| r.status == Status::Ran), "{:?}", s.results);
    let planned = plan(&graph, &reg, &store, gpu);
    assert!(planned.stages.iter().all(|i| i.action == s2r_pipe::plan::Action::Cached), "same machine, same keys");
    // The old defect: keys computed for 0 GPUs miss the GPU stage (and its downstream).
    let cpu = plan(&graph, &reg, &store, Machine::with_gpus(0));
    let missed: Vec<&str> =
        cpu.stages.iter().filter(|i| i.action != s2r_pipe::plan::Action::Cached).map(|i| i.id.as_str()).collect();
    assert_eq!(missed, ["g", "after"]);
    // gc keeps exactly what `run` produced when it keeps the pipeline's keys for this machine.
    let keep = |m: Machine| GcPolicy {
        keep: plan(&graph, &reg, &store, m).stages.into_iter().filter_map(|i| i.key).collect(),
        pipelines_given: true,
        ..Default::default()
    };
    let dry = GcPolicy { dry_run: true, ..keep(Machine::with_gpus(0)) };
    assert_eq!(collect(&store, &dry).unwrap().evicted.len(), 2, "a 0-GPU key set would evict `g` and `after`");
    let report = collect(&store, &keep(gpu)).unwrap();
    assert!(report.evicted.is_empty() && report.objects == 0, "{report:?}");
    let again =
        execute(&graph, &reg, &store, &ExecOptions { jobs: 2, machine: gpu, ..Default::default() }, &mut NullSink);
    assert!(again.results.iter().all(|r| r.status == Status::Cached));
}

const VALID: &str = r#"name: p
vars: {seeds: [1, 2], n: 3}
stages:
  a: {kind: util.sequence, matrix: {seed: "${seeds}"}, params: {n: "${n}", start: "${seed}"}}
  b: {kind: util.sum, inputs: {x: a.table}, resources: {cpu: 2}}
  c: {kind: data.split, inputs: {ratings: r.ratings, items: r.items}, params: {sim: A, real: B}}
  r: {kind: data.movielens, params: {path: nowhere}}
"#;

#[test]
fn the_parser_never_panics_on_random_or_mutated_yaml() {
    let reg = Registry::builtin();
    let mut runner = TestRunner::new_with_rng(
        Config { cases: 3000, failure_persistence: None, ..Config::default() },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let tokens = proptest::sample::select(vec![
        "stages:",
        "\n",
        "  ",
        "a:",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "kind: util.sum",
        "inputs:",
        "x: a.table",
        "matrix:",
        "${n}",
        "${",
        "- ",
        "\"",
        "'",
        "&x",
        "*x",
        "!!int",
        "params:",
        "n: -1",
        "vars:",
        "?",
        "#",
        "|",
        ">",
        "\t",
        "é",
        "../",
        "a.*",
        "resources: {gpu: 1}",
        "null",
        "~",
        "1e999",
        "[]",
        "{}",
    ]);
    let random = proptest::collection::vec(tokens, 0..40).prop_map(|v| v.concat());
    let mutated = (0..VALID.len(), 0..VALID.len(), proptest::char::any()).prop_map(|(i, j, c)| {
        let (i, j) = (i.min(j), i.max(j));
        let mut s: Vec<char> = VALID.chars().collect();
        let (i, j) = (i.min(s.len()), j.min(s.len()));
        s.splice(i..j.min(i + 3), std::iter::once(c));
        s.into_iter().collect::<String>()
    });
    let strategy = proptest::prop_oneof![random, mutated];
    for _ in 0..3000 {
        let text = strategy.new_tree(&mut runner).unwrap().current();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = parse_pipeline(&text, Path::new("p.yaml"), &[], &reg).map(|p| Graph::new(p).seal());
        }));
        assert!(r.is_ok(), "the parser panicked on:\n{text}");
    }
    // The unmutated document is valid.
    assert!(parse_pipeline(VALID, Path::new("p.yaml"), &[], &reg).is_ok());
}
