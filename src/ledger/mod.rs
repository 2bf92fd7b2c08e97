//! The deployment ledger: one append-only JSON-lines file per account recording every apply,
//! destroy and smoke-test result, so "which version runs where, and did it pass" has an answer
//! and promotions can require earlier stages to have passed.

use serde::{Deserialize, Serialize};

pub mod journal;

/// One of an account's two side-by-side environments. `blue` is the account's own name
/// (state, work folder, resource names); `green` adds a `-green` suffix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    #[default]
    Blue,
    Green,
}

impl Slot {
    #[must_use]
    pub fn other(self) -> Self {
        match self {
            Self::Blue => Self::Green,
            Self::Green => Self::Blue,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blue => "blue",
            Self::Green => "green",
        }
    }

    /// The name of account `name`'s environment in this slot: what its state, work folder and
    /// resource names are keyed by (`<name>-green` for the second slot).
    pub fn instance_of(self, name: &str) -> String {
        match self {
            Self::Blue => name.to_string(),
            Self::Green => format!("{name}-green"),
        }
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Apply,
    Destroy,
    /// A migration made the record's slot the live one.
    Switch,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Apply => "apply",
            Self::Destroy => "destroy",
            Self::Switch => "switch",
        })
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Succeeded,
    Failed,
    /// Applied, but a smoke test failed.
    SmokeFailed,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::SmokeFailed => "smoke-failed",
        })
    }
}

/// One deployment event. The wire format (JSON, one record per line) is the same as before
/// records were typed: `operation` and `outcome` are the same words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339, UTC.
    pub time: String,
    pub account: String,
    pub environment: String,
    pub operation: Operation,
    pub outcome: Outcome,
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

/// An account's records as read, and the lines that could not be read.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub records: Vec<Record>,
    pub damage: Vec<Damage>,
}

/// A ledger line that is not a record: torn by a crash, edited by hand, or corrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// 1-based; 0 when the file as a whole cannot be read.
    pub line: usize,
    pub problem: String,
}

impl Record {
    /// The slot the record is about (absent: `blue`).
    pub fn slot(&self) -> Slot {
        self.slot.unwrap_or_default()
    }

    fn succeeded(&self, operation: Operation) -> bool {
        self.operation == operation && self.outcome == Outcome::Succeeded
    }
}

/// The slot that is live: the one of the last `switch` (`blue` before any).
pub fn live_slot(records: &[Record]) -> Slot {
    records.iter().rev().find(|r| r.succeeded(Operation::Switch)).map(Record::slot).unwrap_or_default()
}

/// The last successful `operation` of `slot`.
pub fn last_success(records: &[Record], slot: Slot, operation: Operation) -> Option<&Record> {
    records.iter().rev().find(|r| r.succeeded(operation) && r.slot() == slot)
}

/// Whether `version`, built from `commit`, was applied successfully (with its smoke tests
/// passing, when `smoke_tests` says the account has any).
pub fn passed(records: &[Record], version: &str, commit: &str, smoke_tests: bool) -> bool {
    records.iter().any(|r| {
        r.succeeded(Operation::Apply)
            && r.version == version
            && r.commit == commit
            && (!smoke_tests || r.smoke_tests_passed == Some(true))
    })
}

/// When the account's environment was created: its first successful apply since its last
/// successful destroy of the live slot.
pub fn created_at(records: &[Record], slot: Slot) -> Option<String> {
    let since = records.iter().rposition(|r| r.succeeded(Operation::Destroy) && r.slot() == slot).map_or(0, |i| i + 1);
    records[since..]
        .iter()
        // A failed first apply may have created (and tagged) resources too.
        .find(|r| r.operation == Operation::Apply && r.slot() == slot)
        .map(|r| r.created_at.clone().unwrap_or_else(|| r.time.clone()))
}

/// Reads one stored record of `account` (a ledger line, a database row): what is wrong with
/// it if it is not one.
pub fn parse_record(bytes: &[u8], account: &str) -> Result<Record, String> {
    std::str::from_utf8(bytes)
        .map_err(|_| "not UTF-8 text".to_string())
        .and_then(|text| serde_json::from_str::<Record>(text).map_err(|e| format!("not a ledger record ({e})")))
        .and_then(|record| {
            if record.account == account {
                Ok(record)
            } else {
                Err(format!("a record of account `{}`, not `{account}`", crate::text::one_line(&record.account)))
            }
        })
}

/// Reads the lines of a ledger file: each line that is not a record of `account` is reported
/// with its number, and the others still count.
pub fn read_lines(bytes: &[u8], account: &str) -> History {
    let mut history = History::default();
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_record(line, account) {
            Ok(record) => history.records.push(record),
            Err(problem) => history.damage.push(Damage { line: index + 1, problem }),
        }
    }
    history
}

/// Who runs Stamp: `$STAMP_WHO` (CI can name the pipeline or the person who triggered it),
/// else `$USER`, else `$LOGNAME`, else `unknown`.
pub fn who() -> String {
    ["STAMP_WHO", "USER", "LOGNAME"]
        .into_iter()
        .find_map(|key| std::env::var(key).ok().filter(|v| !v.trim().is_empty()))
        .map_or_else(|| "unknown".into(), |v| crate::text::one_line(v.trim()).into_owned())
}

/// Now as RFC 3339 (UTC, seconds).
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// A record for tests.
#[cfg(test)]
pub(crate) fn example(account: &str, outcome: Outcome) -> Record {
    Record {
        time: "2026-11-22T00:00:00Z".into(),
        account: account.into(),
        environment: account.into(),
        operation: Operation::Apply,
        outcome,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: Outcome) -> Record {
        example("qa", outcome)
    }

    #[test]
    fn live_slot_and_creation_time_follow_switches_and_destroys() {
        let at = |time: &str, operation: Operation, slot: Option<Slot>| Record {
            time: time.into(),
            operation,
            slot,
            ..record(Outcome::Succeeded)
        };
        let mut records = vec![at("t1", Operation::Apply, None), at("t2", Operation::Apply, None)];
        assert_eq!((live_slot(&records), created_at(&records, Slot::Blue)), (Slot::Blue, Some("t1".into())));
        records.push(at("t3", Operation::Apply, Some(Slot::Green)));
        records.push(at("t4", Operation::Switch, Some(Slot::Green)));
        records.push(at("t5", Operation::Destroy, None));
        assert_eq!((live_slot(&records), created_at(&records, Slot::Green)), (Slot::Green, Some("t3".into())));
        assert_eq!(created_at(&records, Slot::Blue), None);
    }

    #[test]
    fn damaged_lines_are_reported_and_the_others_still_count() {
        let good = serde_json::to_string(&record(Outcome::Failed)).unwrap();
        let mut bytes = serde_json::to_string(&record(Outcome::Succeeded)).unwrap().into_bytes();
        // One torn byte in the first record.
        bytes[10] = 0xff;
        bytes.extend(format!("\n{good}\n\n{{\"time\":\"2026-").bytes());
        let history = read_lines(&bytes, "qa");
        assert_eq!(history.records.len(), 1);
        assert_eq!(history.records[0].outcome, Outcome::Failed);
        assert_eq!(history.damage[0], Damage { line: 1, problem: "not UTF-8 text".into() });
        assert_eq!(history.damage[1].line, 4, "a torn last line is reported with its number");
        let other = Record { account: "prod".into(), ..record(Outcome::Succeeded) };
        let history = read_lines(serde_json::to_string(&other).unwrap().as_bytes(), "qa");
        assert!(history.damage[0].problem.contains("`prod`"));
    }
}
