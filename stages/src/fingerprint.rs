//! Build-time code fingerprints of stage source files (see `build.rs`).

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds;

    #[test]
    fn each_kind_has_its_own_fingerprint_over_its_file_and_the_modules_it_uses() {
        for s in kinds::all() {
            assert!(code_fingerprint(s.source()).is_some(), "{} has no fingerprint", s.kind());
        }
        let ml = files_of("src/kinds/data_movielens.rs").unwrap();
        for f in
            ["kinds/data_movielens.rs", "kinds/loader.rs", "ratings.rs", "text.rs", "stage.rs", "params.rs", "error.rs"]
        {
            assert!(ml.contains(&f), "{f} missing from {ml:?}");
        }
        let util = files_of("src/kinds/util.rs").unwrap();
        assert!(!util.contains(&"kinds/loader.rs") && !util.contains(&"kinds/data_movielens.rs"), "{util:?}");
        assert_ne!(code_fingerprint("src/kinds/util.rs"), code_fingerprint("src/kinds/data_split.rs"));
    }
}
