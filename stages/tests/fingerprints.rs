//! Code fingerprints follow production code only: editing a loader, a parser, a test or a comment
//! leaves the keys of the training stages alone; editing the training code changes them.

mod common;

use common::scan::{production, render, scan, tokens};
use common::sources;

const IRS_TRAIN: &str = "kinds/irs_train.rs";
const DAREC: &str = "kinds/adapt_darec.rs";

fn fingerprint(tree: &std::collections::BTreeMap<String, String>, file: &str) -> String {
    scan(tree).fingerprints[file].hash.clone()
}

#[test]
fn the_build_time_fingerprints_are_the_scanners() {
    let found = scan(&sources());
    for f in [IRS_TRAIN, DAREC, "kinds/data_movielens.rs", "kinds/report_table.rs"] {
        assert_eq!(
            s2r_stages::fingerprint::code_fingerprint(&format!("src/{f}")),
            Some(found.fingerprints[f].hash.as_str()),
            "{f}: the tree changed since the build, or the build script and the scanner disagree"
        );
    }
}

#[test]
fn training_stages_do_not_cover_loaders_parsers_or_other_kinds() {
    let found = scan(&sources());
    for kind in [IRS_TRAIN, DAREC] {
        let files = &found.fingerprints[kind].files;
        eprintln!("{kind}: {} files: {files:?}", files.len());
        for f in
            ["kinds/data_movielens.rs", "data/text.rs", "data/loader.rs", "kinds/data_split.rs", "kinds/embed_svd.rs"]
        {
            assert!(!files.iter().any(|x| x == f), "{kind} covers {f}: {files:?}");
        }
        assert!(files.iter().all(|f| f == kind || !f.starts_with("kinds/")), "{kind} covers another kind: {files:?}");
    }
    let irs = &found.fingerprints[IRS_TRAIN].files;
    for f in ["neural/irs/train.rs", "neural/irs/dynamics.rs", "neural/irs/td.rs", "neural/irs/io.rs"] {
        assert!(irs.iter().any(|x| x == f), "irs.train must cover {f}: {irs:?}");
    }
}

#[test]
fn editing_a_loader_or_a_parser_leaves_training_keys_alone_and_editing_training_code_does_not() {
    let tree = sources();
    let before = (fingerprint(&tree, IRS_TRAIN), fingerprint(&tree, DAREC));
    let edited = |file: &str, f: &dyn Fn(&str) -> String| {
        let mut t = tree.clone();
        let new = f(&t[file]);
        assert_ne!(new, t[file]);
        t.insert(file.to_string(), new);
        t
    };
    let add_fn = |s: &str| format!("{s}\npub fn added_by_the_test() -> u32 {{ 7 }}\n");
    for file in ["kinds/data_movielens.rs", "data/text.rs", "data/loader.rs", "kinds/data_split.rs"] {
        let t = edited(file, &add_fn);
        assert_eq!((fingerprint(&t, IRS_TRAIN), fingerprint(&t, DAREC)), before, "editing {file}");
        assert_ne!(fingerprint(&t, file), fingerprint(&tree, file), "{file}'s own fingerprint follows it");
    }
    // Production code of the training loop: irs.train changes, adapt.darec does not.
    let t = edited("neural/irs/train.rs", &|s: &str| s.replacen("let cap = 20_000;", "let cap = 20_001;", 1));
    assert_ne!(fingerprint(&t, IRS_TRAIN), before.0);
    assert_eq!(fingerprint(&t, DAREC), before.1);
    // A shared layer: both change.
    let t = edited("neural/layers.rs", &add_fn);
    assert!(fingerprint(&t, IRS_TRAIN) != before.0 && fingerprint(&t, DAREC) != before.1);
    // Tests, comments and formatting are not production code.
    let t = edited("neural/irs/train.rs", &|s: &str| {
        s.replacen("fn tiny_world()", "fn tiny_world_renamed_by_the_test() -> u8 { 1 }\n    fn tiny_world()", 1)
    });
    assert_eq!(fingerprint(&t, IRS_TRAIN), before.0, "a test helper");
    let t = edited("neural/irs/td.rs", &|s: &str| format!("// a comment\n{}", s.replace("    ", "        ")));
    assert_eq!(fingerprint(&t, IRS_TRAIN), before.0, "a comment and indentation");
}

#[test]
fn the_scanner_reads_rust_tokens() {
    let src = r####"
        fn f() -> &'static str { let c = '{'; let q = '"'; let s = "crate::kinds::x }"; r#"}"# }
        /* crate::kinds::y { */ // crate::kinds::z {
        #[cfg(test)]
        mod tests { fn g() { let x = "}"; } }
        #[cfg(all(test, feature = "torch"))]
        fn only_in_tests() {}
        pub fn kept() { crate::data::ratings::Ratings::default(); }
    "####;
    let text = render(&production(&tokens(src)));
    assert!(!text.contains("mod tests") && !text.contains("only_in_tests"), "{text}");
    assert!(text.contains("pub fn kept()") && text.contains("crate::data::ratings::Ratings"), "{text}");
    assert!(text.contains(r#""crate::kinds::x }""#) && !text.contains("crate::kinds::y"), "{text}");
}

#[test]
fn each_kind_has_its_own_fingerprint_over_its_file_and_the_modules_it_uses() {
    use s2r_stages::fingerprint::{code_fingerprint, files_of};
    for s in s2r_stages::registry::builtin_stages() {
        assert!(code_fingerprint(s.source()).is_some(), "{} has no fingerprint", s.kind());
    }
    let ml = files_of("src/kinds/data_movielens.rs").unwrap();
    for f in [
        "kinds/data_movielens.rs",
        "data/loader.rs",
        "data/ratings.rs",
        "data/text.rs",
        "api/stage.rs",
        "api/params.rs",
        "api/error.rs",
    ] {
        assert!(ml.contains(&f), "{f} missing from {ml:?}");
    }
    let util = files_of("src/kinds/util.rs").unwrap();
    assert!(!util.contains(&"data/loader.rs") && !util.contains(&"kinds/data_movielens.rs"), "{util:?}");
    assert_ne!(code_fingerprint("src/kinds/util.rs"), code_fingerprint("src/kinds/data_split.rs"));
}

#[test]
fn only_torch_stages_carry_the_libtorch_version_in_their_keys() {
    use s2r_stages::api::device::global_fingerprint;
    let reg = s2r_stages::Registry::builtin();
    for kind in reg.kinds() {
        let torch = reg.get(kind).unwrap().stage.needs_torch();
        let g = global_fingerprint(torch);
        assert_eq!(g.contains("libtorch-2.11.0"), torch, "{kind}: {g}");
        assert!(!g.contains("no-torch"), "whether this build links libtorch is not in any key: {g}");
    }
    for kind in ["irs.train", "irs.eval", "adapt.darec"] {
        assert!(reg.get(kind).unwrap().stage.needs_torch(), "{kind}");
    }
    for kind in ["data.movielens", "data.split", "embed.svd", "eval.static", "select.best", "report.table"] {
        assert!(!reg.get(kind).unwrap().stage.needs_torch(), "{kind}");
    }
}
