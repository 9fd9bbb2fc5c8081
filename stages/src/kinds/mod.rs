//! Every built-in stage, one file per kind: thin adapters that parse params into a library
//! config, call the library and encode its results as artifacts. A kind never imports another
//! kind (shared code lives in the library), and the library never imports a kind.

pub mod adapt_darec;
pub mod data_anime;
pub mod data_movielens;
pub mod data_split;
pub mod data_stats;
pub mod data_synth;
pub mod embed_svd;
pub mod eval_static;
pub mod irs_eval;
pub mod irs_train;
pub mod report_figure;
pub mod report_table;
pub mod select_best;
pub mod study_groups;
pub mod study_kmeans;
pub mod util;
pub mod world_eval;
pub mod world_fit;
pub mod world_synth;
