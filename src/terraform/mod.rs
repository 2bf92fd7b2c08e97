//! Running Terraform: finding the binary, running it with retries, reading its plans.

pub mod binary;
pub mod plan;
pub mod plan_json;
pub mod process;
pub mod providers;
pub mod retry;

pub use binary::Terraform;
