//! Every built-in stage implementation, one file per kind.

use std::sync::Arc;

use crate::stage::Stage;

pub mod adapt_darec;
pub mod data_anime;
pub mod data_movielens;
pub mod data_split;
pub mod data_stats;
pub mod data_synth;
pub mod embed_svd;
pub mod eval_static;
pub mod irs_train;
mod loader;
pub mod report_figure;
pub mod report_table;
pub mod select_best;
pub mod study_groups;
pub mod study_kmeans;
pub mod util;

/// All built-in stages.
pub fn all() -> Vec<Arc<dyn Stage>> {
    vec![
        Arc::new(data_movielens::MovieLens),
        Arc::new(data_anime::Anime),
        Arc::new(data_synth::Synth),
        Arc::new(data_split::Split),
        Arc::new(data_stats::Stats),
        Arc::new(embed_svd::EmbedSvd),
        Arc::new(adapt_darec::Darec),
        Arc::new(eval_static::EvalStatic),
        Arc::new(study_kmeans::StudyKmeans),
        Arc::new(irs_train::IrsTrain),
        Arc::new(irs_train::IrsEval),
        Arc::new(study_groups::GroupsRq2),
        Arc::new(study_groups::GroupsRq3),
        Arc::new(select_best::SelectBest),
        Arc::new(report_table::ReportTable),
        Arc::new(report_figure::ReportFigure),
        Arc::new(util::Sequence),
        Arc::new(util::Sum),
        Arc::new(util::Fail),
    ]
}
