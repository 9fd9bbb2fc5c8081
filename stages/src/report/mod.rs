//! Reports for people: summaries gathered over seeds and matrix axes, and charts.

pub mod chart;
pub mod summaries;
