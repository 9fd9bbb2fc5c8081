//! Code fingerprints over production code (shared by `build.rs` and `tests/fingerprints.rs`).
//!
//! A source file is reduced to its tokens — comments, whitespace and every `#[cfg(test)]` item
//! (test modules, test helpers) dropped — and a file's fingerprint is blake3 over the reduced
//! text of the file and, transitively, of every crate module it references: `crate::a::b` and
//! `super::x` paths (followed as deep as there are module files, `{a, b::c}` groups included) and
//! `mod x;` declarations, except in *grouping modules* (`lib.rs` and any `mod.rs` that holds
//! nothing but `mod` declarations), which only say where files are. So editing a test, a comment
//! or the formatting of a file changes no key; editing production code changes the keys of every
//! stage that uses it. References that name no module file (`crate::Name` through a re-export)
//! are returned as `unresolved`: the crate's layering test requires that there are none, so no
//! dependency can hide behind a re-export.

use std::collections::{BTreeMap, BTreeSet};

/// A token of the reduced text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// An identifier, keyword, number or lifetime.
    Word(String),
    /// A string, byte-string or char literal, as written.
    Lit(String),
    /// One punctuation character.
    Punct(char),
}

/// Splits Rust source into tokens, dropping comments and whitespace.
pub fn tokens(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let word = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if ch == '"' {
            let start = i;
            i = skip_string(&c, i);
            out.push(Tok::Lit(c[start..i].iter().collect()));
        } else if ch == '\'' {
            // A char literal ('x', '\n', '\'') or a lifetime ('a).
            let start = i;
            if c.get(i + 1) == Some(&'\\') {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push(Tok::Lit(c[start..i.min(c.len())].iter().collect()));
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push(Tok::Lit(c[start..i].iter().collect()));
            } else {
                i += 1;
                while i < c.len() && word(c[i]) {
                    i += 1;
                }
                out.push(Tok::Word(c[start..i].iter().collect()));
            }
        } else if word(ch) {
            let start = i;
            while i < c.len()
                && (word(c[i])
                    || (c[i] == '.' && ch.is_ascii_digit() && c.get(i + 1).is_some_and(|d| d.is_ascii_digit())))
            {
                i += 1;
            }
            let w: String = c[start..i].iter().collect();
            // Prefixed literals: b"..", b'x', r"..", r#".."#, br#".."#, c"..".
            let next = c.get(i).copied();
            if matches!(w.as_str(), "r" | "br" | "cr") && matches!(next, Some('"') | Some('#')) {
                let mut hashes = 0;
                while c.get(i + hashes) == Some(&'#') {
                    hashes += 1;
                }
                if c.get(i + hashes) == Some(&'"') {
                    i += hashes + 1;
                    loop {
                        if i >= c.len() {
                            break;
                        }
                        if c[i] == '"' && (0..hashes).all(|k| c.get(i + 1 + k) == Some(&'#')) {
                            i += 1 + hashes;
                            break;
                        }
                        i += 1;
                    }
                    out.push(Tok::Lit(c[start..i.min(c.len())].iter().collect()));
                    continue;
                }
            }
            if matches!(w.as_str(), "b" | "c") && next == Some('"') {
                i = skip_string(&c, i);
                out.push(Tok::Lit(c[start..i].iter().collect()));
                continue;
            }
            if w == "b" && next == Some('\'') {
                i += 1;
                if c.get(i) == Some(&'\\') {
                    i += 1;
                }
                i += 1;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push(Tok::Lit(c[start..i.min(c.len())].iter().collect()));
                continue;
            }
            out.push(Tok::Word(w));
        } else {
            out.push(Tok::Punct(ch));
            i += 1;
        }
    }
    out
}

fn skip_string(c: &[char], mut i: usize) -> usize {
    i += 1;
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    c.len()
}

fn is_punct(t: &Tok, p: char) -> bool {
    *t == Tok::Punct(p)
}

fn is_word(t: &Tok, w: &str) -> bool {
    matches!(t, Tok::Word(x) if x == w)
}

/// The index just past the group opened at `i` (`(`, `[` or `{`), or the end.
fn close_of(toks: &[Tok], i: usize) -> usize {
    let mut depth = 0i32;
    let mut j = i;
    while j < toks.len() {
        match &toks[j] {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    toks.len()
}

/// Whether the attribute `#[ … ]` starting at `i` is `cfg(test)` or `cfg(all(test, …))`.
fn is_test_cfg(toks: &[Tok], i: usize) -> bool {
    let t = |k: usize| toks.get(i + k);
    let at = |k: usize, p: char| t(k).is_some_and(|x| is_punct(x, p));
    let w = |k: usize, s: &str| t(k).is_some_and(|x| is_word(x, s));
    at(0, '#')
        && at(1, '[')
        && w(2, "cfg")
        && at(3, '(')
        && ((w(4, "test") && at(5, ')')) || (w(4, "all") && at(5, '(') && w(6, "test")))
}

/// The tokens without `#[cfg(test)]` items.
pub fn production(toks: &[Tok]) -> Vec<Tok> {
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        if !is_test_cfg(toks, i) {
            out.push(toks[i].clone());
            i += 1;
            continue;
        }
        // Skip this and any further attributes, then the item: up to a `;` at depth 0 or the
        // end of the first `{ … }` group at depth 0.
        while i < toks.len() && is_punct(&toks[i], '#') && toks.get(i + 1).is_some_and(|t| is_punct(t, '[')) {
            i = close_of(toks, i + 1);
        }
        while i < toks.len() {
            match &toks[i] {
                Tok::Punct(';') => {
                    i += 1;
                    break;
                }
                Tok::Punct('{') => {
                    i = close_of(toks, i);
                    break;
                }
                Tok::Punct('(' | '[') => i = close_of(toks, i),
                _ => i += 1,
            }
        }
    }
    out
}

/// Tokens as text: a space only between two words or literals (so `crate::a::b` stays whole).
pub fn render(toks: &[Tok]) -> String {
    let mut s = String::new();
    let mut prev_word = false;
    for t in toks {
        match t {
            Tok::Word(w) | Tok::Lit(w) => {
                if prev_word {
                    s.push(' ');
                }
                s.push_str(w);
                prev_word = true;
            }
            Tok::Punct(p) => {
                s.push(*p);
                prev_word = false;
            }
        }
    }
    s
}

/// A file's fingerprint and the files it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// blake3 hex.
    pub hash: String,
    /// Files (relative to `src/`) in the closure, sorted.
    pub files: Vec<String>,
}

/// What the scan of a source tree found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Fingerprint per file.
    pub fingerprints: BTreeMap<String, Fingerprint>,
    /// `file: path` of every `crate::…`/`super::…` reference that names no module file.
    pub unresolved: Vec<String>,
}

struct File {
    toks: Vec<Tok>,
    text: String,
}

/// Fingerprints of every file of a tree given as (path relative to `src/` → source text).
pub fn scan(sources: &BTreeMap<String, String>) -> Scan {
    let files: BTreeMap<String, File> = sources
        .iter()
        .map(|(rel, src)| {
            let toks = production(&tokens(src));
            let text = render(&toks);
            (rel.clone(), File { toks, text })
        })
        .collect();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut unresolved = BTreeSet::new();
    for (rel, f) in &files {
        let d = direct_deps(rel, &f.toks, &files, &mut unresolved);
        deps.insert(rel.clone(), d);
    }
    let mut fingerprints = BTreeMap::new();
    for rel in files.keys() {
        let mut closure = BTreeSet::new();
        let mut stack = vec![rel.clone()];
        while let Some(f) = stack.pop() {
            if closure.insert(f.clone()) {
                stack.extend(deps[&f].iter().cloned());
            }
        }
        let mut h = blake3::Hasher::new();
        for f in &closure {
            h.update(f.as_bytes());
            h.update(&[0]);
            h.update(files[f].text.as_bytes());
            h.update(&[0]);
        }
        fingerprints.insert(
            rel.clone(),
            Fingerprint { hash: h.finalize().to_hex().to_string(), files: closure.into_iter().collect() },
        );
    }
    Scan { fingerprints, unresolved: unresolved.into_iter().collect() }
}

/// The module path (directory segments) of a file: `a/b.rs` → `a/b`, `a/mod.rs` → `a`, `lib.rs` → ``.
fn module_of(rel: &str) -> String {
    let stem = rel.trim_end_matches(".rs");
    if stem == "lib" {
        String::new()
    } else if let Some(d) = stem.strip_suffix("/mod") {
        d.to_string()
    } else if stem == "mod" {
        String::new()
    } else {
        stem.to_string()
    }
}

/// The file of a module path; `None` for the crate root (whose re-exports hide dependencies).
fn module_file(module: &str, files: &BTreeMap<String, File>) -> Option<String> {
    if module.is_empty() {
        return None;
    }
    [format!("{module}.rs"), format!("{module}/mod.rs")].into_iter().find(|c| files.contains_key(c))
}

fn parent(module: &str) -> String {
    module.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default()
}

fn resolve(module: &str, name: &str, files: &BTreeMap<String, File>) -> Option<String> {
    let join = |n: &str| if module.is_empty() { n.to_string() } else { format!("{module}/{n}") };
    [join(&format!("{name}.rs")), join(&format!("{name}/mod.rs"))].into_iter().find(|c| files.contains_key(c))
}

/// A grouping module only declares modules (`lib.rs` always counts as one).
fn is_grouping(rel: &str, toks: &[Tok]) -> bool {
    if rel == "lib.rs" {
        return true;
    }
    if !rel.ends_with("mod.rs") {
        return false;
    }
    let mut i = 0;
    while i < toks.len() {
        if is_punct(&toks[i], '#') {
            let open = if toks.get(i + 1).is_some_and(|t| is_punct(t, '!')) { i + 2 } else { i + 1 };
            i = close_of(toks, open);
            continue;
        }
        if is_word(&toks[i], "pub") {
            i += 1;
            if toks.get(i).is_some_and(|t| is_punct(t, '(')) {
                i = close_of(toks, i);
            }
            continue;
        }
        if is_word(&toks[i], "mod")
            && matches!(toks.get(i + 1), Some(Tok::Word(_)))
            && toks.get(i + 2).is_some_and(|t| is_punct(t, ';'))
        {
            i += 3;
            continue;
        }
        return false;
    }
    true
}

fn direct_deps(
    rel: &str,
    toks: &[Tok],
    files: &BTreeMap<String, File>,
    unresolved: &mut BTreeSet<String>,
) -> BTreeSet<String> {
    let me = module_of(rel);
    let mut out = BTreeSet::new();
    let sep =
        |i: usize| toks.get(i).is_some_and(|t| is_punct(t, ':')) && toks.get(i + 1).is_some_and(|t| is_punct(t, ':'));
    let mut i = 0;
    while i < toks.len() {
        let start_base = match &toks[i] {
            Tok::Word(w) if w == "crate" && sep(i + 1) => Some(String::new()),
            Tok::Word(w) if w == "super" && sep(i + 1) && !(i >= 2 && sep(i - 2)) => Some(parent(&me)),
            _ => None,
        };
        let Some(mut base) = start_base else {
            i += 1;
            continue;
        };
        let mut j = i + 3;
        // `super::super::x`
        while toks.get(j).is_some_and(|t| is_word(t, "super")) && sep(j + 1) {
            base = parent(&base);
            j += 3;
        }
        let (end, found) = follow(&base, toks, j, files, rel, unresolved);
        out.extend(found);
        i = end.max(i + 1);
    }
    if !is_grouping(rel, toks) {
        for k in 0..toks.len() {
            if is_word(&toks[k], "mod") {
                if let (Some(Tok::Word(name)), Some(t)) = (toks.get(k + 1), toks.get(k + 2)) {
                    if is_punct(t, ';') {
                        if let Some(f) = resolve(&me, name, files) {
                            out.insert(f);
                        }
                    }
                }
            }
        }
    }
    out
}

/// Follows a path from token `j` inside module `base`; returns the index after it and the files.
fn follow(
    base: &str,
    toks: &[Tok],
    mut j: usize,
    files: &BTreeMap<String, File>,
    rel: &str,
    unresolved: &mut BTreeSet<String>,
) -> (usize, Vec<String>) {
    let sep =
        |i: usize| toks.get(i).is_some_and(|t| is_punct(t, ':')) && toks.get(i + 1).is_some_and(|t| is_punct(t, ':'));
    let mut module = base.to_string();
    let mut deepest: Option<String> = None;
    let mut found = Vec::new();
    let mut written = String::new();
    loop {
        match toks.get(j) {
            Some(Tok::Word(name)) => {
                if name == "self" {
                    j += 1;
                    break;
                }
                written.push_str(name);
                match resolve(&module, name, files) {
                    Some(f) => {
                        deepest = Some(f);
                        module = if module.is_empty() { name.clone() } else { format!("{module}/{name}") };
                        j += 1;
                        if sep(j) {
                            j += 2;
                            written.push_str("::");
                            continue;
                        }
                        break;
                    }
                    None => {
                        // An item of `module` itself (a fn, a type, a re-export).
                        if deepest.is_none() {
                            match module_file(&module, files) {
                                Some(f) => deepest = Some(f),
                                None => {
                                    unresolved.insert(format!("{rel}: crate::{written}"));
                                }
                            }
                        }
                        j += 1;
                        break;
                    }
                }
            }
            Some(Tok::Punct('{')) => {
                let end = close_of(toks, j);
                let mut k = j + 1;
                while k < end - 1 {
                    let (e, f) = follow(&module, toks, k, files, rel, unresolved);
                    found.extend(f);
                    // to the next top-level comma of the group
                    let mut m = e.max(k + 1);
                    while m < end - 1 && !is_punct(&toks[m], ',') {
                        m = if matches!(toks[m], Tok::Punct('(' | '[' | '{')) { close_of(toks, m) } else { m + 1 };
                    }
                    k = m + 1;
                }
                j = end;
                break;
            }
            _ => break,
        }
    }
    if let Some(f) = deepest {
        found.push(f);
    }
    (j, found)
}
