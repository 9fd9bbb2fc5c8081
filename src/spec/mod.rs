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

/// Slots a stage needs. `mem` and `time` are what a cluster executor asks for (Slurm's `--mem`
/// and `--time`); the local executors do not enforce them. None of them enters a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    /// CPU threads.
    pub cpu: usize,
    /// GPUs.
    pub gpu: usize,
    /// Memory in megabytes.
    pub mem_mb: Option<u64>,
    /// Wall-time limit in seconds.
    pub time_s: Option<u64>,
}

/// `mem` as written → megabytes: a number is megabytes; a suffix K, M, G or T (an optional `B`,
/// any case) scales it.
pub fn parse_mem(v: &serde_json::Value) -> Result<u64, String> {
    let bad = || format!("`{v}` is not a memory size (e.g. 512, 512M, 4G)");
    if let Some(n) = v.as_u64() {
        return (n > 0).then_some(n).ok_or_else(bad);
    }
    let s = v.as_str().ok_or_else(bad)?.trim().to_ascii_uppercase();
    let s = s.strip_suffix('B').unwrap_or(&s);
    let (num, scale) = match s.chars().last() {
        Some('K') => (&s[..s.len() - 1], 1.0 / 1024.0),
        Some('M') => (&s[..s.len() - 1], 1.0),
        Some('G') => (&s[..s.len() - 1], 1024.0),
        Some('T') => (&s[..s.len() - 1], 1024.0 * 1024.0),
        _ => (s, 1.0),
    };
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    let mb = (n * scale).ceil();
    (n.is_finite() && (1.0..1e12).contains(&mb)).then_some(mb as u64).ok_or_else(bad)
}

/// `time` as written → seconds: a number is minutes (as Slurm's `--time`); `MM:SS`, `HH:MM:SS`,
/// `D-HH`, `D-HH:MM`, `D-HH:MM:SS` as Slurm reads them; or a duration such as `90s`, `30m`, `2h`.
pub fn parse_time(v: &serde_json::Value) -> Result<u64, String> {
    let bad = || format!("`{v}` is not a time limit (e.g. 30, 10:00, 2:00:00, 1-00:00:00, 90s, 2h)");
    if let Some(n) = v.as_u64() {
        return (n > 0).then_some(n * 60).ok_or_else(bad);
    }
    let s = v.as_str().ok_or_else(bad)?.trim();
    if s.ends_with(|c: char| c.is_ascii_alphabetic()) {
        let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let n: u64 = n.parse().map_err(|_| bad())?;
        let scale = match unit {
            "s" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        return (n > 0).then_some(n * scale).ok_or_else(bad);
    }
    let num = |x: &str| x.parse::<u64>().map_err(|_| bad());
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(num(d)?), r),
        None => (None, s),
    };
    let parts: Vec<u64> = rest.split(':').map(num).collect::<Result<_, _>>()?;
    let secs = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, s]) => m * 60 + s,
        (None, [h, m, s]) => h * 3600 + m * 60 + s,
        (Some(d), [h]) => d * 86400 + h * 3600,
        (Some(d), [h, m]) => d * 86400 + h * 3600 + m * 60,
        (Some(d), [h, m, s]) => d * 86400 + h * 3600 + m * 60 + s,
        _ => return Err(bad()),
    };
    (secs > 0).then_some(secs).ok_or_else(bad)
}

/// Seconds → Slurm's `--time` (`D-HH:MM:SS`).
pub fn slurm_time(secs: u64) -> String {
    format!("{}-{:02}:{:02}:{:02}", secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60)
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

#[cfg(test)]
mod resource_tests {
    use super::{parse_mem, parse_time, slurm_time};
    use serde_json::json;

    #[test]
    fn memory_and_time_limits_read_as_slurm_reads_them() {
        assert_eq!(parse_mem(&json!(512)), Ok(512));
        assert_eq!(parse_mem(&json!("512M")), Ok(512));
        assert_eq!(parse_mem(&json!("4G")), Ok(4096));
        assert_eq!(parse_mem(&json!("1.5gb")), Ok(1536));
        assert_eq!(parse_mem(&json!("100K")), Ok(1));
        assert!(
            parse_mem(&json!("0")).is_err() && parse_mem(&json!("lots")).is_err() && parse_mem(&json!(-1)).is_err()
        );
        assert_eq!(parse_time(&json!(30)), Ok(1800));
        assert_eq!(parse_time(&json!("10:30")), Ok(630));
        assert_eq!(parse_time(&json!("2:00:00")), Ok(7200));
        assert_eq!(parse_time(&json!("1-12")), Ok(129_600));
        assert_eq!(parse_time(&json!("1-00:00:05")), Ok(86_405));
        assert_eq!(parse_time(&json!("90s")), Ok(90));
        assert_eq!(parse_time(&json!("2h")), Ok(7200));
        assert!(parse_time(&json!("1:2:3:4")).is_err() && parse_time(&json!("0")).is_err());
        assert!(parse_time(&json!("5y")).is_err() && parse_time(&json!(true)).is_err());
        assert_eq!(slurm_time(86_405), "1-00:00:05");
        assert_eq!(slurm_time(630), "0-00:10:30");
    }
}
