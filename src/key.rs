//! Cache keys: blake3 over a canonical serialization of everything a stage run depends on.

use std::collections::BTreeMap;

use s2r_stages::api::device::{cuda_device_count, global_fingerprint};
use s2r_stages::Registry;
use serde::Serialize;
use serde_json::Value;

use crate::graph::{Built, Graph};
use crate::spec::StageSpec;
use crate::store::{ObjectRef, Store};

/// The devices of the machine keys are computed for (and stages are placed on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    /// Usable CUDA devices (GPU slots).
    pub gpus: usize,
}

impl Machine {
    /// This machine: its CUDA devices (0 without the `torch` feature).
    pub fn detect() -> Self {
        Self { gpus: cuda_device_count() }
    }

    /// A machine with `gpus` CUDA devices (tests fake one; `--gpus 0` forces the CPU).
    pub fn with_gpus(gpus: usize) -> Self {
        Self { gpus }
    }

    /// Whether `spec` takes a GPU slot here: it asks for one and the machine has one.
    pub fn on_gpu(&self, spec: &StageSpec) -> bool {
        spec.resources.gpu > 0 && self.gpus > 0
    }

    /// Where `spec` runs here, as the device class in its key: `cuda` for a stage asking for a
    /// GPU when there is one, else `cpu`.
    pub fn device_class(&self, spec: &StageSpec) -> &'static str {
        if self.on_gpu(spec) {
            "cuda"
        } else {
            "cpu"
        }
    }
}

/// Bump to invalidate every cache entry (a change of key or manifest semantics).
pub const KEY_VERSION: u32 = 1;

/// One input artifact in a key: who produced it and its content hash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct InputRef {
    /// Producing stage instance.
    pub from: String,
    /// Producer's output name.
    pub output: String,
    /// Content hash of the artifact.
    pub hash: String,
}

/// Everything a stage run's result depends on. Serialized canonically and hashed.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Fingerprint {
    /// [`KEY_VERSION`].
    pub version: u32,
    /// Stage kind.
    pub kind: String,
    /// Build-time code fingerprint of the stage's source.
    pub code: String,
    /// Canonical params (sorted keys, normalized numbers), with source paths replaced by content.
    pub params: Value,
    /// Source files/dirs the stage reads: param path → content hash.
    pub sources: BTreeMap<String, String>,
    /// Input name → artifacts bound to it, in binding order.
    pub inputs: BTreeMap<String, Vec<InputRef>>,
    /// Library versions that change results.
    pub global: String,
    /// Device class (`cpu`/`cuda`) where it changes results.
    pub device: String,
}

impl Fingerprint {
    /// The cache key (blake3 hex).
    pub fn key(&self) -> String {
        let mut h = blake3::Hasher::new();
        let bytes = serde_json::to_vec(&canonical_fingerprint(self)).expect("fingerprints serialize");
        h.update(&bytes);
        h.finalize().to_hex().to_string()
    }
}

fn canonical_fingerprint(f: &Fingerprint) -> Value {
    canonical(&serde_json::to_value(f).expect("fingerprints serialize"))
}

/// Canonical form of a JSON value: object keys sorted; floats with an integral value written as
/// integers (so `1.0` and `1` key the same); other floats in shortest round-trip form.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, canonical(v))).collect();
            let mut out = serde_json::Map::new();
            for (k, v) in sorted {
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    return Value::from(f as i64);
                }
            }
            v.clone()
        }
        other => other.clone(),
    }
}

/// The key material of a stage whose dependencies are done, or why it cannot be computed.
///
/// The one place a key is computed: `run`, `plan`, `cat`, `path` and `cache gc|push|pull` all
/// call it with the same [`Machine`], so they agree on every key (the device class of a GPU stage
/// depends on the machine's GPUs). Params enter with their defaults filled in by the stage, so
/// writing a default out explicitly does not change a key.
pub fn fingerprint(
    graph: &Graph<Built>,
    registry: &Registry,
    store: &Store,
    idx: usize,
    upstream: &dyn Fn(&str) -> Option<BTreeMap<String, ObjectRef>>,
    machine: Machine,
) -> Result<Fingerprint, String> {
    let spec = graph.stage(idx);
    let reg = registry.get(&spec.kind).ok_or_else(|| format!("unknown kind `{}`", spec.kind))?;
    let mut params = reg.stage.normalize(&spec.params).map_err(|e| format!("params of `{}`: {e}", spec.id))?;
    let mut sources = BTreeMap::new();
    let srcs = reg.stage.sources(&spec.params).map_err(|e| format!("sources of `{}`: {e}", spec.id))?;
    for src in srcs {
        let h = store.hash_source(&src).map_err(|e| format!("source `{}`: {e}", src.path.display()))?;
        let text = src.path.to_string_lossy().into_owned();
        replace_string(&mut params, &text, &format!("source:{h}"));
        sources.insert(text, h);
    }
    // Source paths are keyed by content, so the same data under another path hits the cache.
    let sources: BTreeMap<String, String> =
        sources.into_values().enumerate().map(|(i, h)| (format!("source{i}"), h)).collect();
    let mut inputs: BTreeMap<String, Vec<InputRef>> = BTreeMap::new();
    for b in &spec.inputs {
        let outs = upstream(b.from.as_str()).ok_or_else(|| format!("upstream `{}` has no result", b.from))?;
        let o =
            outs.get(&b.output).ok_or_else(|| format!("upstream `{}` produced no output `{}`", b.from, b.output))?;
        inputs.entry(b.input.clone()).or_default().push(InputRef {
            from: b.from.to_string(),
            output: b.output.clone(),
            hash: o.hash.clone(),
        });
    }
    let device = machine.device_class(spec);
    Ok(Fingerprint {
        version: KEY_VERSION,
        kind: spec.kind.clone(),
        code: reg.fingerprint.clone(),
        params: canonical(&params),
        sources,
        inputs,
        global: global_fingerprint(reg.stage.needs_torch()),
        device: device.to_string(),
    })
}

fn replace_string(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s == from => *s = to.to_string(),
        Value::Array(a) => a.iter_mut().for_each(|x| replace_string(x, from, to)),
        Value::Object(m) => m.values_mut().for_each(|x| replace_string(x, from, to)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fp(params: Value) -> Fingerprint {
        Fingerprint {
            version: KEY_VERSION,
            kind: "k".into(),
            code: "c".into(),
            params,
            sources: BTreeMap::new(),
            inputs: BTreeMap::new(),
            global: "g".into(),
            device: "cpu".into(),
        }
    }

    #[test]
    fn key_ignores_map_order_and_number_spelling() {
        let a = fp(serde_json::from_str(r#"{"a": 1.0, "b": {"x": 2, "y": [1, 2.5]}}"#).unwrap());
        let b = fp(serde_json::from_str(r#"{"b": {"y": [1, 2.5], "x": 2.0}, "a": 1}"#).unwrap());
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), fp(json!({"a": 1.5, "b": {"x": 2, "y": [1, 2.5]}})).key());
    }

    #[test]
    fn every_field_changes_the_key() {
        let base = fp(json!({"a": 1}));
        let mut v = vec![];
        let mut f = base.clone();
        f.kind = "k2".into();
        v.push(f);
        let mut f = base.clone();
        f.code = "c2".into();
        v.push(f);
        let mut f = base.clone();
        f.global = "g2".into();
        v.push(f);
        let mut f = base.clone();
        f.device = "cuda".into();
        v.push(f);
        let mut f = base.clone();
        f.inputs.insert("x".into(), vec![InputRef { from: "s".into(), output: "o".into(), hash: "h".into() }]);
        v.push(f);
        let mut f = base.clone();
        f.sources.insert("path".into(), "h".into());
        v.push(f);
        for f in v {
            assert_ne!(f.key(), base.key());
        }
    }
}
