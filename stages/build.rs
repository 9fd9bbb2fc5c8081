//! Computes each stage source file's code fingerprint at build time: blake3 over the file itself
//! and, transitively, every crate module it references (`crate::x`, `super::x`), so editing a
//! stage reruns that stage (and its downstream) only, while editing a shared module reruns the
//! stages that use it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    link_torch();
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let src = root.join("src");
    println!("cargo:rerun-if-changed=src");
    let mut files = BTreeMap::new();
    collect(&src, &src, &mut files);
    let mut out = String::from(
        "/// Build-time code fingerprints: (source path relative to `src/`, blake3 hex, files hashed).\n\
         pub(crate) static CODE_FINGERPRINTS: &[(&str, &str, &[&str])] = &[\n",
    );
    for rel in files.keys() {
        let mut closure = BTreeSet::new();
        visit(rel, &files, &mut closure);
        let mut h = blake3::Hasher::new();
        for f in &closure {
            h.update(f.as_bytes());
            h.update(&[0]);
            h.update(files[f].as_bytes());
            h.update(&[0]);
        }
        let list: Vec<String> = closure.iter().map(|f| format!("{f:?}")).collect();
        out.push_str(&format!("    ({rel:?}, {:?}, &[{}]),\n", h.finalize().to_hex().as_str(), list.join(", ")));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets this")).join("fingerprints.rs");
    fs::write(dest, out).expect("write fingerprints.rs");
}

fn collect(base: &Path, dir: &Path, files: &mut BTreeMap<String, String>) {
    let mut entries: Vec<_> = fs::read_dir(dir).expect("read src").flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            collect(base, &p, files);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let rel = p.strip_prefix(base).expect("under src").to_string_lossy().replace('\\', "/");
            files.insert(rel, fs::read_to_string(&p).expect("read source"));
        }
    }
}

/// Adds `rel` and every module it references to `closure`.
fn visit(rel: &str, files: &BTreeMap<String, String>, closure: &mut BTreeSet<String>) {
    if !closure.insert(rel.to_string()) {
        return;
    }
    let text = &files[rel];
    let dir = rel.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
    let parent_of_mod = if rel.ends_with("mod.rs") {
        dir.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default()
    } else {
        dir.clone()
    };
    for (prefix, base) in [("crate::", String::new()), ("super::", parent_of_mod.clone())] {
        let mut rest = text.as_str();
        while let Some(i) = rest.find(prefix) {
            rest = &rest[i + prefix.len()..];
            let mut path = base.clone();
            // Follow `a::b::c` as deep as there are module files; only the deepest one is a
            // dependency (`crate::kinds::x` uses kinds/x.rs, not the kinds/mod.rs index).
            let mut tail = rest;
            let mut deepest: Option<String> = None;
            loop {
                let name: String = tail.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if name.is_empty() {
                    // `crate::{a, b}` groups: take every identifier inside the braces.
                    if let Some(group) = tail.strip_prefix('{') {
                        let end = group.find('}').unwrap_or(group.len());
                        for item in group[..end].split(',') {
                            let n: String =
                                item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                            if let Some(f) = resolve(&path, &n, files) {
                                visit(&f, files, closure);
                            }
                        }
                    }
                    break;
                }
                let Some(found) = resolve(&path, &name, files) else { break };
                deepest = Some(found);
                path = if path.is_empty() { name.clone() } else { format!("{path}/{name}") };
                tail = &tail[name.len()..];
                match tail.strip_prefix("::") {
                    Some(t) => tail = t,
                    None => break,
                }
            }
            if let Some(f) = deepest {
                visit(&f, files, closure);
            }
        }
    }
    // A `mod x;` declaration inside a stage file is part of that stage.
    for line in text.lines() {
        let l = line.trim();
        if let Some(m) =
            l.strip_prefix("mod ").or_else(|| l.strip_prefix("pub mod ")).or_else(|| l.strip_prefix("pub(crate) mod "))
        {
            if rel.ends_with("lib.rs") || rel.ends_with("kinds/mod.rs") {
                continue; // declarations of the whole crate are not a dependency of everything
            }
            let name = m.trim_end_matches(';').trim();
            let own = if rel.ends_with("mod.rs") { dir.clone() } else { rel.trim_end_matches(".rs").to_string() };
            if let Some(f) = resolve(&own, name, files) {
                visit(&f, files, closure);
            }
        }
    }
}

fn resolve(path: &str, name: &str, files: &BTreeMap<String, String>) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    let join = |n: &str| if path.is_empty() { n.to_string() } else { format!("{path}/{n}") };
    [join(&format!("{name}.rs")), join(&format!("{name}/mod.rs"))].into_iter().find(|c| files.contains_key(c))
}

/// rpath to libtorch for this crate's tests when the `torch` feature is on (see the root build.rs).
fn link_torch() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_some() {
        if let Some(lt) = std::env::var_os("LIBTORCH") {
            if let Ok(lib) = fs::canonicalize(Path::new(&lt).join("lib")) {
                println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
            }
        }
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
