//! Data in columnar Rust form: the ratings and items tables every loader produces, Arrow table
//! helpers, the text parsers and shared loader code, sessions, the sim/real split and the
//! synthetic world.

pub mod items;
pub mod loader;
pub mod ratings;
pub mod sessions;
pub mod split;
pub mod synth;
pub mod table;
pub mod text;
