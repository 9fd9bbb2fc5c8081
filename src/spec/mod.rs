//! Pipeline files: YAML → raw serde structs ([`raw`]) → a validated [`Pipeline`] of stage
//! instances with resolved input bindings. Every problem is collected and reported at once, each
//! with file:line:col, the offending value and a hint.

mod bind;
mod context;
mod expand;
mod interpolate;
pub mod location;
mod overrides;
pub mod raw;
mod syntax;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use s2r_stages::Registry;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use crate::diagnostic::{suggest, Diagnostic, Diagnostics, Location};
use crate::stage_id::{self, StageId};
use context::{finish, Ctx};
use interpolate::interpolate;
use location::LocationIndex;
use raw::RawPipeline;

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
    /// The `executor:` section, if any.
    pub executor: Option<Json>,
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
    let bytes = std::fs::read(path).map_err(|e| {
        Diagnostics(vec![Diagnostic::new("spec::io", format!("cannot read pipeline `{}`: {e}", path.display()))])
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            // Point at the first byte that is not UTF-8.
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let good = std::str::from_utf8(good).expect("valid up to here");
            let (line, col) = syntax::line_col(good, good.chars().count());
            let bad = e.as_bytes()[good.len()];
            return Err(Diagnostics(vec![Diagnostic {
                code: "spec::encoding",
                message: format!("`{}` is not UTF-8 text (byte 0x{bad:02x})", path.display()),
                location: Some(Location { file: path.to_path_buf(), line, col }),
                hint: Some("pipeline files are UTF-8 YAML; is this a binary file?".into()),
                source_line: good.lines().nth(line - 1).map(str::to_string),
            }]));
        }
    };
    parse_pipeline(&text, path, overrides, registry)
}

fn yaml_scalar_text(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `--set` value: parsed as YAML (so `3`, `0.7`, `[1, 2]`, `true` get their types).
fn parse_override_value(v: &str) -> Yaml {
    serde_yaml::from_str(v).unwrap_or_else(|_| Yaml::String(v.to_string()))
}

fn to_json(v: &Yaml) -> Result<Json, String> {
    serde_json::to_value(v).map_err(|e| format!("cannot use this value: {e}"))
}

/// Parses and validates pipeline `text` (from `file`), in phases: syntax and shapes
/// ([`syntax`]), vars and `--set` overrides ([`overrides`]), stages → matrix instances
/// ([`expand`]), input references → bindings ([`bind`]), then cycles (through [`crate::graph`],
/// the one place the dependency graph is built).
pub fn parse_pipeline(
    text: &str,
    file: &Path,
    overrides: &[String],
    registry: &Registry,
) -> Result<Pipeline, Diagnostics> {
    let text = syntax::precheck(text, file)?;
    let mut cx = Ctx { file, lines: text.lines().collect(), index: LocationIndex::build(text), diags: Vec::new() };
    let raw = syntax::read(&mut cx, text)?;
    let name = raw.name.clone().unwrap_or_else(|| {
        file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "pipeline".into())
    });
    if let Err(m) = stage_id::check(&name) {
        cx.push("spec::bad-name", format!("pipeline name `{name}` is not usable: {m}"), "name", None);
    }
    let ov = overrides::apply(&mut cx, &raw, overrides);
    let expanded = expand::expand(&mut cx, &raw, registry, &ov);
    let stages = bind::bind(&mut cx, &raw, registry, expanded);
    for cycle in crate::graph::cycles(&stages) {
        let first = &stages[cycle[0]];
        cx.push(
            "spec::cycle",
            crate::graph::cycle_message(&stages, &cycle),
            &format!("stages/{}/inputs", first.id.base()),
            Some("a stage cannot depend on its own outputs; break one of these input references".into()),
        );
    }
    let _ = &raw.description;
    if cx.diags.is_empty() {
        Ok(Pipeline {
            name,
            file: file.to_path_buf(),
            stages,
            cache: raw.cache.as_ref().and_then(|c| to_json(c).ok()),
            executor: raw.executor.as_ref().and_then(|c| to_json(c).ok()),
        })
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
