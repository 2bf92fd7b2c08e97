//! Where Stamp keeps its own state: the deployment ledger (who deployed which version where,
//! and which slot is live), the journals of migrations under way, and the locks that keep two
//! runs off one account. In a folder (the default) or in PostgreSQL, which every machine of a
//! team reaches: the same truth for CI runners and laptops alike.

mod folder;
mod pg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

pub use folder::FolderStore;
pub use pg::{Copied, PgStore};

use crate::config::project::StoreSettings;
use crate::ledger::journal::Journal;
use crate::ledger::{Damage, History, Record};

/// The environment variable naming a PostgreSQL store (a connection string), which wins over
/// `stamp.yaml`: no password needs to sit in a file.
pub const PG_ENV: &str = "STAMP_STORE_PG";

/// Why the store could not do what was asked.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot use `{path}`: {}", crate::diagnostics::io_reason(source))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("PostgreSQL store ({at}): {}", pg_reason(source))]
    Pg {
        at: String,
        #[source]
        source: postgres::Error,
    },
    #[error(
        "the PostgreSQL store has no connection string: set `{PG_ENV}` in the environment or `store: {{pg: {{conn_str: ...}}}}` in `stamp.yaml`"
    )]
    NoConnection,
    #[error("the PostgreSQL store's schema name `{0}` is not a plain lower-case name (letters, digits, `_`)")]
    BadSchema(String),
    #[error(
        "Stamp's tables in PostgreSQL (schema `{schema}`) are at version {found}, newer than this Stamp knows ({known}): upgrade Stamp"
    )]
    NewerSchema { schema: String, found: i64, known: i64 },
    #[error(
        "the connection to PostgreSQL was lost while this run held accounts' locks, so another run may hold them now: stopping (see what was done with `stamp history`)"
    )]
    LostLocks,
    #[error(
        "`{account}` already has records written through PostgreSQL: importing older folder records now would put them after those and change which slot the ledger says is live; import a folder only before the team switches to PostgreSQL"
    )]
    ImportAfterUse { account: String },
    #[error(
        "`{account}` already has records imported from another ledger folder that this one does not hold: importing this one's now would put them after those and change which slot the ledger says is live; import only the folder that holds the account's whole history"
    )]
    ImportDiverges { account: String },
    #[error("the migration journal of `{account}` was changed by another run since it was read: nothing was written")]
    Conflict { account: String },
    #[error("{place} is damaged ({problem}): repair or remove it once you know the state of both environments")]
    Damaged { place: String, problem: String },
}

fn pg_reason(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => db.message().to_string(),
        None => std::error::Error::source(error).map_or_else(|| error.to_string(), |s| format!("{error}: {s}")),
    }
}

/// A migration journal as stored, with the revision it was read at (for compare-and-swap).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredJournal {
    pub journal: Journal,
    pub revision: u64,
}

/// Who takes a lock: shown to a run that is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub user: String,
    pub pid: u32,
    pub command: String,
    /// RFC 3339.
    pub since: String,
}

impl Holder {
    /// This process, now.
    pub fn me() -> Self {
        let host = fs_err::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "an unknown host".into());
        let args: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
        Self {
            host,
            user: crate::ledger::who(),
            pid: std::process::id(),
            command: format!("stamp {}", args.join(" ")),
            since: crate::ledger::now(),
        }
    }

    /// `ana on laptop-7 (pid 4242, `stamp migrate prod ...`) since ...`, on one line.
    pub fn describe(&self) -> String {
        let one = crate::text::one_line;
        format!(
            "{} on {} (pid {}, `{}`) since {}",
            one(&self.user),
            one(&self.host),
            self.pid,
            one(&self.command),
            one(&self.since)
        )
    }
}

/// A lock held in the store: released when dropped, or by the server when the process dies.
pub struct StoreLock {
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl StoreLock {
    fn new(release: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self { release: Some(Box::new(release)) }
    }
}

impl std::fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreLock")
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

/// A lock the store could not give.
#[derive(Debug, Error)]
pub enum LockError {
    /// Another run holds it: who, if known.
    #[error("{what} is in use by another stamp run: {}", holder.as_ref().map_or_else(|| "its holder did not say who it is".to_string(), Holder::describe))]
    Held { what: String, holder: Option<Holder> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a damaged record is, for messages: a file and line, or a database row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The ledger file (folder store).
    pub file: Option<PathBuf>,
    /// `` `.stamp/ledger/prod.jsonl` line 3 ``, `record 17 of `prod` in PostgreSQL (stamp.ledger)`.
    pub text: String,
}

/// What Stamp keeps of its own.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Where the state is, for messages: "the folder `.stamp/ledger`".
    fn describe(&self) -> String;

    /// Whether every machine of the team sees this store (and its locks).
    fn is_shared(&self) -> bool;

    /// The records of `account`, oldest first, with the ones that could not be read.
    fn history(&self, account: &str) -> Result<History, StoreError>;

    /// The records of each of `accounts` that has any (`None`: of every account).
    fn histories(&self, accounts: Option<&[&str]>) -> Result<BTreeMap<String, History>, StoreError>;

    /// Appends a record, durably, in one step: a crash leaves it whole or absent.
    fn append(&self, record: &Record) -> Result<(), StoreError>;

    /// Where a damaged record of `account` is.
    fn place(&self, account: &str, damage: &Damage) -> Place;

    /// The journal of the migration of `account` under way, if any.
    fn journal(&self, account: &str) -> Result<Option<StoredJournal>, StoreError>;

    /// Where the journal of `account` is kept, for messages.
    fn journal_place(&self, account: &str) -> String;

    /// Writes the journal if the stored one is still at revision `expected` (`None`: there is
    /// none yet), so two runs can never both advance one journal. The new revision.
    fn put_journal(&self, journal: &Journal, expected: Option<u64>) -> Result<u64, StoreError>;

    /// Moves an ended (finished or rolled back) journal at revision `expected` among the
    /// finished ones, kept; where it went.
    fn finish_journal(&self, account: &str, expected: u64) -> Result<String, StoreError>;

    /// Every finished journal, each with a key naming it (oldest first).
    fn finished_journals(&self) -> Result<Vec<(String, Journal)>, StoreError>;

    /// Takes the lock `key` as every machine using this store sees it (`None`: the store has
    /// no shared locks, and the local lock is all there is). Within one process a lock can be
    /// taken again while held (a migration's steps run under the migration's lock).
    fn lock(&self, key: &str, holder: &Holder) -> Result<Option<StoreLock>, LockError>;

    /// The PostgreSQL store, if this is one (for `stamp store import` and `status`).
    fn as_pg(&self) -> Option<&PgStore> {
        None
    }
}

/// The store `stamp.yaml` (or `STAMP_STORE_PG`) names for the project at `root`. A PostgreSQL
/// store connects when first used.
pub fn open(settings: &StoreSettings, root: &Path, ledger: &Path) -> Result<Arc<dyn Store>, StoreError> {
    let schema = match settings {
        StoreSettings::Pg(pg) => pg.schema.clone(),
        StoreSettings::Folder => None,
    };
    if let Ok(conn) = std::env::var(PG_ENV)
        && !conn.trim().is_empty()
    {
        return Ok(PgStore::shared(conn.trim(), schema.as_deref())?);
    }
    match settings {
        StoreSettings::Folder => Ok(Arc::new(FolderStore::new(root.join(ledger), root))),
        StoreSettings::Pg(pg) => match &pg.conn_str {
            Some(conn) if !conn.trim().is_empty() => Ok(PgStore::shared(conn.trim(), schema.as_deref())?),
            _ => Err(StoreError::NoConnection),
        },
    }
}

/// The key of the lock on an account (both its slots).
pub fn account_key(account: &str) -> String {
    format!("account:{account}")
}

/// What a lock key locks, for messages.
pub fn describe_key(key: &str) -> String {
    match key.split_once(':') {
        Some(("account", name)) => format!("account `{}`", crate::text::one_line(name)),
        _ => format!("`{}`", crate::text::one_line(key)),
    }
}

/// Takes the store's lock on `key`, as a message on failure.
pub fn lock(store: &dyn Store, key: &str) -> Result<Option<StoreLock>, String> {
    store.lock(key, &Holder::me()).map_err(|e| e.to_string())
}
