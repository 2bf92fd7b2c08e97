//! An account config: one YAML file per account, and its effective (layered) config.

use std::path::PathBuf;

use serde_json::Value;

use super::yaml::Positions;
pub use crate::ledger::Slot;

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
    pub hooks: Option<super::hooks::Hooks>,
    /// The file's own `policies:`, run besides the archetype's (not part of the config the
    /// schema sees).
    pub policies: Vec<super::policies::Policy>,
    /// The file's `policy_waivers:`, each with its reason (not part of the config the schema
    /// sees).
    pub policy_waivers: Vec<super::policies::Waiver>,
    /// Which of the account's two side-by-side environments is live (from the ledger; a
    /// migration builds the new version in the other one, then switches).
    pub slot: Slot,
    /// When an ephemeral account was created: its `created_at`, else its first apply in the
    /// ledger (`None`: not created yet).
    pub created_at: Option<String>,
    /// Lines of the account's ledger that could not be read: until they are repaired, commands
    /// that act on the account's history refuse it.
    pub ledger_damage: Vec<crate::ledger::Damage>,
    /// JSON pointers of the effective config's sensitive (`writeOnly`) values.
    pub sensitive: std::collections::BTreeSet<String>,
    /// JSON pointers of values of another shape than the schema's place for secrets where they
    /// stand (see `SensitiveIndex::scan`): not sensitive, but never shown in a diagnostic.
    pub misshapen: std::collections::BTreeSet<String>,
}

impl Account {
    /// Whether the value at `pointer` is sensitive (or inside a sensitive value).
    pub fn is_sensitive(&self, pointer: &str) -> bool {
        self.sensitive_root(pointer).is_some()
    }

    /// The sensitive value that `pointer` is, or is inside (the outermost when nested): what a
    /// message may name of it (the keys of a sensitive map are part of its value).
    pub fn sensitive_root(&self, pointer: &str) -> Option<&str> {
        root_among(&self.sensitive, pointer)
    }

    /// The lines of the account's file that diagnostics show without their text: those of its
    /// sensitive and misshapen values.
    pub fn hidden_lines(&self) -> std::collections::BTreeSet<usize> {
        self.sensitive.iter().chain(&self.misshapen).flat_map(|p| self.positions.lines_of(p)).collect()
    }

    /// The sensitive or misshapen value that `pointer` is, or is inside: what no diagnostic
    /// shows (see [`Account::misshapen`]).
    pub fn hidden_root(&self, pointer: &str) -> Option<&str> {
        self.sensitive_root(pointer).or_else(|| root_among(&self.misshapen, pointer))
    }
}

/// The outermost of `pointers` that `pointer` is, or is inside.
fn root_among<'a>(pointers: &'a std::collections::BTreeSet<String>, pointer: &str) -> Option<&'a str> {
    pointers
        .iter()
        .find(|p| pointer == *p || pointer.strip_prefix(p.as_str()).is_some_and(|r| r.starts_with('/')) || p.is_empty())
        .map(String::as_str)
}

impl Account {
    /// Sets the live slot, creation time (the file's own `created_at`, else from the ledger)
    /// and damaged records from the account's history.
    pub fn annotate(&mut self, history: &crate::ledger::History) {
        self.slot = crate::ledger::live_slot(&history.records);
        self.created_at = self
            .effective
            .get("created_at")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| crate::ledger::created_at(&history.records, self.slot));
        self.ledger_damage.clone_from(&history.damage);
    }

    pub fn environment(&self) -> &str {
        self.effective.get("environment").and_then(Value::as_str).unwrap_or(&self.name)
    }

    pub fn str_at(&self, pointer: &str) -> Option<&str> {
        self.effective.pointer(pointer).and_then(Value::as_str)
    }

    /// The name of the account's environment in its slot: what its state, work folder and
    /// resource names are keyed by.
    pub fn instance(&self) -> String {
        self.slot.instance_of(&self.name)
    }

    /// The same account in the other slot.
    #[must_use]
    pub fn in_slot(&self, slot: Slot) -> Self {
        Self { slot, ..self.clone() }
    }

    pub fn is_ephemeral(&self) -> bool {
        self.effective.get("ephemeral").and_then(Value::as_bool).unwrap_or(false)
    }

    pub fn is_protected(&self) -> bool {
        self.effective.get("protected").and_then(Value::as_bool).unwrap_or(false)
    }
}
