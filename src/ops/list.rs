//! `stamp list`: the project's accounts.

use serde::Serialize;
use serde_json::Value;

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
    let accounts = workspace
        .project
        .accounts
        .iter()
        .map(|a| AccountSummary {
            name: a.name.clone(),
            archetype: a.archetype.clone(),
            environment: a.environment().to_string(),
            region: a.effective.get("region").and_then(Value::as_str).map(str::to_string),
            protected: a.is_protected(),
            file: a.display.clone(),
        })
        .collect();
    (accounts, workspace.diagnostics.clone())
}
