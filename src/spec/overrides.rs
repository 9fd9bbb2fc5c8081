//! Vars and `--set` overrides: `name=value` replaces a var, `stage.param=value` (or
//! `stage.a.b=value`) a param of every instance of that stage.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use super::context::Ctx;
use super::raw::RawPipeline;
use super::{parse_override_value, to_json, yaml_scalar_text};
use crate::diagnostic::{suggest, Diagnostic};

/// The pipeline's vars after overrides, and the param overrides per stage.
pub(super) struct Overrides {
    /// Var name → value (JSON).
    pub(super) vars: BTreeMap<String, Json>,
    /// Stage id → (param path, value, the `--set` as written).
    pub(super) params: HashMap<String, Vec<(Vec<String>, Yaml, String)>>,
}

/// Applies `overrides` to the vars of `raw`, collecting the param overrides.
pub(super) fn apply(cx: &mut Ctx<'_>, raw: &RawPipeline, overrides: &[String]) -> Overrides {
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
    let mut param_overrides: HashMap<String, Vec<(Vec<String>, Yaml, String)>> = HashMap::new();
    for o in overrides {
        let Some((key, value)) = o.split_once('=') else {
            cx.diags.push(
                Diagnostic::new("spec::bad-set", format!("`--set {o}` is not `key=value`"))
                    .with_hint("e.g. `--set seed=3` or `--set split.seed=3`"),
            );
            continue;
        };
        let key = key.trim();
        if let Err((_, col)) = super::syntax::check_depth(value) {
            cx.diags.push(
                Diagnostic::new(
                    "spec::bad-set",
                    format!(
                        "`--set {key}=…`: the value nests more than {} levels (at character {col})",
                        super::syntax::MAX_DEPTH
                    ),
                )
                .with_hint("give a scalar or a short list"),
            );
            continue;
        }
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
        param_overrides.entry(stage).or_default().push((
            param.split('.').map(str::to_string).collect(),
            value,
            o.clone(),
        ));
    }
    let json_vars: BTreeMap<String, Json> =
        vars.iter().filter_map(|(k, v)| to_json(v).ok().map(|j| (k.clone(), j))).collect();

    Overrides { vars: json_vars, params: param_overrides }
}
