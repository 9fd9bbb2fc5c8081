//! Computes each source file's code fingerprint at build time (see `build/scan.rs`): blake3 over
//! the production code (no comments, no `#[cfg(test)]` items) of the file and, transitively, of
//! every crate module it references, so editing a stage reruns that stage (and its downstream)
//! only, editing a shared module reruns the stages that use it, and editing tests reruns nothing.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

#[path = "build/scan.rs"]
#[allow(dead_code)]
mod scan;

fn main() {
    link_torch();
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let src = root.join("src");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=build/scan.rs");
    let mut files = BTreeMap::new();
    collect(&src, &src, &mut files);
    let found = scan::scan(&files);
    let mut out = String::from(
        "/// Build-time code fingerprints: (source path relative to `src/`, blake3 hex, files hashed).\n\
         pub(crate) static CODE_FINGERPRINTS: &[(&str, &str, &[&str])] = &[\n",
    );
    for (rel, fp) in &found.fingerprints {
        let list: Vec<String> = fp.files.iter().map(|f| format!("{f:?}")).collect();
        out.push_str(&format!("    ({rel:?}, {:?}, &[{}]),\n", fp.hash, list.join(", ")));
    }
    out.push_str("];\n");
    out.push_str("/// References that name no module file (the layering test requires none).\n");
    out.push_str("pub(crate) static UNRESOLVED: &[&str] = &[");
    for u in &found.unresolved {
        out.push_str(&format!("{u:?}, "));
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
