//! Cache keys: blake3 over a canonical serialization of everything a stage run depends on.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

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
