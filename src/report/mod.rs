//! Reports for people and machines: plans, diffs and drift as text, markdown, JSON and HTML,
//! every value escaped for its format.

pub mod diff;
pub mod drift;
pub mod markdown;
pub mod plan;
pub mod table;
