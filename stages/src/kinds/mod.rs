//! Every built-in stage implementation, one file per kind.

use std::sync::Arc;

use crate::stage::Stage;

pub mod data_anime;
pub mod data_movielens;
pub mod data_split;
pub mod data_stats;
pub mod data_synth;
mod loader;
pub mod util;

/// All built-in stages.
pub fn all() -> Vec<Arc<dyn Stage>> {
    vec![
        Arc::new(data_movielens::MovieLens),
        Arc::new(data_anime::Anime),
        Arc::new(data_synth::Synth),
        Arc::new(data_split::Split),
        Arc::new(data_stats::Stats),
        Arc::new(util::Sequence),
        Arc::new(util::Sum),
        Arc::new(util::Fail),
    ]
}
