//! Phase 2: stages → instances. Each stage's matrix axes are expanded (their cartesian product,
//! in declaration order), vars and matrix values interpolated into params and input references,
//! params validated by the stage kind, and instance ids checked for duplicates.

use std::collections::BTreeMap;

use s2r_stages::Registry;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use super::context::{shape_error, Ctx};
use super::interpolate::interpolate;
use super::overrides::Overrides;
use super::raw::{RawPipeline, RawStage};
use super::{cartesian, interpolate_params, set_nested, suggest_var, to_json, yaml_scalar_text};
use super::{Resources, StageSpec};
use crate::diagnostic::{suggest, Diagnostic};
use crate::stage_id::{self, StageId};
use s2r_stages::api::artifact::matrix_text;

/// An instance whose input references are not resolved yet.
pub(super) struct Pending {
    pub(super) spec: StageSpec,
    /// YAML path of its stage (`stages/<base>`).
    pub(super) path: String,
    /// (input name, reference, YAML path).
    pub(super) refs: Vec<(String, String, String)>,
}

/// Every instance, and per stage its instances, matrix axes and kind.
pub(super) struct Expanded {
    pub(super) pending: Vec<Pending>,
    pub(super) instances_of: BTreeMap<String, Vec<usize>>,
    pub(super) axes_of: BTreeMap<String, Vec<String>>,
    pub(super) kind_of_base: BTreeMap<String, String>,
}

/// Expands every stage of `raw` into its instances.
/// The most instances one stage's matrix may make (the paper's whole grid is a few thousand).
pub const MAX_INSTANCES: usize = 10_000;
/// The most stage instances one pipeline may have.
pub const MAX_PIPELINE_INSTANCES: usize = 50_000;

pub(super) fn expand(cx: &mut Ctx<'_>, raw: &RawPipeline, registry: &Registry, ov: &Overrides) -> Expanded {
    let mut pending: Vec<Pending> = Vec::new();
    let mut instances_of: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut axes_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut kind_of_base: BTreeMap<String, String> = BTreeMap::new();
    let mut total_instances = 0usize;
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
                shape_error(cx, &path, &sub, &msg);
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
        let sets = ov.params.get(&base).cloned().unwrap_or_default();
        let file_params = to_json(&Yaml::Mapping(rs.params.clone())).ok();
        for (ppath, value, _) in &sets {
            set_nested(&mut rs.params, ppath, value.clone());
        }
        let Some(axes) = matrix_axes(cx, &base, &path, &rs, &ov.vars) else {
            continue;
        };
        axes_of.insert(base.clone(), axes.iter().map(|a| a.0.clone()).collect());
        let n = axes.iter().try_fold(1usize, |acc, a| acc.checked_mul(a.1.len())).unwrap_or(usize::MAX);
        if n > MAX_INSTANCES || total_instances.saturating_add(n) > MAX_PIPELINE_INSTANCES {
            let sizes: Vec<String> = axes.iter().map(|a| format!("{} {}", a.1.len(), a.0)).collect();
            cx.push(
                "spec::too-many-instances",
                format!(
                    "stage `{base}`: its matrix ({}) makes {} instances; at most {MAX_INSTANCES} per stage and {MAX_PIPELINE_INSTANCES} per pipeline",
                    sizes.join(" × "),
                    if n == usize::MAX { "more than 2^64".to_string() } else { n.to_string() }
                ),
                &format!("{path}/matrix"),
                Some("split the grid into several pipelines, or over fewer axes".into()),
            );
            continue;
        }
        total_instances += n;
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
                    combo.iter().map(|(a, v)| format!("{a}={}", matrix_text(v).unwrap_or_default())).collect();
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
            let mut scope = ov.vars.clone();
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
                // An error that only the `--set`s cause is theirs: name them, not the file.
                let file_ok = !sets.is_empty()
                    && file_params
                        .as_ref()
                        .and_then(|f| interpolate_params(f, &scope).ok())
                        .is_some_and(|f| stage.validate(&crate::key::canonical(&f)).is_ok());
                if file_ok {
                    let given: Vec<String> = sets.iter().map(|s| format!("`--set {}`", s.2)).collect();
                    let mut d = Diagnostic::new(
                        "spec::bad-set",
                        format!("{}: stage `{id}` ({}): {message}", given.join(", "), rs.kind),
                    );
                    d.hint = expected;
                    cx.diags.push(d);
                    continue;
                }
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
            let mut resources = Resources { cpu: rs.resources.cpu.max(1), gpu: rs.resources.gpu, ..Default::default() };
            let mut bad_resource = false;
            for (field, value) in [("mem", &rs.resources.mem), ("time", &rs.resources.time)] {
                let Some(value) = value else { continue };
                let parsed = to_json(value).map_err(|e| e.to_string()).and_then(|v| {
                    if field == "mem" {
                        super::parse_mem(&v)
                    } else {
                        super::parse_time(&v)
                    }
                });
                match (field, parsed) {
                    ("mem", Ok(mb)) => resources.mem_mb = Some(mb),
                    (_, Ok(s)) => resources.time_s = Some(s),
                    (_, Err(m)) => {
                        cx.push(
                            "spec::bad-resource",
                            format!("stage `{id}`: resources.{field}: {m}"),
                            &format!("{path}/resources/{field}"),
                            None,
                        );
                        bad_resource = true;
                    }
                }
            }
            if bad_resource {
                continue;
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
                    resources,
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
    Expanded { pending, instances_of, axes_of, kind_of_base }
}

/// The matrix axes of stage `base` (at YAML `path`) with their values, each value checked to be
/// usable in an instance id; `None` (with diagnostics) when an axis is unusable.
fn matrix_axes(
    cx: &mut Ctx<'_>,
    base: &str,
    path: &str,
    rs: &RawStage,
    vars: &BTreeMap<String, Json>,
) -> Option<Vec<(String, Vec<Json>)>> {
    let mut axes: Vec<(String, Vec<Json>)> = Vec::new();
    let mut matrix_ok = true;
    for (ak, av) in &rs.matrix {
        let Some(axis) = yaml_scalar_text(ak) else {
            continue;
        };
        let apath = format!("{path}/matrix/{axis}");
        let values = match av {
            Yaml::Sequence(s) => s.iter().map(to_json).collect::<Result<Vec<_>, _>>(),
            Yaml::String(s) => match interpolate(&Json::String(s.clone()), vars) {
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
                cx.push(
                    "spec::empty-matrix",
                    format!("stage `{base}`: matrix axis `{axis}` is an empty list"),
                    &apath,
                    Some(
                        "an empty axis would expand the stage to nothing; give at least one value or remove the axis"
                            .into(),
                    ),
                );
                matrix_ok = false;
            }
            Ok(vs) => {
                for v in &vs {
                    match matrix_text(v) {
                        Some(t) if stage_id::check(&t).is_ok() && !t.contains([',', '[', ']', '=']) => {}
                        _ => {
                            cx.push(
                                "spec::bad-matrix",
                                format!("stage `{base}`: matrix value `{v}` of axis `{axis}` cannot be part of an id"),
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
    matrix_ok.then_some(axes)
}
