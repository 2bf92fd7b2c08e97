//! Configuration loading: the project file, archetypes and account configs, each with source
//! positions, layered into one effective config per account.

pub mod account;
pub mod archetype;
pub mod catalog;
pub mod hooks;
pub mod layering;
pub mod policies;
pub mod project;
pub mod redact;
pub mod yaml;

pub use account::{Account, Slot};
pub use archetype::{Archetype, Backend, Provider};
pub use project::{Project, ProjectFile, StateSettings};
