//! The deployment ledger: one append-only JSON-lines file per account recording every apply,
//! destroy and smoke-test result, so "which version runs where, and did it pass" has an answer
//! and promotions can require earlier stages to have passed.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
}

fn read(path: &Path) -> Vec<Record> {
    fs_err::read_to_string(path)
        .map(|text| text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect())
        .unwrap_or_default()
}

/// Now as RFC 3339 (UTC, seconds).
pub fn now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
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
        }
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
