//! Stamp: a Terraform-wrapping blueprint compiler. Account configs are validated against their
//! archetype's JSON Schema and rendered from templated blueprints into plain Terraform.
//!
//! Data flows one way: project files -> [`config`] -> [`schema`] -> [`render`] -> output.
//! [`cli`] is a thin layer over the operations in [`ops`].

pub mod artifact;
pub mod cache;
pub mod cli;
pub mod config;
pub mod diagnostics;
pub mod ephemeral;
pub mod fsio;
#[doc(hidden)]
pub mod fuzzing;
pub mod hcl_check;
pub mod ledger;
pub mod ops;
pub mod pipeline;
pub mod render;
pub mod schema;
pub mod starter;
pub mod store;
pub mod text;
pub mod version;

pub use cli::run;
pub mod report;
pub mod terraform;
