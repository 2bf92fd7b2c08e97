//! Store reports: the deployment ledger (`stamp history`), where Stamp's state is (`stamp store
//! status`) and what `stamp store import` copied, as text.

use std::fmt::Write as _;

use super::table::table;
use crate::ops::store::{HistoryReport, Imported, StoreStatus};

/// The deployment ledger as a table, newest first.
pub fn history_text(report: &HistoryReport) -> String {
    if report.records.is_empty() {
        return "no deployments recorded\n".into();
    }
    let rows: Vec<[String; 8]> = report
        .records
        .iter()
        .map(|r| {
            let operation = match r.slot {
                Some(slot) if slot != crate::config::Slot::Blue => format!("{} ({slot})", r.operation),
                _ => r.operation.to_string(),
            };
            let smoke = match r.smoke_tests_passed {
                Some(true) => "passed",
                Some(false) => "FAILED",
                None => "-",
            };
            [
                r.time.clone(),
                r.account.clone(),
                operation,
                r.environment_version.clone(),
                r.commit.chars().take(12).collect(),
                r.outcome.to_string(),
                smoke.into(),
                r.who.clone(),
            ]
        })
        .collect();
    table(["TIME", "ACCOUNT", "OPERATION", "VERSION", "COMMIT", "OUTCOME", "SMOKE", "WHO"], &rows)
}

/// Where the store is and what it holds: records, migrations under way and locks.
pub fn status_text(status: &StoreStatus) -> String {
    let mut text = format!("store: {}\n", status.store);
    if let Some(version) = status.schema_version {
        let _ = writeln!(text, "schema version: {version}");
    }
    let _ = writeln!(text, "records: {} of {} accounts", status.records, status.accounts);
    let under_way =
        if status.migrations_under_way.is_empty() { "none".into() } else { status.migrations_under_way.join(", ") };
    let _ = writeln!(text, "migrations under way: {under_way}");
    match &status.locks {
        None => text.push_str("locks: on each machine (the folder store shares none)\n"),
        Some(locks) if locks.is_empty() => text.push_str("locks: none held\n"),
        Some(locks) => {
            for lock in locks {
                let _ = writeln!(text, "locked: {}", crate::text::one_line(lock));
            }
        }
    }
    text
}

/// What an import copied into PostgreSQL, and how the copy was verified.
pub fn import_text(imported: &Imported) -> String {
    let copied = &imported.copied;
    format!(
        "imported {} ledger records ({} were there already) and {} finished migration journals ({} were there already) from {} into {}; {} migrations under way copied\nverified: {} records and {} journals read back, digest {}\n",
        copied.records_added,
        imported.records - copied.records_added,
        copied.journals_added,
        imported.journals - copied.journals_added,
        imported.from,
        imported.to,
        copied.active_journals,
        copied.records_verified,
        copied.journals_verified,
        copied.digest
    )
}
