//! Data reports: what `stamp clone`, `sync`, `migrate`, `playground new` and `reap` did, as text.

use std::fmt::Write as _;

use crate::ledger::journal::{StatDifference, Status};
use crate::ops::data::{CopyReport, DataCopy};
use crate::ops::migrate::MigrateReport;
use crate::ops::playground::{Playground, ReapAction, ReapReport};

/// A clone or sync: the version TARGET was built from, the data copied, and parity with SOURCE.
pub fn copy_text(report: &CopyReport) -> String {
    let mut text = String::new();
    if let Some(version) = &report.version {
        let _ = writeln!(text, "{} built from the blueprint version {} runs: {version}", report.target, report.source);
    }
    if let Some(data) = &report.data {
        text.push_str(&data_text(&report.source, &report.target, data));
    }
    if report.parity.is_empty() {
        let _ = writeln!(text, "parity with {}: only allowed differences", report.source);
    } else {
        let _ = writeln!(
            text,
            "parity with {}: {} differences its archetype does not allow",
            report.source,
            report.parity.len()
        );
        for issue in &report.parity {
            let show =
                |v: &Option<serde_json::Value>| v.as_ref().map_or_else(|| "(absent)".into(), ToString::to_string);
            let _ = writeln!(text, "  {}: {} vs {}", issue.path, show(&issue.reference), show(&issue.value));
        }
    }
    text
}

/// The data copied from SOURCE into TARGET: steps done, snapshots, statistics and any error.
fn data_text(source: &str, target: &str, data: &DataCopy) -> String {
    let mut text = format!("data of {source} copied into {target}:\n");
    for step in &data.steps {
        let _ = writeln!(text, "  done: {step}");
    }
    if let Some(id) = &data.snapshot {
        let _ = writeln!(text, "  snapshot restored: {id}");
    }
    if let Some(id) = &data.target_backup {
        let _ = writeln!(text, "  {target}'s previous data kept as snapshot {id}");
    }
    text.push_str(&stats_text(data.source_stats.as_ref(), data.target_stats.as_ref(), &data.differences));
    if let Some(error) = &data.error {
        let _ = writeln!(text, "  FAILED: {error}");
    }
    text
}

/// The comparison of two environments' statistics: equal, or their differences (nothing when
/// either side is missing).
fn stats_text(
    expected: Option<&serde_json::Value>,
    found: Option<&serde_json::Value>,
    differences: &[StatDifference],
) -> String {
    let (Some(expected), Some(_)) = (expected, found) else { return String::new() };
    if differences.is_empty() {
        format!("  statistics equal: {}\n", serde_json::to_string(expected).unwrap_or_default())
    } else {
        let mut text = String::from("  STATISTICS DIFFER:\n");
        for d in differences {
            let _ = writeln!(text, "    {d}");
        }
        text
    }
}

/// A migration: its status, the steps done, snapshots, statistics, and what to do next.
pub fn migrate_text(report: &MigrateReport) -> String {
    let journal = &report.journal;
    let status = match journal.status {
        Status::Running => "running",
        Status::Stopped => "STOPPED",
        Status::Finished => "finished",
        Status::RolledBack => "rolled back",
    };
    let mut text = format!(
        "migration of {} to {} ({} -> {}): {status}\n",
        journal.account, journal.to_version, journal.from_slot, journal.to_slot
    );
    for (step, at) in &journal.done {
        let now = if report.ran.contains(step) { "" } else { " (earlier)" };
        let _ = writeln!(text, "  done: {}{now}  {at}", step.describe());
    }
    if !journal.snapshots.is_empty() {
        let _ = writeln!(text, "  snapshots (kept): {}", journal.snapshots.join(", "));
    }
    if journal.status != Status::RolledBack {
        text.push_str(&stats_text(journal.old_stats.as_ref(), journal.new_stats.as_ref(), &journal.differences));
    }
    if let Some(error) = &journal.error {
        let _ = writeln!(text, "  error: {error}");
    }
    if report.reactivated {
        let _ = writeln!(text, "  the old environment ({} slot) serves again", journal.from_slot);
    }
    let _ = writeln!(text, "journal: {}", report.journal_place);
    if journal.status == Status::Stopped {
        let _ = writeln!(
            text,
            "next: fix the cause, then `stamp migrate {0} --resume`, or undo with `stamp migrate {0} --rollback`",
            journal.account
        );
    }
    text
}

/// A new playground: its account file, network, zone and expiry.
pub fn playground_text(playground: &Playground) -> String {
    format!(
        "wrote {}: network {}, zone {}, expires {}\n",
        playground.file, playground.cidr, playground.zone, playground.expires_at
    )
}

/// A reap: each ephemeral account and what was done to it, the files removed, and the totals.
pub fn reap_text(report: &ReapReport) -> String {
    let mut text = String::new();
    for a in &report.accounts {
        let expires = a.expires_at.as_deref().map(|e| format!(", expires {e}")).unwrap_or_default();
        let _ = writeln!(text, "{}: {} ({}; owner {}{expires})", a.account, a.action, a.reason, a.owner);
    }
    for file in &report.removed_files {
        let _ = writeln!(text, "removed {file}");
    }
    for kept in &report.kept_files {
        if kept.at == kept.file {
            let _ = writeln!(text, "kept {}: {}", kept.file, kept.why);
        } else {
            let _ = writeln!(text, "kept {} as {}: {}", kept.file, kept.at, kept.why);
        }
    }
    let _ = writeln!(
        text,
        "{} ephemeral accounts: {} destroyed, {} to destroy; {} non-ephemeral accounts left alone",
        report.accounts.len(),
        report.accounts.iter().filter(|a| a.action == ReapAction::Destroyed).count(),
        report.accounts.iter().filter(|a| a.action == ReapAction::WouldDestroy).count(),
        report.not_ephemeral
    );
    text
}
