//! Configuration diagnostics: a code, a message, a location in the YAML and a hint, rendered like
//! a compiler error. All of a file's problems are collected and reported at once.

use std::fmt;
use std::path::PathBuf;

/// A position in a pipeline file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// Line, 1-based.
    pub line: usize,
    /// Column, 1-based.
    pub col: usize,
}

/// One problem in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable code, e.g. `spec::unknown-kind`.
    pub code: &'static str,
    /// Lowercase message with user values in backticks.
    pub message: String,
    /// Where, when known.
    pub location: Option<Location>,
    /// What to do about it.
    pub hint: Option<String>,
    /// The source line, for rendering.
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// A diagnostic without location or hint.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), location: None, hint: None, source_line: None }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error[{}]: {}", self.code, self.message)?;
        if let Some(l) = &self.location {
            writeln!(f, "  --> {}:{}:{}", l.file.display(), l.line, l.col)?;
            if let Some(src) = &self.source_line {
                let n = l.line.to_string();
                let pad = " ".repeat(n.len());
                writeln!(f, "{pad} |")?;
                writeln!(f, "{n} | {src}")?;
                writeln!(f, "{pad} | {}^", " ".repeat(l.col.saturating_sub(1)))?;
            }
        }
        if let Some(h) = &self.hint {
            writeln!(f, "  = help: {h}")?;
        }
        Ok(())
    }
}

/// Every problem found in a pipeline, sorted by location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(f, "{n} error{} in the pipeline", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Diagnostics {}

/// The known names nearest to `name` (Jaro–Winkler ≥ 0.7, best first, at most 3).
pub fn nearest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut scored: Vec<(f64, &str)> =
        known.into_iter().map(|k| (strsim::jaro_winkler(name, k), k)).filter(|(s, _)| *s >= 0.7).collect();
    scored.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(b.1)));
    scored.into_iter().take(3).map(|(_, k)| k).collect()
}

/// "did you mean `a`, `b`?" or a list of all known names.
pub fn suggest<'a>(name: &str, known: impl IntoIterator<Item = &'a str> + Clone) -> String {
    let near = nearest(name, known.clone());
    if near.is_empty() {
        let all: Vec<String> = known.into_iter().map(|k| format!("`{k}`")).collect();
        if all.is_empty() {
            "there are none".to_string()
        } else {
            format!("known: {}", all.join(", "))
        }
    } else {
        format!("did you mean {}?", near.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "))
    }
}
