//! Every documented default is the real one, and every param a stage parses is documented: for
//! each built-in kind, its params with defaults filled in (what the cache key holds) are compared
//! with its `ParamDoc`s. A descriptive default ("none", "5 or 10 from the data") documents an
//! unset optional value.

use serde_json::{json, Value};

/// Values for the params a kind requires.
fn required(kind: &str, name: &str, ty: &str) -> Value {
    match name {
        "path" => json!("data/somewhere"),
        "sim" => json!("A"),
        "real" => json!("B"),
        "x_axis" => json!("seed"),
        "method" if ty.contains(" | ") => json!(ty.split(" | ").next().unwrap().trim()),
        "method" => json!("label"),
        "policy" if ty.contains(" | ") => json!(ty.split(" | ").next().unwrap().trim()),
        _ => panic!("{kind}: no sample value for required param `{name}`"),
    }
}

fn same(doc: &Value, real: &Value) -> bool {
    match (doc, real) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            (a - b).abs() <= 1e-6 * a.abs().max(1.0)
        }
        _ => doc == real,
    }
}

fn unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

#[test]
fn documented_defaults_are_the_real_defaults_for_every_param_of_every_kind() {
    let mut bad = Vec::new();
    let mut checked = 0;
    for stage in s2r_stages::registry::builtin_stages() {
        let kind = stage.kind();
        let mut p = serde_json::Map::new();
        for d in stage.params().iter().filter(|d| d.default.is_none()) {
            p.insert(d.name.to_string(), required(kind, d.name, d.ty));
        }
        let normalized = match stage.normalize(&Value::Object(p.clone())) {
            Ok(v) => v,
            Err(e) => panic!("{kind}: {e}"),
        };
        let Value::Object(real) = normalized else { panic!("{kind}: params are not an object") };
        for key in real.keys() {
            if !stage.params().iter().any(|d| d.name == key) {
                bad.push(format!("{kind}: param `{key}` is parsed but not documented"));
            }
        }
        for d in stage.params() {
            let Some(default) = d.default else { continue };
            let Some(v) = real.get(d.name) else {
                // An optional param added after caches existed is left out of the normalized
                // params while unset (every older cache key stays valid); it must then be
                // documented with a descriptive default and be accepted by the parser.
                let descriptive = serde_yaml::from_str::<Value>(default).ok().is_none_or(|x| x.is_string());
                let mut with = p.clone();
                with.insert(d.name.to_string(), Value::Null);
                if descriptive && stage.normalize(&Value::Object(with)).is_ok() {
                    continue;
                }
                bad.push(format!("{kind}: `{}` is documented but not a param", d.name));
                continue;
            };
            checked += 1;
            let doc: Option<Value> = serde_yaml::from_str::<Value>(default).ok();
            let ok = match &doc {
                _ if unset(v) => doc.as_ref().is_none_or(|x| unset(x) || x.is_string()),
                Some(x) => same(x, v),
                None => false,
            };
            if !ok {
                bad.push(format!("{kind}: `{}` is documented as `{default}`, the real default is {v}", d.name));
            }
        }
        // Writing the defaults out changes nothing.
        let again = stage.normalize(&Value::Object(real.clone())).unwrap();
        assert_eq!(again, Value::Object(real), "{kind}: normalize is not idempotent");
    }
    assert!(checked > 60, "only {checked} defaults checked");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn a_bad_method_or_metric_is_a_validation_error_listing_the_choices() {
    let reg = s2r_stages::Registry::builtin();
    let train = &reg.get("irs.train").unwrap().stage;
    let e = train.validate(&json!({"method": "dqn"})).unwrap_err().to_string();
    assert!(e.contains("dqn_r") && e.contains("s2r_no_rep") && e.contains("oracle"), "{e}");
    let e = train.validate(&json!({"method": "s2r", "clf_sim_data": "replay"})).unwrap_err().to_string();
    assert!(e.contains("rollouts") && e.contains("logs"), "{e}");
    let e = reg.get("select.best").unwrap().stage.validate(&json!({"metric": "ndcg"})).unwrap_err().to_string();
    assert!(e.contains("reward") && e.contains("f1"), "{e}");
}
