//! `StageId`: a stage instance id, validated to be safe as a path component.

use std::fmt;
use std::str::FromStr;

/// A stage instance id such as `split` or `train[method=s2r,seed=3]`.
///
/// Safe as a path component: non-empty, at most 200 bytes, only ASCII letters, digits and
/// `_ - . [ ] = ,`; not starting with `.` or `-`; no `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StageId(String);

impl StageId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id without its matrix part: `train[seed=1]` → `train`.
    pub fn base(&self) -> &str {
        self.0.split('[').next().unwrap_or(&self.0)
    }
}

/// Why a string is not a valid id.
pub fn check(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("an id cannot be empty".into());
    }
    if s.len() > 200 {
        return Err("an id must be at most 200 bytes".into());
    }
    if s.starts_with('.') || s.starts_with('-') || s.contains("..") {
        return Err("an id cannot start with `.` or `-` or contain `..`".into());
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || "_-.[]=,".contains(*c))) {
        return Err(format!("`{}` is not allowed in an id (use letters, digits, `_`, `-`, `.`)", c.escape_default()));
    }
    Ok(())
}

impl FromStr for StageId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        check(s)?;
        Ok(StageId(s.to_string()))
    }
}

impl TryFrom<String> for StageId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<StageId> for String {
    fn from(id: StageId) -> String {
        id.0
    }
}

impl fmt::Display for StageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_safe_path_components() {
        for ok in ["split", "train[method=s2r,seed=3]", "a-b_c.d"] {
            assert!(ok.parse::<StageId>().is_ok(), "{ok}");
        }
        for bad in ["", "../x", "a/b", ".hidden", "a..b", "x y", "-x", "a\\b"] {
            assert!(bad.parse::<StageId>().is_err(), "{bad}");
        }
        assert_eq!("train[seed=1]".parse::<StageId>().unwrap().base(), "train");
    }
}
