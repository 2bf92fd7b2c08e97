//! Reports for people and machines: plans, diffs and drift as text, markdown, JSON and HTML,
//! every value escaped for its format; what deployments, data copies, migrations, artifacts
//! and the store did, as text.

pub mod artifact;
pub mod data;
pub mod deploy;
pub mod diff;
pub mod drift;
pub mod list;
pub mod markdown;
pub mod plan;
pub mod store;
pub mod table;
