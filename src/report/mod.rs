//! Reports for people and machines: plan summaries as text, markdown and JSON.

pub mod drift;
pub mod plan;
