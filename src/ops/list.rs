//! `stamp list`: the project's accounts.

use serde::Serialize;

use super::Workspace;
use crate::diagnostics::Diagnostic;

#[derive(Debug, Clone, Serialize)]
pub struct AccountSummary {
    pub name: String,
    pub archetype: String,
    pub environment: String,
    /// `region` of the config, when it has one.
    pub region: Option<String>,
    pub protected: bool,
    pub file: String,
}

pub fn list(workspace: &Workspace) -> (Vec<AccountSummary>, Vec<Diagnostic>) {
    // The catalog has all of it: no account is loaded whole.
    let accounts = workspace
        .project
        .catalog
        .iter()
        .map(|e| AccountSummary {
            name: e.summary.name.clone(),
            archetype: e.summary.archetype.clone(),
            environment: e.summary.environment.clone(),
            region: e.summary.region.clone(),
            protected: e.summary.protected,
            file: e.display.clone(),
        })
        .collect();
    (accounts, workspace.diagnostics.clone())
}
