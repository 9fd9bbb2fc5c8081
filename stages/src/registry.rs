//! The registry: kind name → stage implementation and its code fingerprint.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::fingerprint::code_fingerprint;
use crate::kinds;
use crate::stage::Stage;

/// A registered stage with the code fingerprint that goes into its cache keys.
#[derive(Clone)]
pub struct Registered {
    /// The implementation.
    pub stage: Arc<dyn Stage>,
    /// Code fingerprint (hex).
    pub fingerprint: String,
}

/// Known stage kinds.
#[derive(Clone, Default)]
pub struct Registry {
    map: BTreeMap<String, Registered>,
}

impl Registry {
    /// An empty registry (tests register toy stages into it).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every built-in stage, with build-time fingerprints of its source.
    pub fn builtin() -> Self {
        let mut r = Self::empty();
        for stage in kinds::all() {
            let fp = code_fingerprint(stage.source())
                .unwrap_or_else(|| panic!("no build-time fingerprint for `{}`: build.rs missed a file", stage.source()))
                .to_string();
            r.register(stage, fp);
        }
        r
    }

    /// Registers `stage` under its kind with `fingerprint` (replacing any previous one).
    pub fn register(&mut self, stage: Arc<dyn Stage>, fingerprint: impl Into<String>) {
        self.map.insert(stage.kind().to_string(), Registered { stage, fingerprint: fingerprint.into() });
    }

    /// The stage registered under `kind`.
    pub fn get(&self, kind: &str) -> Option<&Registered> {
        self.map.get(kind)
    }

    /// Registered kinds, sorted.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }
}
