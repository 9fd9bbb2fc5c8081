//! Build-time code fingerprints of stage source files (see `build.rs`).

include!(concat!(env!("OUT_DIR"), "/fingerprints.rs"));

/// The code fingerprint of a source file given as `file!()` (matched by its path under `src/`).
pub fn code_fingerprint(source: &str) -> Option<&'static str> {
    let norm = source.replace('\\', "/");
    CODE_FINGERPRINTS.iter().find(|(rel, _)| norm.ends_with(&format!("src/{rel}"))).map(|(_, h)| *h)
}

/// Every fingerprinted file with its fingerprint.
pub fn all() -> &'static [(&'static str, &'static str)] {
    CODE_FINGERPRINTS
}
