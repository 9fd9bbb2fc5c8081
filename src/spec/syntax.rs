//! Phase 1: YAML syntax and the raw shapes of a pipeline file.

use serde_yaml::Value as Yaml;

use super::context::{finish, shape_error, Ctx};
use super::raw::RawPipeline;
use crate::diagnostic::{Diagnostic, Diagnostics};

/// The raw pipeline of `text`, or the first syntax/shape problems.
pub(super) fn read(cx: &mut Ctx<'_>, text: &str) -> Result<RawPipeline, Diagnostics> {
    // Phase 1: syntax and raw shapes.
    let doc: Yaml = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let pos = e.location().map(|l| (l.line(), l.column()));
            let msg = e.to_string();
            let (code, hint) = if msg.contains("duplicate entry") {
                ("spec::duplicate-id", "each stage id (and each key in a map) must appear once")
            } else {
                ("spec::syntax", "check indentation, colons and quotes near this position")
            };
            let (location, source_line) = cx.at(pos);
            let message = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            return Err(Diagnostics(vec![Diagnostic {
                code,
                message: format!("invalid YAML: {message}"),
                location,
                hint: Some(hint.into()),
                source_line,
            }]));
        }
    };
    if !doc.is_mapping() {
        return Err(Diagnostics(vec![Diagnostic::new(
            "spec::shape",
            "a pipeline file must be a map with a `stages` key",
        )
        .with_hint("start from pipelines/quickstart.yaml")]));
    }
    match serde_path_to_error::deserialize(doc) {
        Ok(r) => Ok(r),
        Err(e) => {
            let path = e.path().to_string().replace('.', "/");
            let msg = e.inner().to_string();
            shape_error(cx, "", &path, &msg);
            Err(finish(std::mem::take(&mut cx.diags)))
        }
    }
}
