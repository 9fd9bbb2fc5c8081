//! Pipeline files: YAML → raw serde structs ([`raw`]) → a validated [`Pipeline`] of stage
//! instances with resolved input bindings. Every problem is collected and reported at once, each
//! with file:line:col, the offending value and a hint.

mod interpolate;
pub mod location;
pub mod raw;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use petgraph::graph::DiGraph;
use s2r_stages::Registry;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use crate::diagnostic::{suggest, Diagnostic, Diagnostics, Location};
use crate::stage_id::{self, StageId};
use interpolate::interpolate;
use location::LocationIndex;
use raw::{RawPipeline, RawStage};

/// A validated pipeline: stage instances in file order (matrix instances in expansion order).
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Name (the `name:` field or the file stem); used to index the last run of each stage.
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    /// Stage instances.
    pub stages: Vec<StageSpec>,
    /// The `cache:` section, if any.
    pub cache: Option<Json>,
}

/// Slots a stage needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    /// CPU threads.
    pub cpu: usize,
    /// GPUs.
    pub gpu: usize,
}

/// One input binding: `input` ← `from.output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The consuming stage's input name.
    pub input: String,
    /// The producing stage instance.
    pub from: StageId,
    /// The producer's output name.
    pub output: String,
}

/// One stage instance.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// Instance id (`train[method=s2r,seed=3]`).
    pub id: StageId,
    /// Registered kind.
    pub kind: String,
    /// Params after interpolation (a JSON object).
    pub params: Json,
    /// Input bindings in declaration order.
    pub inputs: Vec<Binding>,
    /// Slots.
    pub resources: Resources,
    /// This instance's matrix values.
    pub matrix: BTreeMap<String, Json>,
    /// Where the stage is declared.
    pub location: Option<Location>,
}

impl Pipeline {
    /// The instance with id `id`.
    pub fn stage(&self, id: &str) -> Option<&StageSpec> {
        self.stages.iter().find(|s| s.id.as_str() == id)
    }
}

/// Reads and validates a pipeline file. `overrides` are `--set key=value` pairs.
pub fn load_pipeline(path: &Path, overrides: &[String], registry: &Registry) -> Result<Pipeline, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic::new("spec::io", format!("cannot read pipeline `{}`: {e}", path.display()))])
    })?;
    parse_pipeline(&text, path, overrides, registry)
}

struct Ctx<'a> {
    file: &'a Path,
    lines: Vec<&'a str>,
    index: LocationIndex,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn at(&self, pos: Option<(usize, usize)>) -> (Option<Location>, Option<String>) {
        match pos {
            Some((line, col)) => (
                Some(Location { file: self.file.to_path_buf(), line, col }),
                self.lines.get(line.saturating_sub(1)).map(|l| l.to_string()),
            ),
            None => (None, None),
        }
    }

    fn push(&mut self, code: &'static str, message: String, path: &str, hint: Option<String>) {
        let (location, source_line) = self.at(self.index.value(path));
        self.diags.push(Diagnostic { code, message, location, hint, source_line });
    }

    fn push_key(&mut self, code: &'static str, message: String, path: &str, hint: Option<String>) {
        let (location, source_line) = self.at(self.index.key(path));
        self.diags.push(Diagnostic { code, message, location, hint, source_line });
    }
}

fn yaml_scalar_text(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A matrix value as it appears in ids: the same text stages get (`s2r_stages::api::artifact::matrix_text`).
fn json_scalar_text(v: &Json) -> Option<String> {
    s2r_stages::api::artifact::matrix_text(v)
}

/// `--set` value: parsed as YAML (so `3`, `0.7`, `[1, 2]`, `true` get their types).
fn parse_override_value(v: &str) -> Yaml {
    serde_yaml::from_str(v).unwrap_or_else(|_| Yaml::String(v.to_string()))
}

fn to_json(v: &Yaml) -> Result<Json, String> {
    serde_json::to_value(v).map_err(|e| format!("cannot use this value: {e}"))
}

/// Parses and validates pipeline `text` (from `file`).
pub fn parse_pipeline(
    text: &str,
    file: &Path,
    overrides: &[String],
    registry: &Registry,
) -> Result<Pipeline, Diagnostics> {
    let mut cx = Ctx { file, lines: text.lines().collect(), index: LocationIndex::build(text), diags: Vec::new() };
    // Phase 1: syntax and raw shapes.
    let doc: Yaml = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let pos = e.location().map(|l| (l.line(), l.column()));
            let msg = e.to_string();
            let (code, hint) = if msg.contains("duplicate entry") {
                ("spec::duplicate-id", "each stage id (and each key in a map) must appear once")
            } else {
                ("spec::syntax", "check indentation, colons and quotes near this position")
            };
            let (location, source_line) = cx.at(pos);
            let message = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            return Err(Diagnostics(vec![Diagnostic {
                code,
                message: format!("invalid YAML: {message}"),
                location,
                hint: Some(hint.into()),
                source_line,
            }]));
        }
    };
    if !doc.is_mapping() {
        return Err(Diagnostics(vec![Diagnostic::new(
            "spec::shape",
            "a pipeline file must be a map with a `stages` key",
        )
        .with_hint("start from pipelines/quickstart.yaml")]));
    }
    let raw: RawPipeline = match serde_path_to_error::deserialize(doc) {
        Ok(r) => r,
        Err(e) => {
            let path = e.path().to_string().replace('.', "/");
            let msg = e.inner().to_string();
            shape_error(&mut cx, "", &path, &msg);
            return Err(finish(cx.diags));
        }
    };
    let name = raw.name.clone().unwrap_or_else(|| {
        file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "pipeline".into())
    });
    if let Err(m) = stage_id::check(&name) {
        cx.push("spec::bad-name", format!("pipeline name `{name}` is not usable: {m}"), "name", None);
    }
    // Vars and overrides.
    let mut vars: BTreeMap<String, Yaml> = BTreeMap::new();
    for (k, v) in &raw.vars {
        match yaml_scalar_text(k) {
            Some(k) => {
                vars.insert(k, v.clone());
            }
            None => cx.push("spec::shape", "var names must be strings".into(), "vars", None),
        }
    }
    let stage_names: Vec<String> = raw.stages.keys().filter_map(yaml_scalar_text).collect();
    let mut param_overrides: HashMap<String, Vec<(Vec<String>, Yaml)>> = HashMap::new();
    for o in overrides {
        let Some((key, value)) = o.split_once('=') else {
            cx.diags.push(
                Diagnostic::new("spec::bad-set", format!("`--set {o}` is not `key=value`"))
                    .with_hint("e.g. `--set seed=3` or `--set split.seed=3`"),
            );
            continue;
        };
        let key = key.trim();
        let value = parse_override_value(value);
        let var = key.strip_prefix("vars.").unwrap_or(key);
        if !key.contains('.') || key.starts_with("vars.") {
            if !vars.contains_key(var) {
                cx.diags.push(
                    Diagnostic::new("spec::bad-set", format!("`--set {key}`: no var `{var}`"))
                        .with_hint(suggest(var, vars.keys().map(String::as_str))),
                );
                continue;
            }
            vars.insert(var.to_string(), value);
            continue;
        }
        let (stage, param) = key.split_once('.').expect("contains a dot");
        let stage = stage.to_string();
        if !stage_names.contains(&stage) {
            cx.diags.push(
                Diagnostic::new("spec::bad-set", format!("`--set {key}`: no stage `{stage}`"))
                    .with_hint(suggest(&stage, stage_names.iter().map(String::as_str))),
            );
            continue;
        }
        let param = param.strip_prefix("params.").unwrap_or(param);
        param_overrides.entry(stage).or_default().push((param.split('.').map(str::to_string).collect(), value));
    }
    let json_vars: BTreeMap<String, Json> =
        vars.iter().filter_map(|(k, v)| to_json(v).ok().map(|j| (k.clone(), j))).collect();

    // Phase 2: stages → instances.
    struct Pending {
        spec: StageSpec,
        path: String,
        refs: Vec<(String, String, String)>, // (input name, reference, yaml path)
    }
    let mut pending: Vec<Pending> = Vec::new();
    let mut instances_of: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut axes_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut kind_of_base: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &raw.stages {
        let Some(base) = yaml_scalar_text(k) else {
            cx.push("spec::shape", "stage ids must be strings".into(), "stages", None);
            continue;
        };
        let path = format!("stages/{base}");
        if let Err(m) = stage_id::check(&base).and_then(|_| {
            if base.contains(['[', ']', '=', ',']) {
                Err("`[`, `]`, `=` and `,` are reserved for matrix instances".into())
            } else {
                Ok(())
            }
        }) {
            cx.push_key(
                "spec::bad-id",
                format!("stage id `{base}` is not a safe path component: {m}"),
                &path,
                Some("use letters, digits, `_`, `-`".into()),
            );
            continue;
        }
        let mut rs: RawStage = match serde_path_to_error::deserialize(v.clone()) {
            Ok(r) => r,
            Err(e) => {
                let sub = e.path().to_string().replace('.', "/");
                let msg = e.inner().to_string();
                shape_error(&mut cx, &path, &sub, &msg);
                continue;
            }
        };
        let Some(reg) = registry.get(&rs.kind) else {
            let kinds: Vec<&str> = registry.kinds().collect();
            let hint = suggest(&rs.kind, kinds);
            cx.push(
                "spec::unknown-kind",
                format!("stage `{base}`: unknown kind `{}`", rs.kind),
                &format!("{path}/kind"),
                Some(hint),
            );
            continue;
        };
        kind_of_base.insert(base.clone(), rs.kind.clone());
        let stage = reg.stage.clone();
        for (ppath, value) in param_overrides.get(&base).cloned().unwrap_or_default() {
            set_nested(&mut rs.params, &ppath, value);
        }
        // Matrix axes.
        let mut axes: Vec<(String, Vec<Json>)> = Vec::new();
        let mut matrix_ok = true;
        for (ak, av) in &rs.matrix {
            let Some(axis) = yaml_scalar_text(ak) else {
                continue;
            };
            let apath = format!("{path}/matrix/{axis}");
            let values = match av {
                Yaml::Sequence(s) => s.iter().map(to_json).collect::<Result<Vec<_>, _>>(),
                Yaml::String(s) => match interpolate(&Json::String(s.clone()), &json_vars) {
                    Ok(Json::Array(a)) => Ok(a),
                    Ok(other) => Err(format!("matrix axis `{axis}` must be a list, `{s}` is `{other}`")),
                    Err(e) => Err(e),
                },
                other => Err(format!(
                    "matrix axis `{axis}` must be a list, found `{}`",
                    serde_yaml::to_string(other).unwrap_or_default().trim()
                )),
            };
            match values {
                Ok(vs) if vs.is_empty() => {
                    cx.push("spec::empty-matrix", format!("stage `{base}`: matrix axis `{axis}` is an empty list"), &apath, Some("an empty axis would expand the stage to nothing; give at least one value or remove the axis".into()));
                    matrix_ok = false;
                }
                Ok(vs) => {
                    for v in &vs {
                        match json_scalar_text(v) {
                            Some(t) if stage_id::check(&t).is_ok() && !t.contains([',', '[', ']', '=']) => {}
                            _ => {
                                cx.push(
                                    "spec::bad-matrix",
                                    format!(
                                        "stage `{base}`: matrix value `{v}` of axis `{axis}` cannot be part of an id"
                                    ),
                                    &apath,
                                    Some("use numbers or simple strings (letters, digits, `_`, `-`, `.`)".into()),
                                );
                                matrix_ok = false;
                            }
                        }
                    }
                    axes.push((axis, vs));
                }
                Err(m) => {
                    cx.push("spec::bad-matrix", format!("stage `{base}`: {m}"), &apath, None);
                    matrix_ok = false;
                }
            }
        }
        if !matrix_ok {
            continue;
        }
        axes_of.insert(base.clone(), axes.iter().map(|a| a.0.clone()).collect());
        let combos = cartesian(&axes);
        let params_json = match to_json(&Yaml::Mapping(rs.params.clone())) {
            Ok(j) => j,
            Err(m) => {
                cx.push("spec::bad-param", format!("stage `{base}`: {m}"), &format!("{path}/params"), None);
                continue;
            }
        };
        for combo in combos {
            let id_text = if combo.is_empty() {
                base.clone()
            } else {
                let parts: Vec<String> =
                    combo.iter().map(|(a, v)| format!("{a}={}", json_scalar_text(v).unwrap_or_default())).collect();
                format!("{base}[{}]", parts.join(","))
            };
            let id: StageId = match id_text.parse() {
                Ok(id) => id,
                Err(m) => {
                    cx.push_key(
                        "spec::bad-id",
                        format!("stage id `{id_text}` is not a safe path component: {m}"),
                        &path,
                        None,
                    );
                    continue;
                }
            };
            let mut scope = json_vars.clone();
            for (a, v) in &combo {
                scope.insert(a.clone(), v.clone());
            }
            // Canonical numbers: `2.0` and `2` are the same param (and the same key).
            let params = match interpolate_params(&params_json, &scope) {
                Ok(p) => crate::key::canonical(&p),
                Err((ppath, m)) => {
                    cx.push(
                        "spec::unknown-var",
                        format!("stage `{id}`: {m}"),
                        &format!("{path}/params/{ppath}"),
                        Some(suggest_var(&m, &scope)),
                    );
                    continue;
                }
            };
            if let Err(e) = stage.validate(&params) {
                let (message, expected) = match &e {
                    s2r_stages::StageError::Params { message, expected } => {
                        (message.clone(), Some(format!("`{}` expects {expected}", rs.kind)))
                    }
                    other => (other.to_string(), None),
                };
                // Point at the param the message names, when the file has it.
                let target = message
                    .split('`')
                    .nth(1)
                    .map(|p| format!("{path}/params/{p}"))
                    .filter(|p| cx.index.has_key(p))
                    .unwrap_or_else(|| format!("{path}/params"));
                cx.push("spec::bad-param", format!("stage `{id}` ({}): {message}", rs.kind), &target, expected);
                continue;
            }
            let mut refs = Vec::new();
            for (ik, iv) in &rs.inputs {
                let Some(input) = yaml_scalar_text(ik) else {
                    continue;
                };
                let ipath = format!("{path}/inputs/{input}");
                let list: Vec<(String, String)> = match iv {
                    Yaml::String(s) => vec![(s.clone(), ipath.clone())],
                    Yaml::Sequence(seq) => seq
                        .iter()
                        .enumerate()
                        .filter_map(|(n, x)| yaml_scalar_text(x).map(|s| (s, format!("{ipath}/{n}"))))
                        .collect(),
                    _ => {
                        cx.push(
                            "spec::bad-input",
                            format!("stage `{id}`: input `{input}` must be `stage.output` or a list of them"),
                            &ipath,
                            None,
                        );
                        continue;
                    }
                };
                for (r, rpath) in list {
                    match interpolate(&Json::String(r.clone()), &scope) {
                        Ok(Json::String(s)) => refs.push((input.clone(), s, rpath)),
                        Ok(other) => refs.push((input.clone(), other.to_string(), rpath)),
                        Err(m) => cx.push(
                            "spec::unknown-var",
                            format!("stage `{id}`: {m}"),
                            &rpath,
                            Some(suggest_var(&m, &scope)),
                        ),
                    }
                }
            }
            let (location, _) = cx.at(cx.index.key(&path));
            let idx = pending.len();
            instances_of.entry(base.clone()).or_default().push(idx);
            pending.push(Pending {
                spec: StageSpec {
                    id,
                    kind: rs.kind.clone(),
                    params,
                    inputs: Vec::new(),
                    resources: Resources { cpu: rs.resources.cpu.max(1), gpu: rs.resources.gpu },
                    matrix: combo.into_iter().collect(),
                    location,
                },
                path: path.clone(),
                refs,
            });
        }
    }
    // Duplicate instance ids.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for p in &pending {
        if let Some(prev) = seen.insert(p.spec.id.to_string(), p.path.clone()) {
            let msg = format!("duplicate stage id `{}` (also declared by `{prev}`)", p.spec.id);
            cx.push_key("spec::duplicate-id", msg, &p.path, Some("rename one of them".into()));
        }
    }
    // Phase 3: resolve references.
    let by_id: HashMap<String, usize> = pending.iter().enumerate().map(|(i, p)| (p.spec.id.to_string(), i)).collect();
    let all_ids: Vec<String> = instances_of.keys().cloned().collect();
    let mut resolved: Vec<Vec<Binding>> = vec![Vec::new(); pending.len()];
    for (i, p) in pending.iter().enumerate() {
        let reg = registry.get(&p.spec.kind).expect("kind checked above");
        let accepted: Vec<&str> = reg.stage.inputs().iter().map(|d| d.name).collect();
        for (input, r, rpath) in &p.refs {
            let Some((stage_ref, output)) = r.rsplit_once('.') else {
                cx.push(
                    "spec::bad-input",
                    format!("stage `{}`: input `{input}` = `{r}` is not `stage.output`", p.spec.id),
                    rpath,
                    Some("write `<stage>.<output>` or `<stage>.*`".into()),
                );
                continue;
            };
            // Which instances does the reference mean?
            let targets: Vec<usize> = if let Some(&t) = by_id.get(stage_ref) {
                vec![t]
            } else if let Some(insts) = instances_of.get(stage_ref) {
                let axes = &axes_of[stage_ref];
                insts
                    .iter()
                    .copied()
                    .filter(|&t| {
                        axes.iter().all(|a| match p.spec.matrix.get(a) {
                            Some(v) => pending[t].spec.matrix.get(a) == Some(v),
                            None => true,
                        })
                    })
                    .collect()
            } else {
                let hint = suggest(stage_ref, all_ids.iter().map(String::as_str));
                let msg = if kind_of_base.contains_key(stage_ref) || raw_has_stage(&raw, stage_ref) {
                    format!("stage `{}`: input `{input}` refers to `{stage_ref}`, which has errors", p.spec.id)
                } else {
                    format!("stage `{}`: input `{input}` refers to unknown stage `{stage_ref}`", p.spec.id)
                };
                cx.push("spec::missing-input", msg, rpath, Some(hint));
                continue;
            };
            if targets.is_empty() {
                cx.push(
                    "spec::missing-input",
                    format!("stage `{}`: `{stage_ref}` has no instance matching this one's matrix values", p.spec.id),
                    rpath,
                    None,
                );
                continue;
            }
            let target_kind = &pending[targets[0]].spec.kind;
            let outputs: Vec<&str> =
                registry.get(target_kind).expect("checked").stage.outputs().iter().map(|o| o.name).collect();
            if output == "*" {
                // Spread: every output the consumer accepts, bound under its own name.
                let mut any = false;
                for o in &outputs {
                    if accepted.contains(o) {
                        any = true;
                        for &t in &targets {
                            resolved[i].push(Binding {
                                input: (*o).to_string(),
                                from: pending[t].spec.id.clone(),
                                output: (*o).to_string(),
                            });
                        }
                    }
                }
                if !any {
                    cx.push(
                        "spec::bad-input",
                        format!(
                            "stage `{}`: `{stage_ref}.*` binds nothing: `{target_kind}` outputs {} and `{}` accepts {}",
                            p.spec.id,
                            list(&outputs),
                            p.spec.kind,
                            list(&accepted)
                        ),
                        rpath,
                        None,
                    );
                }
                continue;
            }
            if !outputs.contains(&output) {
                cx.push(
                    "spec::unknown-output",
                    format!("stage `{}`: `{stage_ref}` ({target_kind}) has no output `{output}`", p.spec.id),
                    rpath,
                    Some(format!("its outputs are {}", list(&outputs))),
                );
                continue;
            }
            if !accepted.contains(&input.as_str()) {
                cx.push_key(
                    "spec::unknown-input",
                    format!("stage `{}` ({}) has no input `{input}`", p.spec.id, p.spec.kind),
                    &format!("{}/inputs/{input}", p.path),
                    Some(format!("its inputs are {}", list(&accepted))),
                );
                continue;
            }
            for &t in &targets {
                resolved[i].push(Binding {
                    input: input.clone(),
                    from: pending[t].spec.id.clone(),
                    output: output.to_string(),
                });
            }
        }
        for doc in reg.stage.inputs() {
            let n = resolved[i].iter().filter(|b| b.input == doc.name).count();
            let written = p.refs.iter().any(|r| r.0 == doc.name);
            if doc.required && n == 0 && !written {
                cx.push_key(
                    "spec::missing-input",
                    format!("stage `{}` ({}) needs input `{}` ({})", p.spec.id, p.spec.kind, doc.name, doc.help),
                    &p.path,
                    Some(format!("add `inputs: {{{}: <stage>.<output>}}`", doc.name)),
                );
            }
            if !doc.many && n > 1 {
                cx.push(
                    "spec::bad-input",
                    format!("stage `{}`: input `{}` takes one artifact, {n} are bound", p.spec.id, doc.name),
                    &format!("{}/inputs", p.path),
                    Some("bind a single instance, e.g. `stage[axis=value].output`".into()),
                );
            }
        }
    }
    let mut stages: Vec<StageSpec> = Vec::new();
    for (p, b) in pending.into_iter().zip(resolved) {
        let mut s = p.spec;
        s.inputs = b;
        stages.push(s);
    }
    // Cycles.
    for cycle in find_cycles(&stages) {
        let first = &stages[cycle[0]];
        let path = cycle
            .iter()
            .chain(std::iter::once(&cycle[0]))
            .map(|&i| format!("`{}`", stages[i].id))
            .collect::<Vec<_>>()
            .join(" → ");
        cx.push(
            "spec::cycle",
            format!("the stages form a cycle: {path}"),
            &format!("stages/{}/inputs", first.id.base()),
            Some("a stage cannot depend on its own outputs; break one of these input references".into()),
        );
    }
    let _ = &raw.description;
    if cx.diags.is_empty() {
        Ok(Pipeline { name, file: file.to_path_buf(), stages, cache: raw.cache.as_ref().and_then(|c| to_json(c).ok()) })
    } else {
        Err(finish(cx.diags))
    }
}

fn raw_has_stage(raw: &RawPipeline, id: &str) -> bool {
    raw.stages.keys().any(|k| yaml_scalar_text(k).as_deref() == Some(id))
}

fn list(v: &[&str]) -> String {
    if v.is_empty() {
        "nothing".into()
    } else {
        v.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
    }
}

fn suggest_var(message: &str, scope: &BTreeMap<String, Json>) -> String {
    let name = message.split('`').nth(1).unwrap_or("");
    suggest(name, scope.keys().map(String::as_str))
}

fn finish(mut diags: Vec<Diagnostic>) -> Diagnostics {
    diags.sort_by(|a, b| a.location.cmp(&b.location).then(a.message.cmp(&b.message)));
    diags.dedup();
    Diagnostics(diags)
}

/// A serde shape error (unknown key, wrong type, missing field) located in the file.
fn shape_error(cx: &mut Ctx<'_>, base: &str, sub: &str, msg: &str) {
    let join = |a: &str, b: &str| match (a.is_empty(), b.is_empty() || b == "/") {
        (true, _) => b.to_string(),
        (false, true) => a.to_string(),
        (false, false) => format!("{a}/{b}"),
    };
    let here = join(base, sub);
    if let Some(field) = msg.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
        let expected = msg.split("expected ").nth(1).unwrap_or("").to_string();
        let parent = if here.ends_with(&format!("/{field}")) || here == field {
            here.rsplit_once('/').map(|x| x.0.to_string()).unwrap_or_default()
        } else {
            here.clone()
        };
        let key_path = join(&parent, field);
        cx.push_key(
            "spec::unknown-key",
            format!("unknown key `{field}`"),
            &key_path,
            Some(format!("expected {expected}")),
        );
    } else if msg.starts_with("missing field") {
        cx.push_key("spec::missing-key", msg.to_string(), &here, None);
    } else if msg.starts_with("invalid type") || msg.starts_with("invalid value") {
        cx.push("spec::wrong-type", format!("`{}`: {msg}", here.replace('/', ".")), &here, None);
    } else {
        cx.push("spec::shape", msg.to_string(), &here, None);
    }
}

fn set_nested(map: &mut serde_yaml::Mapping, path: &[String], value: Yaml) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let key = Yaml::String(first.clone());
    if rest.is_empty() {
        map.insert(key, value);
        return;
    }
    let entry = map.entry(key).or_insert_with(|| Yaml::Mapping(Default::default()));
    if !entry.is_mapping() {
        *entry = Yaml::Mapping(Default::default());
    }
    if let Yaml::Mapping(m) = entry {
        set_nested(m, rest, value);
    }
}

fn interpolate_params(params: &Json, scope: &BTreeMap<String, Json>) -> Result<Json, (String, String)> {
    match params {
        Json::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let v = interpolate_params(v, scope)
                    .map_err(|(p, e)| (if p.is_empty() { k.clone() } else { format!("{k}/{p}") }, e))?;
                out.insert(k.clone(), v);
            }
            Ok(Json::Object(out))
        }
        Json::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                interpolate_params(v, scope)
                    .map_err(|(p, e)| (if p.is_empty() { i.to_string() } else { format!("{i}/{p}") }, e))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Json::Array),
        other => interpolate(other, scope).map_err(|e| (String::new(), e)),
    }
}

fn cartesian(axes: &[(String, Vec<Json>)]) -> Vec<Vec<(String, Json)>> {
    let mut out: Vec<Vec<(String, Json)>> = vec![Vec::new()];
    for (axis, values) in axes {
        let mut next = Vec::with_capacity(out.len() * values.len());
        for prefix in &out {
            for v in values {
                let mut c = prefix.clone();
                c.push((axis.clone(), v.clone()));
                next.push(c);
            }
        }
        out = next;
    }
    out
}

/// Every elementary cycle's members (one per strongly connected component), in dependency order.
pub fn find_cycles(stages: &[StageSpec]) -> Vec<Vec<usize>> {
    let index: HashMap<&str, usize> = stages.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
    let mut g = DiGraph::<usize, ()>::new();
    let nodes: Vec<_> = (0..stages.len()).map(|i| g.add_node(i)).collect();
    let mut self_loops = BTreeSet::new();
    let mut seen = std::collections::HashSet::new();
    for (i, s) in stages.iter().enumerate() {
        for b in &s.inputs {
            if let Some(&j) = index.get(b.from.as_str()) {
                if i == j {
                    self_loops.insert(i);
                }
                if seen.insert((j, i)) {
                    g.add_edge(nodes[j], nodes[i], ());
                }
            }
        }
    }
    let mut cycles = Vec::new();
    for scc in petgraph::algo::tarjan_scc(&g) {
        if scc.len() > 1 {
            // Walk from the first member along edges inside the component until we return.
            let members: BTreeSet<_> = scc.iter().copied().collect();
            let start = *members.iter().next().expect("non-empty");
            let mut path = vec![start];
            let mut cur = start;
            let mut visited = BTreeSet::from([start]);
            loop {
                let next = g.neighbors(cur).filter(|n| members.contains(n)).min_by_key(|n| {
                    if *n == start {
                        0
                    } else {
                        1 + n.index()
                    }
                });
                match next {
                    Some(n) if n == start => break,
                    Some(n) if visited.insert(n) => {
                        path.push(n);
                        cur = n;
                    }
                    _ => break,
                }
            }
            cycles.push(path.into_iter().map(|n| g[n]).collect());
        }
    }
    for i in self_loops {
        cycles.push(vec![i]);
    }
    cycles
}
