//! The crate's layering, read from its sources: the library never imports a kind, a kind never
//! imports another kind, grouping modules (`mod.rs`) only declare modules, no dependency hides
//! behind a re-export, and the library's files have no import cycles.

mod common;

use std::collections::BTreeSet;

use common::scan::{scan, tokens, Tok};
use common::sources;

/// `crate::a::b…` paths in a file's whole text (tests included), as `a::b…`.
fn crate_paths(src: &str) -> Vec<String> {
    let t = tokens(src);
    let mut out = Vec::new();
    for i in 0..t.len() {
        let is = |k: usize, p: char| t.get(k) == Some(&Tok::Punct(p));
        let prefix = match &t[i] {
            Tok::Word(w) if (w == "crate" || w == "super") && is(i + 1, ':') && is(i + 2, ':') => w.clone(),
            _ => continue,
        };
        let mut path = vec![prefix];
        let mut j = i + 3;
        while let Some(Tok::Word(w)) = t.get(j) {
            path.push(w.clone());
            if is(j + 1, ':') && is(j + 2, ':') {
                j += 3;
            } else {
                break;
            }
        }
        out.push(path.join("::"));
    }
    out
}

fn is_library(file: &str) -> bool {
    !file.starts_with("kinds/") && file != "registry.rs" && file != "lib.rs"
}

#[test]
fn the_library_never_imports_a_kind_and_kinds_never_import_each_other() {
    let mut bad = Vec::new();
    for (file, src) in sources() {
        for p in crate_paths(&src) {
            if is_library(&file) && (p.starts_with("crate::kinds") || p.starts_with("crate::registry")) {
                bad.push(format!("{file}: {p} (the library imports a stage adapter)"));
            }
            if let Some(own) = file.strip_prefix("kinds/").and_then(|f| f.strip_suffix(".rs")) {
                let other = p.strip_prefix("crate::kinds::").map(|r| r.split("::").next().unwrap_or(""));
                if other.is_some_and(|o| o != own) || p.starts_with("super::") {
                    bad.push(format!("{file}: {p} (a kind imports another kind; move shared code to the library)"));
                }
            }
        }
    }
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
}

#[test]
fn no_dependency_hides_behind_a_re_export_and_grouping_modules_only_declare_modules() {
    let found = scan(&sources());
    assert!(found.unresolved.is_empty(), "paths that name no module file: {:?}", found.unresolved);
    assert!(s2r_stages::fingerprint::unresolved().is_empty());
    for (file, fp) in &found.fingerprints {
        if file.ends_with("mod.rs") {
            assert_eq!(fp.files, vec![file.clone()], "{file} must only declare modules (no code, no re-exports)");
        }
    }
}

#[test]
fn library_files_have_no_import_cycles() {
    let found = scan(&sources());
    let mut cycles = BTreeSet::new();
    for (a, fa) in &found.fingerprints {
        for b in &fa.files {
            if a < b && is_library(a) && is_library(b) && found.fingerprints[b].files.contains(a) {
                cycles.insert(format!("{a} ↔ {b}"));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles: {cycles:?}");
}
