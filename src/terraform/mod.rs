//! Running Terraform: finding the binary, running it with retries, reading its plans.

pub mod plan;
