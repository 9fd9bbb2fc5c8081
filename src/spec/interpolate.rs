//! `${name}` interpolation of vars and matrix values into params and input references.

use std::collections::BTreeMap;

use serde_json::Value;

/// Interpolates `value` (only strings change). A string that is exactly `${x}` takes x's value
/// with its type (a list stays a list); `${x}` inside a longer string is replaced by x's text.
pub fn interpolate(value: &Value, scope: &BTreeMap<String, Value>) -> Result<Value, String> {
    let Value::String(s) = value else {
        return Ok(value.clone());
    };
    if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        if !name.contains(['$', '{', '}']) {
            return scope.get(name.trim()).cloned().ok_or_else(|| format!("unknown var `{}` in `{s}`", name.trim()));
        }
    }
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("unclosed `${{` in `{s}`"))?;
        let name = after[..end].trim();
        match scope.get(name) {
            Some(Value::String(v)) => out.push_str(v),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => out.push_str(&v.to_string()),
            Some(_) => return Err(format!("var `{name}` is a list or map and cannot be placed inside the text `{s}`")),
            None => return Err(format!("unknown var `{name}` in `{s}`")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_strings_keep_their_type() {
        let scope = BTreeMap::from([
            ("seeds".to_string(), json!([1, 2])),
            ("m".to_string(), json!("s2r")),
            ("a".to_string(), json!(0.8)),
        ]);
        assert_eq!(interpolate(&json!("${seeds}"), &scope).unwrap(), json!([1, 2]));
        assert_eq!(interpolate(&json!("train[method=${m}].w"), &scope).unwrap(), json!("train[method=s2r].w"));
        assert_eq!(interpolate(&json!("a=${a}"), &scope).unwrap(), json!("a=0.8"));
        assert!(interpolate(&json!("${nope}"), &scope).unwrap_err().contains("unknown var `nope`"));
        assert!(interpolate(&json!("x ${seeds}"), &scope).is_err());
    }
}
