//! Build-time code fingerprints of source files (see `build.rs` and `build/scan.rs`): blake3 over
//! the production code of a file and of every crate module it references, transitively.

include!(concat!(env!("OUT_DIR"), "/fingerprints.rs"));

fn find(source: &str) -> Option<&'static (&'static str, &'static str, &'static [&'static str])> {
    let norm = source.replace('\\', "/");
    CODE_FINGERPRINTS.iter().find(|(rel, _, _)| norm.ends_with(&format!("src/{rel}")))
}

/// The code fingerprint of a source file given as `file!()` (matched by its path under `src/`).
pub fn code_fingerprint(source: &str) -> Option<&'static str> {
    find(source).map(|(_, h, _)| *h)
}

/// The files (relative to `src/`) whose content makes up the fingerprint of `source`.
pub fn files_of(source: &str) -> Option<&'static [&'static str]> {
    find(source).map(|(_, _, f)| *f)
}

/// `crate::…` references that name no module file (a dependency the fingerprints could miss;
/// the layering test requires none).
pub fn unresolved() -> &'static [&'static str] {
    UNRESOLVED
}
