//! Where diagnostics point: the file, its lines and the YAML location index of a pipeline being
//! parsed, and the diagnostics collected so far.

use std::path::Path;

use super::location::LocationIndex;
use crate::diagnostic::{Diagnostic, Diagnostics, Location};

pub(super) struct Ctx<'a> {
    pub(super) file: &'a Path,
    pub(super) lines: Vec<&'a str>,
    pub(super) index: LocationIndex,
    pub(super) diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    pub(super) fn at(&self, pos: Option<(usize, usize)>) -> (Option<Location>, Option<String>) {
        match pos {
            Some((line, col)) => (
                Some(Location { file: self.file.to_path_buf(), line, col }),
                self.lines.get(line.saturating_sub(1)).map(|l| l.to_string()),
            ),
            None => (None, None),
        }
    }

    pub(super) fn push(&mut self, code: &'static str, message: String, path: &str, hint: Option<String>) {
        let (location, source_line) = self.at(self.index.value(path));
        self.diags.push(Diagnostic { code, message, location, hint, source_line });
    }

    pub(super) fn push_key(&mut self, code: &'static str, message: String, path: &str, hint: Option<String>) {
        let (location, source_line) = self.at(self.index.key(path));
        self.diags.push(Diagnostic { code, message, location, hint, source_line });
    }
}

/// The collected diagnostics, sorted by location and deduplicated.
pub(super) fn finish(mut diags: Vec<Diagnostic>) -> Diagnostics {
    diags.sort_by(|a, b| a.location.cmp(&b.location).then(a.message.cmp(&b.message)));
    diags.dedup();
    Diagnostics(diags)
}

/// A serde shape error (unknown key, wrong type, missing field) located in the file.
pub(super) fn shape_error(cx: &mut Ctx<'_>, base: &str, sub: &str, msg: &str) {
    let join = |a: &str, b: &str| match (a.is_empty(), b.is_empty() || b == "/") {
        (true, _) => b.to_string(),
        (false, true) => a.to_string(),
        (false, false) => format!("{a}/{b}"),
    };
    let here = join(base, sub);
    if let Some(field) = msg.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
        let expected = msg.split("expected ").nth(1).unwrap_or("").to_string();
        let parent = if here.ends_with(&format!("/{field}")) || here == field {
            here.rsplit_once('/').map(|x| x.0.to_string()).unwrap_or_default()
        } else {
            here.clone()
        };
        let key_path = join(&parent, field);
        cx.push_key(
            "spec::unknown-key",
            format!("unknown key `{field}`"),
            &key_path,
            Some(format!("expected {expected}")),
        );
    } else if msg.starts_with("missing field") {
        cx.push_key("spec::missing-key", msg.to_string(), &here, None);
    } else if msg.starts_with("invalid type") || msg.starts_with("invalid value") {
        cx.push("spec::wrong-type", format!("`{}`: {msg}", here.replace('/', ".")), &here, None);
    } else {
        cx.push("spec::shape", msg.to_string(), &here, None);
    }
}
