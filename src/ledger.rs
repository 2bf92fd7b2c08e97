//! The deployment ledger: one append-only JSON-lines file per account recording every apply,
//! destroy and smoke-test result, so "which version runs where, and did it pass" has an answer
//! and promotions can require earlier stages to have passed.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Project, Slot};

/// One deployment event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339, UTC.
    pub time: String,
    pub account: String,
    pub environment: String,
    /// `apply` or `destroy`.
    pub operation: String,
    /// `succeeded`, `failed` or `smoke-failed`.
    pub outcome: String,
    /// Whether smoke tests ran and all passed (`None`: the archetype has none).
    pub smoke_tests_passed: Option<bool>,
    pub version: String,
    pub environment_version: String,
    pub commit: String,
    /// sha256 of the rendered tree (or the artifact's digest) that was deployed.
    pub digest: String,
    /// `$USER` (or `unknown`).
    pub who: String,
    /// The slot deployed to (absent: `blue`); for `switch`, the slot that became live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<Slot>,
    /// For an ephemeral account: the creation time its `StampCreatedAt` tag carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// The ledger folder of a project.
pub struct Ledger {
    dir: PathBuf,
}

impl Ledger {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn file(&self, account: &str) -> PathBuf {
        self.dir.join(format!("{account}.jsonl"))
    }

    /// Appends a record as one line in one write, then syncs: a crash can at worst leave a
    /// partial last line, which readers skip; earlier records are never touched.
    pub fn append(&self, record: &Record) -> std::io::Result<()> {
        fs_err::create_dir_all(&self.dir)?;
        let mut line = serde_json::to_string(record).expect("records serialise");
        line.push('\n');
        let path = self.file(&record.account);
        // After a torn write, start on a fresh line so this record stays readable.
        if fs_err::read(&path).is_ok_and(|bytes| bytes.last().is_some_and(|&b| b != b'\n')) {
            line.insert(0, '\n');
        }
        let mut file = fs_err::OpenOptions::new().create(true).append(true).open(&path)?;
        file.write_all(line.as_bytes())?;
        file.file().sync_all()
    }

    /// Every readable record of an account, oldest first.
    pub fn records(&self, account: &str) -> Vec<Record> {
        read(&self.file(account))
    }

    /// The project's ledger.
    pub fn of(project: &Project) -> Self {
        Self::new(project.root.join(&project.file.ledger))
    }
}

/// The slot that is live: the one of the last `switch` (`blue` before any).
pub fn live_slot(records: &[Record]) -> Slot {
    records
        .iter()
        .rev()
        .find(|r| r.operation == "switch" && r.outcome == "succeeded")
        .and_then(|r| r.slot)
        .unwrap_or_default()
}

/// When the account's environment was created: its first successful apply since its last
/// successful destroy of the live slot.
pub fn created_at(records: &[Record], slot: Slot) -> Option<String> {
    let since = records
        .iter()
        .rposition(|r| r.operation == "destroy" && r.outcome == "succeeded" && r.slot.unwrap_or_default() == slot)
        .map_or(0, |i| i + 1);
    records[since..]
        .iter()
        // A failed first apply may have created (and tagged) resources too.
        .find(|r| r.operation == "apply" && r.slot.unwrap_or_default() == slot)
        .map(|r| r.created_at.clone().unwrap_or_else(|| r.time.clone()))
}

/// Sets each account's live slot and creation time from the ledger (and its `created_at`).
/// Every command loads the project through here: the ledger folder is listed once, and only
/// the files of accounts that were ever deployed are read.
pub fn annotate(project: &mut Project) {
    let ledger = Ledger::of(project);
    let deployed: std::collections::HashSet<String> = fs_err::read_dir(&ledger.dir)
        .map(|entries| {
            entries.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".jsonl").map(str::to_string)).collect()
        })
        .unwrap_or_default();
    for account in &mut project.accounts {
        annotate_account(&ledger, deployed.contains(&account.name), account);
    }
}

/// [`annotate`] for one account (`present`: it has a ledger file).
pub fn annotate_account(ledger: &Ledger, present: bool, account: &mut crate::config::Account) {
    let records = if present { ledger.records(&account.name) } else { Vec::new() };
    account.slot = live_slot(&records);
    account.created_at = own_created_at(account).or_else(|| created_at(&records, account.slot));
}

fn own_created_at(account: &crate::config::Account) -> Option<String> {
    account.effective.get("created_at").and_then(serde_json::Value::as_str).map(str::to_string)
}

fn read(path: &Path) -> Vec<Record> {
    fs_err::read_to_string(path)
        .map(|text| text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect())
        .unwrap_or_default()
}

/// Now as RFC 3339 (UTC, seconds).
pub fn now() -> String {
    crate::ephemeral::format_time(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: &str) -> Record {
        Record {
            time: "2026-11-22T00:00:00Z".into(),
            account: "qa".into(),
            environment: "qa".into(),
            operation: "apply".into(),
            outcome: outcome.into(),
            smoke_tests_passed: Some(true),
            version: "1.0.0".into(),
            environment_version: "1.0.0+abc".into(),
            commit: "abc".into(),
            digest: "d".into(),
            who: "me".into(),
            slot: None,
            created_at: None,
        }
    }

    #[test]
    fn live_slot_and_creation_time_follow_switches_and_destroys() {
        let at = |time: &str, operation: &str, slot: Option<Slot>| Record {
            time: time.into(),
            operation: operation.into(),
            slot,
            ..record("succeeded")
        };
        let mut records = vec![at("t1", "apply", None), at("t2", "apply", None)];
        assert_eq!((live_slot(&records), created_at(&records, Slot::Blue)), (Slot::Blue, Some("t1".into())));
        records.push(at("t3", "apply", Some(Slot::Green)));
        records.push(at("t4", "switch", Some(Slot::Green)));
        records.push(at("t5", "destroy", None));
        assert_eq!((live_slot(&records), created_at(&records, Slot::Green)), (Slot::Green, Some("t3".into())));
        assert_eq!(created_at(&records, Slot::Blue), None);
    }

    #[test]
    fn appends_and_skips_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path().join("ledger"));
        ledger.append(&record("succeeded")).unwrap();
        ledger.append(&record("failed")).unwrap();
        // A crash in the middle of a write leaves a partial line at the end.
        let path = dir.path().join("ledger/qa.jsonl");
        let mut text = fs_err::read_to_string(&path).unwrap();
        text.push_str("{\"time\":\"2026-");
        fs_err::write(&path, text).unwrap();
        let records = ledger.records("qa");
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].outcome, "failed");
        ledger.append(&record("succeeded")).unwrap();
        assert_eq!(ledger.records("qa").len(), 3, "a record after a torn line is kept");
        assert!(ledger.records("nobody").is_empty());
    }
}
