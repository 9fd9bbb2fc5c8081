//! The registry: kind name → stage implementation and its code fingerprint.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::api::stage::Stage;
use crate::fingerprint::code_fingerprint;
use crate::kinds;

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
        for stage in builtin_stages() {
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

/// All built-in stages.
pub fn builtin_stages() -> Vec<Arc<dyn Stage>> {
    vec![
        Arc::new(kinds::data_movielens::MovieLens),
        Arc::new(kinds::data_anime::Anime),
        Arc::new(kinds::data_synth::Synth),
        Arc::new(kinds::data_split::Split),
        Arc::new(kinds::data_stats::Stats),
        Arc::new(kinds::embed_svd::EmbedSvd),
        Arc::new(kinds::adapt_darec::Darec),
        Arc::new(kinds::eval_static::EvalStatic),
        Arc::new(kinds::study_kmeans::StudyKmeans),
        Arc::new(kinds::irs_train::IrsTrain),
        Arc::new(kinds::irs_eval::IrsEval),
        Arc::new(kinds::study_groups::GroupsRq2),
        Arc::new(kinds::study_groups::GroupsRq3),
        Arc::new(kinds::select_best::SelectBest),
        Arc::new(kinds::world_synth::WorldSynth),
        Arc::new(kinds::world_fit::WorldFit),
        Arc::new(kinds::world_eval::WorldEval),
        Arc::new(kinds::report_table::ReportTable),
        Arc::new(kinds::report_figure::ReportFigure),
        Arc::new(kinds::util::Sequence),
        Arc::new(kinds::util::Sum),
        Arc::new(kinds::util::Fail),
    ]
}
