//! `plan`: what a run would do and why — for each stage that would run, which param, input,
//! source, code or version changed compared with the last entry cached for the same stage id.

use std::collections::BTreeMap;

use s2r_stages::Registry;
use serde::Serialize;
use serde_json::Value;

use crate::graph::{Built, Graph};
use crate::key::Fingerprint;
use crate::key::{fingerprint, Machine};
use crate::store::{ObjectRef, Store};

/// What would happen to a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Its entry is in the cache.
    Cached,
    /// It would run.
    Run,
}

/// One stage in the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanItem {
    /// Instance id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Cached or run.
    pub action: Action,
    /// Why it would run (empty for cached stages).
    pub reasons: Vec<String>,
    /// Its key, when all inputs are known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Its outputs, when cached.
    #[serde(skip)]
    pub outputs: BTreeMap<String, ObjectRef>,
}

/// The plan of a whole pipeline, in pipeline order.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// One item per stage.
    pub stages: Vec<PlanItem>,
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                flatten(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, x, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// Human reasons why `new` differs from `old`.
pub fn diff(old: &Fingerprint, new: &Fingerprint) -> Vec<String> {
    let mut reasons = Vec::new();
    if old.kind != new.kind {
        reasons.push(format!("kind changed: `{}` → `{}`", old.kind, new.kind));
    }
    if old.code != new.code {
        reasons.push(format!(
            "code of `{}` changed ({} → {})",
            new.kind,
            &old.code[..old.code.len().min(12)],
            &new.code[..new.code.len().min(12)]
        ));
    }
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten("", &old.params, &mut a);
    flatten("", &new.params, &mut b);
    for (k, v) in &b {
        match a.get(k) {
            None => reasons.push(format!("param `{k}` added: {v}")),
            Some(o) if o != v => {
                if o.as_str().is_some_and(|s| s.starts_with("source:")) {
                    reasons.push(format!("source data of param `{k}` changed"));
                } else {
                    reasons.push(format!("param `{k}` changed: {o} → {v}"));
                }
            }
            _ => {}
        }
    }
    for k in a.keys().filter(|k| !b.contains_key(*k)) {
        reasons.push(format!("param `{k}` removed"));
    }
    if old.sources != new.sources && !reasons.iter().any(|r| r.starts_with("source data")) {
        reasons.push("source data changed".into());
    }
    for (name, refs) in &new.inputs {
        match old.inputs.get(name) {
            None => reasons.push(format!("input `{name}` added")),
            Some(o) if o != refs => {
                let from: Vec<String> = refs.iter().map(|r| format!("`{}.{}`", r.from, r.output)).collect();
                reasons.push(format!("input `{name}` changed (content of {})", from.join(", ")));
            }
            _ => {}
        }
    }
    for name in old.inputs.keys().filter(|k| !new.inputs.contains_key(*k)) {
        reasons.push(format!("input `{name}` removed"));
    }
    if old.global != new.global {
        reasons.push(format!("library versions changed: {} → {}", old.global, new.global));
    }
    if old.device != new.device {
        reasons.push(format!("device changed: {} → {}", old.device, new.device));
    }
    if old.version != new.version {
        reasons.push("cache key version changed".into());
    }
    reasons
}

/// Plans `graph` against `store` without running or reading any artifact.
pub fn plan(graph: &Graph<Built>, registry: &Registry, store: &Store, machine: Machine) -> Plan {
    let mut items: Vec<Option<PlanItem>> = vec![None; graph.len()];
    let name = &graph.pipeline().name;
    for &i in graph.topo() {
        let spec = graph.stage(i);
        let upstream_runs: Vec<String> = graph
            .dependencies(i)
            .into_iter()
            .filter(|&d| items[d].as_ref().is_some_and(|x| x.action == Action::Run))
            .map(|d| graph.stage(d).id.to_string())
            .collect();
        let mut item = PlanItem {
            id: spec.id.to_string(),
            kind: spec.kind.clone(),
            action: Action::Run,
            reasons: vec![],
            key: None,
            outputs: BTreeMap::new(),
        };
        if !upstream_runs.is_empty() {
            item.reasons.push(format!(
                "upstream {} will run (this stage stays cached if their outputs come out identical)",
                upstream_runs.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
            ));
            items[i] = Some(item);
            continue;
        }
        let lookup = |id: &str| -> Option<BTreeMap<String, ObjectRef>> {
            graph.index_of(id).and_then(|d| items[d].as_ref().map(|x| x.outputs.clone()))
        };
        match fingerprint(graph, registry, store, i, &lookup, machine) {
            Err(e) => item.reasons.push(format!("cannot compute its key: {e}")),
            Ok(fp) => {
                let key = fp.key();
                item.key = Some(key.clone());
                match store.entry(&key).ok().flatten().filter(|m| store.objects_present(m)) {
                    Some(m) => {
                        item.action = Action::Cached;
                        item.outputs = m.outputs;
                    }
                    None => match store.last(name, spec.id.as_str()) {
                        None => item.reasons.push("never run".into()),
                        Some(last) if last.key == key => {
                            item.reasons.push("its cache entry or objects are gone (evicted or corrupt)".into())
                        }
                        Some(last) => {
                            let r = diff(&last.fingerprint, &fp);
                            if r.is_empty() {
                                item.reasons.push("key changed".into());
                            }
                            item.reasons.extend(r);
                        }
                    },
                }
            }
        }
        items[i] = Some(item);
    }
    let _ = store.save_stat_cache();
    Plan { stages: items.into_iter().map(|x| x.expect("every stage planned in topo order")).collect() }
}

impl Plan {
    /// Text rendering: one line per stage, reasons indented.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let runs = self.stages.iter().filter(|s| s.action == Action::Run).count();
        for s in &self.stages {
            match s.action {
                Action::Cached => out.push_str(&format!("  cached  {}\n", s.id)),
                Action::Run => {
                    out.push_str(&format!("  run     {}\n", s.id));
                    for r in &s.reasons {
                        out.push_str(&format!("            - {r}\n"));
                    }
                }
            }
        }
        out.push_str(&format!("{runs} of {} stages would run\n", self.stages.len()));
        out
    }
}
