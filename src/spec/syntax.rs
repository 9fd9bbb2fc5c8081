//! Phase 1: YAML syntax and the raw shapes of a pipeline file.

use std::path::Path;

use serde_yaml::Value as Yaml;

use super::context::{finish, shape_error, Ctx};
use super::raw::RawPipeline;
use crate::diagnostic::{Diagnostic, Diagnostics, Location};

/// The deepest nesting of flow collections (`[`, `{`) a pipeline file may have. Real pipelines
/// nest 3–4 levels; the YAML parsers take quadratic time on deep nesting, so it is refused
/// before either runs.
pub const MAX_DEPTH: usize = 128;

/// Line and column (1-based) of character `index` of `text`.
pub(super) fn line_col(text: &str, index: usize) -> (usize, usize) {
    let (mut line, mut col) = (1, 1);
    for c in text.chars().take(index) {
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

fn diag_at(
    file: &Path,
    text: &str,
    line: usize,
    col: usize,
    code: &'static str,
    message: String,
    hint: &str,
) -> Diagnostics {
    Diagnostics(vec![Diagnostic {
        code,
        message,
        location: Some(Location { file: file.to_path_buf(), line, col }),
        hint: Some(hint.into()),
        source_line: text.lines().nth(line.saturating_sub(1)).map(str::to_string),
    }])
}

/// Checks made before any YAML parser sees `text`: a leading BOM is dropped (the returned text),
/// an empty file is an error at its first line, and flow nesting deeper than [`MAX_DEPTH`] is an
/// error at the bracket that exceeds it.
pub(super) fn precheck<'t>(text: &'t str, file: &Path) -> Result<&'t str, Diagnostics> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let blank = text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    });
    if blank || matches!(text.trim(), "null" | "~" | "Null" | "NULL") {
        return Err(diag_at(
            file,
            text,
            1,
            1,
            "spec::shape",
            format!("`{}` is empty: a pipeline file is a map with a `stages` key", file.display()),
            "start from pipelines/quickstart.yaml",
        ));
    }
    check_depth(text).map_err(|(line, col)| {
        diag_at(
            file,
            text,
            line,
            col,
            "spec::too-deep",
            format!("collections nested more than {MAX_DEPTH} levels deep"),
            "a pipeline needs a few levels; this looks generated or corrupt",
        )
    })?;
    Ok(text)
}

/// The position where nesting first exceeds [`MAX_DEPTH`] levels: flow collections (`[`, `{`)
/// plus block nesting (a stack of indentation levels, and `- ` entries opening a sequence on the
/// same line), skipping quoted scalars and comments.
pub(super) fn check_depth(text: &str) -> Result<(), (usize, usize)> {
    let (mut depth, mut line, mut col) = (0usize, 1usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = '\n';
    // Block structure: indentation stack of the lines seen, and `- ` openers on this line.
    let mut indents: Vec<usize> = Vec::new();
    let mut at_line_start = true;
    let mut block = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        col += 1;
        if c == '\n' {
            line += 1;
            col = 0;
            comment = false;
            at_line_start = true;
            if quote.is_none() {
                prev = c;
                continue;
            }
        }
        if comment {
            continue;
        }
        if at_line_start && quote.is_none() && depth == 0 {
            if c == ' ' {
                continue;
            }
            at_line_start = false;
            if c != '#' && c != '\r' {
                let indent = col - 1;
                while indents.last().is_some_and(|&i| i >= indent) {
                    indents.pop();
                }
                indents.push(indent);
                block = indents.len();
                if block > MAX_DEPTH {
                    return Err((line, col));
                }
            }
        } else if at_line_start {
            at_line_start = false;
        }
        match quote {
            Some('"') if c == '\\' => {
                chars.next();
                col += 1;
            }
            Some('\'') if c == '\'' && chars.peek() == Some(&'\'') => {
                chars.next();
                col += 1;
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '#' if prev.is_whitespace() => comment = true,
                '"' | '\'' if prev.is_whitespace() || "[{,:-".contains(prev) => quote = Some(c),
                '-' if depth == 0 && (prev.is_whitespace() || prev == '-') && chars.peek() == Some(&' ') => {
                    block += 1;
                    if block > MAX_DEPTH {
                        return Err((line, col));
                    }
                }
                '[' | '{' => {
                    depth += 1;
                    if depth + block > MAX_DEPTH {
                        return Err((line, col));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        prev = c;
    }
    Ok(())
}

/// The raw pipeline of `text`, or the first syntax/shape problems.
pub(super) fn read(cx: &mut Ctx<'_>, text: &str) -> Result<RawPipeline, Diagnostics> {
    // Phase 1: syntax and raw shapes.
    let doc: Yaml = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let msg = e.to_string();
            // Some errors carry only a character position in the message; an alias bomb
            // carries none: point at the first alias.
            let at_position = msg
                .split(" at position ")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse::<usize>().ok())
                .map(|i| line_col(text, i));
            let first_alias = || {
                text.lines().enumerate().find_map(|(n, l)| {
                    l.char_indices()
                        .find(|&(i, c)| c == '*' && l[i + 1..].starts_with(|x: char| x.is_alphanumeric() || x == '_'))
                        .map(|(i, _)| (n + 1, l[..i].chars().count() + 1))
                })
            };
            let pos = match (at_position, msg.contains("repetition limit")) {
                (Some(p), _) => Some(p),
                (None, true) => first_alias().or(Some((1, 1))),
                (None, false) => e.location().map(|l| (l.line(), l.column())).or(Some((1, 1))),
            };
            let (code, hint) = if msg.contains("duplicate entry") {
                ("spec::duplicate-id", "each stage id (and each key in a map) must appear once")
            } else if msg.contains("repetition limit") {
                (
                    "spec::alias-bomb",
                    "anchors and aliases expand to too many values (in the whole file); write the values out",
                )
            } else {
                ("spec::syntax", "check indentation, colons and quotes near this position")
            };
            let (location, source_line) = cx.at(pos);
            let message = msg.split(" at line ").next().unwrap_or(&msg);
            let message = message.split(" at position ").next().unwrap_or(message).to_string();
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
        let (location, source_line) = cx.at(Some((1, 1)));
        return Err(Diagnostics(vec![Diagnostic {
            code: "spec::shape",
            message: "a pipeline file must be a map with a `stages` key (the whole file is not a map)".into(),
            location,
            hint: Some("start from pipelines/quickstart.yaml".into()),
            source_line,
        }]));
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
