//! `stamp history`, `stamp store status` and `stamp store import`.

use crate::config::catalog::Entry;
use std::path::Path;

use serde::Serialize;

use super::Workspace;
use crate::diagnostics::{Diagnostic, Report, Sources, did_you_mean};
use crate::ledger::Record;
use crate::store::{Copied, FolderStore, Store};

/// Why `history`, `store status` or `store import` did not give their report.
#[derive(Debug, thiserror::Error)]
pub enum StoreOpError {
    /// An account name that is not known (its diagnostic), or damaged records to import.
    #[error(transparent)]
    Invalid(Report),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(
        "the store is {store}: `stamp store import` copies a ledger folder into PostgreSQL; name the database with `{}` or `store: {{pg: {{conn_str: ...}}}}` in stamp.yaml",
        crate::store::PG_ENV
    )]
    NotPostgres { store: String },
    #[error("no ledger folder at `{0}`")]
    NoFolder(String),
}

impl From<Report> for StoreOpError {
    fn from(report: Report) -> Self {
        Self::Invalid(report)
    }
}

impl super::error::OpError for StoreOpError {
    fn own_code(&self) -> &'static str {
        "store"
    }

    fn wraps(&self) -> Option<&dyn super::error::OpError> {
        match self {
            Self::Invalid(report) => Some(report),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct HistoryOptions {
    /// Account names (none: every account with records).
    pub accounts: Vec<String>,
    /// At most this many records, the newest.
    pub limit: Option<usize>,
}

/// The ledger, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryReport {
    pub store: String,
    pub records: Vec<Record>,
    /// Damaged records, one line each with its place.
    pub warnings: Vec<String>,
}

/// `stamp history`.
pub fn history(workspace: &Workspace, options: &HistoryOptions) -> Result<HistoryReport, StoreOpError> {
    let store = workspace.store.as_ref();
    // An ACCOUNT may be a file of the project; accounts that are gone still have a history.
    let names: Vec<String> = options
        .accounts
        .iter()
        .map(|a| workspace.project.entry(a).map_or_else(|| a.clone(), |found| found.name().to_string()))
        .collect();
    let wanted: Vec<&str> = names.iter().map(String::as_str).collect();
    let histories = store.histories((!wanted.is_empty()).then_some(wanted.as_slice()))?;
    if let Some(missing) = wanted.iter().find(|name| !histories.contains_key(**name)) {
        let known = workspace.project.catalog.iter().map(Entry::name).chain(histories.keys().map(String::as_str));
        let mut d = Diagnostic::error("history.none", format!("no records of `{missing}` in {}", store.describe()));
        if workspace.project.entry(missing).is_none()
            && let Some(near) = did_you_mean(missing, known)
        {
            d = d.hint(format!("did you mean `{near}`?"));
        }
        return Err(StoreOpError::Invalid(Report::new(vec![d], Sources::default())));
    }
    let mut warnings = Vec::new();
    let mut records: Vec<(usize, Record)> = Vec::new();
    for (account, history) in histories {
        for damage in &history.damage {
            warnings.push(format!(
                "a damaged ledger record at {}: {}",
                store.place(&account, damage).text,
                damage.problem
            ));
        }
        records.extend(history.records.into_iter().enumerate());
    }
    // Newest first: by time, then by place in the account's history.
    records.sort_by(|(ia, a), (ib, b)| b.time.cmp(&a.time).then_with(|| a.account.cmp(&b.account)).then(ib.cmp(ia)));
    let records: Vec<Record> = records.into_iter().map(|(_, r)| r).take(options.limit.unwrap_or(usize::MAX)).collect();
    Ok(HistoryReport { store: store.describe(), records, warnings })
}

/// What the store holds (`stamp store status`).
#[derive(Debug, Clone, Serialize)]
pub struct StoreStatus {
    pub store: String,
    /// The version of Stamp's tables (PostgreSQL).
    pub schema_version: Option<i64>,
    pub records: usize,
    pub accounts: usize,
    pub migrations_under_way: Vec<String>,
    /// Who holds which lock now (`None`: the store has no shared locks).
    pub locks: Option<Vec<String>>,
}

/// `stamp store status`.
pub fn status(workspace: &Workspace) -> Result<StoreStatus, StoreOpError> {
    let store = workspace.store.as_ref();
    if let Some(pg) = store.as_pg() {
        let found = pg.status()?;
        return Ok(StoreStatus {
            store: store.describe(),
            schema_version: Some(found.schema_version),
            records: usize::try_from(found.records).unwrap_or(0),
            accounts: usize::try_from(found.accounts).unwrap_or(0),
            migrations_under_way: found.migrations_under_way,
            locks: Some(found.locks),
        });
    }
    let histories = store.histories(None)?;
    let mut under_way = Vec::new();
    for account in histories.keys().map(String::as_str).chain(workspace.project.catalog.iter().map(Entry::name)) {
        if store.journal(account)?.is_some() && !under_way.iter().any(|a| a == account) {
            under_way.push(account.to_string());
        }
    }
    under_way.sort();
    Ok(StoreStatus {
        store: store.describe(),
        schema_version: None,
        records: histories.values().map(|h| h.records.len()).sum(),
        accounts: histories.len(),
        migrations_under_way: under_way,
        locks: None,
    })
}

/// What `stamp store import` did.
#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    pub from: String,
    pub to: String,
    /// Records and finished journals in the folder.
    pub records: usize,
    pub journals: usize,
    pub copied: Copied,
}

/// `stamp store import`: the ledger folder `from` (default: the project's `ledger:`) into the
/// PostgreSQL store.
pub fn import(workspace: &Workspace, from: Option<&Path>) -> Result<Imported, StoreOpError> {
    let project = &workspace.project;
    let Some(pg) = workspace.store.as_pg() else {
        return Err(StoreOpError::NotPostgres { store: workspace.store.describe() });
    };
    let dir = from.map_or_else(|| project.root.join(&project.file.ledger), Path::to_path_buf);
    if !dir.is_dir() {
        return Err(StoreOpError::NoFolder(project.display(&dir)));
    }
    let folder = FolderStore::new(dir, &project.root);
    let records = folder.keyed_records().map_err(|damaged| {
        let diagnostics = damaged
            .into_iter()
            .map(|d| {
                Diagnostic::error("store.import", format!("a damaged ledger record: {d}"))
                    .hint("nothing was imported: repair or remove the record, then import again")
            })
            .collect();
        StoreOpError::Invalid(Report::new(diagnostics, Sources::default()))
    })?;
    let finished = folder.finished_journals()?;
    let finished: Vec<(String, crate::ledger::journal::Journal)> =
        finished.into_iter().map(|(key, journal)| (format!("folder:done/{key}"), journal)).collect();
    let mut active = Vec::new();
    let accounts = folder.accounts()?;
    for account in accounts.iter().map(String::as_str).chain(project.catalog.iter().map(Entry::name)) {
        if let Some(stored) = folder.journal(account)?
            && !active.iter().any(|j: &crate::ledger::journal::Journal| j.account == account)
        {
            active.push(stored.journal);
        }
    }
    let copied = pg.import(&records, &finished, &active)?;
    Ok(Imported {
        from: folder.describe(),
        to: pg.describe(),
        records: records.len(),
        journals: finished.len(),
        copied,
    })
}
