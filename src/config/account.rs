//! An account config: one YAML file per account, and its effective (layered) config.

use std::path::PathBuf;

use serde_json::Value;

use super::yaml::Positions;

/// One account (environment) of the project.
#[derive(Debug, Clone)]
pub struct Account {
    /// `name` from the file, or the file name without `.yaml`.
    pub name: String,
    pub path: PathBuf,
    /// The file as shown to the user (relative to the project when inside it).
    pub display: String,
    pub archetype: String,
    /// What the file itself says.
    pub own: Value,
    pub positions: Positions,
    /// Org defaults <- archetype defaults <- the file.
    pub effective: Value,
    /// The file's own `hooks:` (not part of the config the schema sees).
    pub hooks: Option<crate::pipeline::hooks::Hooks>,
}

impl Account {
    pub fn environment(&self) -> &str {
        self.effective.get("environment").and_then(Value::as_str).unwrap_or(&self.name)
    }

    pub fn str_at(&self, pointer: &str) -> Option<&str> {
        self.effective.pointer(pointer).and_then(Value::as_str)
    }

    pub fn is_protected(&self) -> bool {
        self.effective.get("protected").and_then(Value::as_bool).unwrap_or(false)
    }
}
