//! The deployment pipeline of one account: pre-deploy hooks -> render -> terraform init/plan ->
//! apply -> post-deploy hooks -> smoke tests -> cleanup on failure.

pub mod account;
pub mod data;
pub mod findings;
pub mod hooks;
pub mod lock;
pub mod policy;

pub use account::{AccountRun, Dirs, RunError};
