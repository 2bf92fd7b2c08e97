//! The journal of a migration under way: which steps are done, which snapshots were taken,
//! what the statistics said. Kept by the store next to the ledger, whose `switch` records say
//! which slot is live; together they are the truth about an account in the middle of a
//! migration, wherever the store is.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Slot;

/// The journal format this Stamp writes (and the only one it reads).
pub const FORMAT: &str = "stamp-migration/1";

/// The steps of a migration, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationStep {
    Standby,
    Snapshot,
    Build,
    Restore,
    Verify,
    Switch,
    Retire,
}

/// Every step, in order.
pub const STEPS: [MigrationStep; 7] = [
    MigrationStep::Standby,
    MigrationStep::Snapshot,
    MigrationStep::Build,
    MigrationStep::Restore,
    MigrationStep::Verify,
    MigrationStep::Switch,
    MigrationStep::Retire,
];

impl MigrationStep {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Standby => "old environment in standby",
            Self::Snapshot => "snapshot of the old environment",
            Self::Build => "new version built alongside",
            Self::Restore => "snapshot restored into the new environment",
            Self::Verify => "statistics of old and new are equal",
            Self::Switch => "switched: the new environment is live",
            Self::Retire => "old environment retired",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Running,
    /// Stopped by an error or a statistics mismatch; resume or roll back.
    Stopped,
    Finished,
    RolledBack,
}

/// The journal of one migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub format: String,
    pub account: String,
    pub from_slot: Slot,
    pub to_slot: Slot,
    pub to_version: String,
    pub started: String,
    pub status: Status,
    /// Completed steps, with when.
    pub done: Vec<(MigrationStep, String)>,
    /// Every snapshot taken by this migration, the one to restore last (none is ever deleted).
    pub snapshots: Vec<String>,
    pub old_stats: Option<Value>,
    pub new_stats: Option<Value>,
    pub differences: Vec<StatDifference>,
    pub error: Option<String>,
}

impl Journal {
    /// A migration of `account` from `from` to its other slot, at `to_version`, started now.
    pub fn start(account: &str, from: Slot, to_version: &str) -> Self {
        Self {
            format: FORMAT.into(),
            account: account.to_string(),
            from_slot: from,
            to_slot: from.other(),
            to_version: to_version.to_string(),
            started: super::now(),
            status: Status::Running,
            done: Vec::new(),
            snapshots: Vec::new(),
            old_stats: None,
            new_stats: None,
            differences: Vec::new(),
            error: None,
        }
    }

    /// Reads a stored journal of `account`: what is wrong with it if it is not one.
    pub fn parse(value: Value, account: &str) -> Result<Self, String> {
        let journal: Self = serde_json::from_value(value).map_err(|e| format!("not a migration journal ({e})"))?;
        if journal.format != FORMAT {
            return Err(format!("format `{}`, expected `{FORMAT}`", crate::text::one_line(&journal.format)));
        }
        if journal.account != account {
            return Err(format!("a journal of account `{}`, not `{account}`", crate::text::one_line(&journal.account)));
        }
        if journal.from_slot == journal.to_slot {
            return Err(format!("it migrates slot `{}` to itself", journal.from_slot));
        }
        Ok(journal)
    }

    /// The snapshot to restore: the last one taken.
    pub fn snapshot(&self) -> Option<&str> {
        self.snapshots.last().map(String::as_str)
    }

    pub fn is_done(&self, step: MigrationStep) -> bool {
        self.done.iter().any(|(s, _)| *s == step)
    }

    /// The first step not done yet.
    pub fn next(&self) -> Option<MigrationStep> {
        STEPS.into_iter().find(|s| !self.is_done(*s))
    }

    pub fn mark(&mut self, step: MigrationStep) {
        if !self.is_done(step) {
            self.done.push((step, super::now()));
        }
    }

    /// Forgets the data steps before the switch: after a stop, the old environment served
    /// traffic again, so its data must be frozen and copied anew. The new environment stays as
    /// built (its version is the journal's; to build another, roll back and migrate again).
    pub fn unfreeze(&mut self) {
        self.done.retain(|(s, _)| matches!(s, MigrationStep::Build | MigrationStep::Switch | MigrationStep::Retire));
    }

    /// Ended: finished, or rolled back.
    pub fn is_over(&self) -> bool {
        matches!(self.status, Status::Finished | Status::RolledBack)
    }

    /// One line for a command refused because this migration is under way.
    pub fn under_way(&self, place: &str) -> String {
        let next = self.next().map_or("none", MigrationStep::describe);
        format!(
            "a migration of `{0}` to {1} is {2} (next step: {next}); finish it with `stamp migrate {0} --resume` or undo it with `--rollback` (journal: {place})",
            self.account,
            self.to_version,
            if self.status == Status::Stopped { "stopped" } else { "under way" },
        )
    }
}

/// A statistic that differs between two environments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatDifference {
    /// Like `customers.count`.
    pub path: String,
    pub expected: Option<Value>,
    pub found: Option<Value>,
}

impl std::fmt::Display for StatDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| v.as_ref().map_or_else(|| "missing".to_string(), Value::to_string);
        write!(f, "{}: {} expected, {} found", self.path, show(&self.expected), show(&self.found))
    }
}
