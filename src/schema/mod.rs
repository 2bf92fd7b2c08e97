//! Validation: each account's effective config against its archetype's JSON Schema, and
//! checks across accounts (unique ids, names and zones, no overlapping networks).

pub mod cross_account;
pub mod formats;
pub use crate::config::redact;
pub mod validator;

pub use validator::Validators;
