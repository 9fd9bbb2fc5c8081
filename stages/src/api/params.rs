//! Typed params: deserialize a stage's params object into its `Params` struct and turn serde's
//! complaint into a message that lists what the stage expects.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::api::docs::ParamDoc;
use crate::api::error::StageError;

/// Deserializes `params` (a JSON object; `null` = empty) into `T`, with a hint built from `docs`.
pub fn parse<T: DeserializeOwned>(params: &Value, docs: &[ParamDoc]) -> Result<T, StageError> {
    let value = if params.is_null() { Value::Object(Default::default()) } else { params.clone() };
    serde_json::from_value(value).map_err(|e| StageError::Params { message: e.to_string(), expected: expected(docs) })
}

/// `params` parsed into `T` and written back: every param with its default filled in, in one
/// canonical shape (what goes into cache keys, so writing a default out changes nothing).
pub fn normalized<T: DeserializeOwned + Serialize>(params: &Value, docs: &[ParamDoc]) -> Result<Value, StageError> {
    let typed: T = parse(params, docs)?;
    serde_json::to_value(typed).map_err(|e| StageError::Failed(format!("params do not serialize: {e}")))
}

/// A bad-value error with the expected params listed.
pub fn invalid(message: impl Into<String>, docs: &[ParamDoc]) -> StageError {
    StageError::Params { message: message.into(), expected: expected(docs) }
}

/// `name: type (default x) — help; ...` for every param.
pub fn expected(docs: &[ParamDoc]) -> String {
    if docs.is_empty() {
        return "no params".to_string();
    }
    docs.iter()
        .map(|d| match d.default {
            Some(def) => format!("`{}`: {} (default {def})", d.name, d.ty),
            None => format!("`{}`: {} (required)", d.name, d.ty),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
