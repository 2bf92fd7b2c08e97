//! The PostgreSQL store: every machine of a team sees one ledger, one journal per migration
//! and one lock per account.
//!
//! - Ledger records are rows appended in one statement each (one transaction).
//! - A journal advances by compare-and-swap on its revision: of two runs that read the same
//!   revision, only the first write lands; the other is told.
//! - The lock on an account is a session-level advisory lock on this process's connection: held
//!   while the run works, released by the server the moment the process dies (no stale lock
//!   after `kill -9`, none held by a laptop that went away). Who holds it is written beside it.
//!
//! Stamp creates its tables in a schema of its own (`stamp` unless `store.pg.schema` says
//! otherwise), upgrades them with the migrations below, and refuses tables newer than it knows.
//! One plain connection per process: no pooler in between (a transaction-mode pooler would
//! drop session locks).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use postgres::{Client, NoTls};
use sha2::{Digest, Sha256};

use super::{Holder, LockError, Place, Store, StoreError, StoreLock, StoredJournal};
use crate::ledger::journal::Journal;
use crate::ledger::{Damage, History, Record};

/// The versions of Stamp's tables, each a step from the one before; `{s}` is the schema.
const MIGRATIONS: &[&str] = &[
    // 1: ledger, journals, finished journals, who holds which lock.
    "CREATE TABLE {s}.ledger (
        id bigserial PRIMARY KEY,
        account text NOT NULL,
        record jsonb NOT NULL,
        import_key text UNIQUE,
        written_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX ledger_by_account ON {s}.ledger (account, id);
    CREATE TABLE {s}.journals (
        account text PRIMARY KEY,
        revision bigint NOT NULL,
        journal jsonb NOT NULL
    );
    CREATE TABLE {s}.finished_journals (
        id bigserial PRIMARY KEY,
        account text NOT NULL,
        journal jsonb NOT NULL,
        import_key text UNIQUE,
        finished_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE {s}.lock_holders (
        key text PRIMARY KEY,
        host text NOT NULL,
        username text NOT NULL,
        pid bigint NOT NULL,
        command text NOT NULL,
        since text NOT NULL,
        backend_pid integer NOT NULL
    );",
];

/// The schema version this Stamp writes.
#[allow(clippy::cast_possible_wrap, reason = "a handful of migrations")]
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A PostgreSQL store. One per connection string and schema in a process (see
/// [`PgStore::shared`]), so every lock this process takes is on one session.
pub struct PgStore {
    conn_str: String,
    schema: String,
    client: Mutex<Option<Client>>,
    /// Locks held by this process, by key, with how often each was taken.
    held: Mutex<HashMap<String, usize>>,
    /// How many keys are held: a lost connection with locks held must stop the run.
    held_count: AtomicUsize,
    /// The connection was lost while locks were held: until every one of them is let go,
    /// nothing more is done through this store (no silent reconnect, no lock "taken again"
    /// that the server no longer holds).
    lost: AtomicBool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgStore({})", self.describe())
    }
}

/// What `stamp store import` copied.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Copied {
    /// Records and finished journals newly added (the rest were there already).
    pub records_added: usize,
    pub journals_added: usize,
    /// Migrations under way copied (or already there, identical).
    pub active_journals: usize,
    /// What the database holds of the copy, read back: equal to the source, or the import fails.
    pub records_verified: usize,
    pub journals_verified: usize,
    /// sha256 over the records read back, in the source's order.
    pub digest: String,
}

/// What the store holds (`stamp store status`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub schema: String,
    pub schema_version: i64,
    pub records: i64,
    pub accounts: i64,
    pub migrations_under_way: Vec<String>,
    /// `account prod: ana on laptop (...)`.
    pub locks: Vec<String>,
}

fn valid_schema(name: &str) -> bool {
    name.len() <= 63
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `value` as canonical JSON text (keys sorted): the same text for the same value, whatever
/// order PostgreSQL's `jsonb` keeps its keys in.
fn canonical(value: &impl serde::Serialize) -> String {
    crate::render::sorted_keys(&serde_json::to_value(value).expect("values serialise")).to_string()
}

/// A journal revision as the database keeps it.
fn db_revision(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}

impl PgStore {
    /// The store for `conn_str` and `schema` (default `stamp`), the same one for every caller
    /// in this process. Nothing is connected until it is used.
    pub fn shared(conn_str: &str, schema: Option<&str>) -> Result<Arc<Self>, StoreError> {
        type Stores = Mutex<HashMap<(String, String), Arc<PgStore>>>;
        static STORES: OnceLock<Stores> = OnceLock::new();
        let schema = schema.unwrap_or("stamp").to_string();
        if !valid_schema(&schema) {
            return Err(StoreError::BadSchema(crate::text::one_line(&schema).into_owned()));
        }
        conn_str
            .parse::<postgres::Config>()
            .map_err(|source| StoreError::Pg { at: "its connection string".into(), source })?;
        let mut stores = STORES.get_or_init(Mutex::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let store = stores.entry((conn_str.to_string(), schema.clone())).or_insert_with(|| {
            Arc::new(Self {
                conn_str: conn_str.to_string(),
                schema,
                client: Mutex::new(None),
                held: Mutex::new(HashMap::new()),
                held_count: AtomicUsize::new(0),
                lost: AtomicBool::new(false),
            })
        });
        Ok(Arc::clone(store))
    }

    /// `{s}` in `sql` as the (validated, quoted) schema.
    fn sql(&self, sql: &str) -> String {
        sql.replace("{s}", &format!("\"{}\"", self.schema))
    }

    fn error(&self, at: &str) -> impl FnOnce(postgres::Error) -> StoreError + '_ {
        let at = format!("{at}, schema `{}`", self.schema);
        move |source| StoreError::Pg { at, source }
    }

    /// Connects, and creates or upgrades Stamp's tables.
    fn connect(&self) -> Result<Client, StoreError> {
        let mut config: postgres::Config =
            self.conn_str.parse().map_err(|source| StoreError::Pg { at: "its connection string".into(), source })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("stamp");
        }
        // A server that went away (or a network that dropped) is noticed within a minute or
        // so, not after the operating system's two hours: the run then stops (its locks are
        // gone) instead of waiting on a dead connection.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3);
        let mut client = config.connect(NoTls).map_err(self.error("connecting"))?;
        self.upgrade(&mut client)?;
        Ok(client)
    }

    /// The schema version found, without changing anything (0: no tables yet).
    fn schema_version(&self, client: &mut Client) -> Result<i64, StoreError> {
        let meta = format!("\"{}\".meta", self.schema);
        let exists: bool = client
            .query_one("SELECT pg_catalog.to_regclass($1::text) IS NOT NULL", &[&meta])
            .map_err(self.error("reading its schema version"))?
            .get(0);
        if !exists {
            return Ok(0);
        }
        Ok(client
            .query_opt(&self.sql("SELECT value FROM {s}.meta WHERE key = 'schema_version'"), &[])
            .map_err(self.error("reading its schema version"))?
            .map_or(0, |row| row.get(0)))
    }

    /// Brings the schema to [`SCHEMA_VERSION`], one transaction, one upgrader at a time. At the
    /// current version nothing is created (a role without CREATE can use the store).
    fn upgrade(&self, client: &mut Client) -> Result<(), StoreError> {
        let found = self.schema_version(client)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { schema: self.schema.clone(), found, known: SCHEMA_VERSION });
        }
        if found == SCHEMA_VERSION {
            return Ok(());
        }
        let mut tx = client.transaction().map_err(self.error("upgrading its tables"))?;
        let key = format!("stamp:{}:schema", self.schema);
        tx.execute(
            "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended($1::text, 0::bigint))",
            &[&key],
        )
        .map_err(self.error("upgrading its tables"))?;
        tx.batch_execute(&self.sql(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value bigint NOT NULL);",
        ))
        .map_err(self.error("creating its schema"))?;
        let found: i64 = tx
            .query_opt(&self.sql("SELECT value FROM {s}.meta WHERE key = 'schema_version'"), &[])
            .map_err(self.error("reading its schema version"))?
            .map_or(0, |row| row.get(0));
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { schema: self.schema.clone(), found, known: SCHEMA_VERSION });
        }
        if found == SCHEMA_VERSION {
            return tx.commit().map_err(self.error("upgrading its tables"));
        }
        for migration in &MIGRATIONS[usize::try_from(found).unwrap_or(0)..] {
            tx.batch_execute(&self.sql(migration)).map_err(self.error("upgrading its tables"))?;
        }
        tx.execute(
            &self.sql(
                "INSERT INTO {s}.meta (key, value) VALUES ('schema_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            ),
            &[&SCHEMA_VERSION],
        )
        .map_err(self.error("upgrading its tables"))?;
        tx.commit().map_err(self.error("upgrading its tables"))
    }

    /// Runs `work` on this process's connection (connected, and the tables upgraded, on first
    /// use). A connection that was lost while locks are held is not silently replaced.
    fn with_client<T>(&self, work: impl FnOnce(&mut Client) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut guard = self.client.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.lost.load(Ordering::SeqCst) {
            return Err(StoreError::LostLocks);
        }
        if guard.as_ref().is_some_and(Client::is_closed) {
            *guard = None;
            if self.held_count.load(Ordering::SeqCst) > 0 {
                self.lost.store(true, Ordering::SeqCst);
                return Err(StoreError::LostLocks);
            }
        }
        if guard.is_none() {
            *guard = Some(self.connect()?);
        }
        let client = guard.as_mut().expect("connected above");
        let result = work(client);
        // The connection broke during this use: with locks held, they are gone with it.
        if result.is_err() && client.is_closed() {
            *guard = None;
            if self.held_count.load(Ordering::SeqCst) > 0 {
                self.lost.store(true, Ordering::SeqCst);
                return Err(StoreError::LostLocks);
            }
        }
        result
    }

    fn rows_to_histories(rows: &[postgres::Row]) -> BTreeMap<String, History> {
        let mut out: BTreeMap<String, History> = BTreeMap::new();
        for row in rows {
            let account: String = row.get(0);
            let id: i64 = row.get(1);
            let text: String = row.get(2);
            let history = out.entry(account.clone()).or_default();
            match crate::ledger::parse_record(text.as_bytes(), &account) {
                Ok(record) => history.records.push(record),
                Err(problem) => {
                    history.damage.push(Damage { line: usize::try_from(id).unwrap_or(usize::MAX), problem });
                }
            }
        }
        out
    }

    fn holder_of(&self, client: &mut Client, key: &str) -> Result<Option<Holder>, StoreError> {
        let row = client
            .query_opt(
                &self.sql(
                    "SELECT host, username, pid, command, since FROM {s}.lock_holders h
                     WHERE key = $1 AND EXISTS (
                       SELECT 1 FROM pg_catalog.pg_locks l
                       WHERE l.locktype = 'advisory' AND l.granted AND l.pid = h.backend_pid)",
                ),
                &[&key],
            )
            .map_err(self.error("reading who holds a lock"))?;
        Ok(row.map(|row| Holder {
            host: row.get(0),
            user: row.get(1),
            pid: u32::try_from(row.get::<_, i64>(2)).unwrap_or(0),
            command: row.get(3),
            since: row.get(4),
        }))
    }

    fn lock_id(&self, key: &str) -> String {
        format!("stamp:{}:{key}", self.schema)
    }

    fn release(&self, key: &str) {
        let last = {
            let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match held.get_mut(key) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    false
                }
                Some(_) => {
                    held.remove(key);
                    true
                }
                None => false,
            }
        };
        if !last {
            return;
        }
        let id = self.lock_id(key);
        // A failure here leaves the lock to the server, which frees it when this process ends.
        let _ = self.with_client(|client| {
            client
                .execute(
                    &self.sql(
                        "DELETE FROM {s}.lock_holders WHERE key = $1 AND backend_pid = pg_catalog.pg_backend_pid()",
                    ),
                    &[&key],
                )
                .and_then(|_| {
                    client.execute(
                        "SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtextextended($1::text, 0::bigint))",
                        &[&id],
                    )
                })
                .map_err(self.error("releasing a lock"))
        });
        if self.held_count.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Every lock taken before the loss is let go: a new run may start afresh.
            self.lost.store(false, Ordering::SeqCst);
        }
    }

    /// Copies records, finished journals and migrations under way from another store, each
    /// identified by `key` so that running it again adds nothing, then reads the copy back and
    /// compares it with the source, count and digest.
    pub fn import(
        &self,
        records: &[(String, Record)],
        finished: &[(String, Journal)],
        active: &[Journal],
    ) -> Result<Copied, StoreError> {
        let mut imported = Copied::default();
        self.with_client(|client| {
            let mut tx = client.transaction().map_err(self.error("importing"))?;
            // Accounts that already have records written through this store: a folder record
            // added now would come after them, and the ledger's order says which slot is live.
            let mut used: HashMap<&str, bool> = HashMap::new();
            // Each account's records in this import: those of another folder it does not hold
            // (another checkout's ledger) may not be followed by this one's.
            let mut keys_of: HashMap<&str, Vec<&str>> = HashMap::new();
            for (key, record) in records {
                keys_of.entry(record.account.as_str()).or_default().push(key.as_str());
            }
            let mut diverges: HashMap<&str, bool> = HashMap::new();
            for (key, record) in records {
                let text = serde_json::to_string(record).expect("records serialise");
                let added = tx
                    .execute(
                        &self.sql(
                            "INSERT INTO {s}.ledger (account, record, import_key) VALUES ($1, $2::text::jsonb, $3)
                             ON CONFLICT (import_key) DO NOTHING",
                        ),
                        &[&record.account, &text, key],
                    )
                    .map_err(self.error("importing ledger records"))?;
                if added == 0 {
                    continue;
                }
                let in_use = match used.get(record.account.as_str()) {
                    Some(in_use) => *in_use,
                    None => {
                        let in_use: bool = tx
                            .query_one(
                                &self.sql("SELECT EXISTS (SELECT 1 FROM {s}.ledger WHERE account = $1 AND import_key IS NULL)"),
                                &[&record.account],
                            )
                            .map_err(self.error("importing ledger records"))?
                            .get(0);
                        used.insert(&record.account, in_use);
                        in_use
                    }
                };
                if in_use {
                    // Dropped without commit: nothing of this import is kept.
                    return Err(StoreError::ImportAfterUse { account: record.account.clone() });
                }
                let account = record.account.as_str();
                if !diverges.contains_key(account) {
                    let ours: Vec<&str> = keys_of.get(account).cloned().unwrap_or_default();
                    let theirs: bool = tx
                        .query_one(
                            &self.sql(
                                "SELECT EXISTS (SELECT 1 FROM {s}.ledger WHERE account = $1 AND import_key IS NOT NULL AND NOT (import_key = ANY($2)))",
                            ),
                            &[&record.account, &ours],
                        )
                        .map_err(self.error("importing ledger records"))?
                        .get(0);
                    diverges.insert(account, theirs);
                }
                if diverges[account] {
                    return Err(StoreError::ImportDiverges { account: record.account.clone() });
                }
                imported.records_added += 1;
            }
            for (key, journal) in finished {
                let text = serde_json::to_string(journal).expect("journals serialise");
                imported.journals_added += usize::try_from(
                    tx.execute(
                        &self.sql(
                            "INSERT INTO {s}.finished_journals (account, journal, import_key) VALUES ($1, $2::text::jsonb, $3)
                             ON CONFLICT (import_key) DO NOTHING",
                        ),
                        &[&journal.account, &text, key],
                    )
                    .map_err(self.error("importing finished journals"))?,
                )
                .unwrap_or(0);
            }
            for journal in active {
                let text = serde_json::to_string(journal).expect("journals serialise");
                tx.execute(
                    &self.sql(
                        "INSERT INTO {s}.journals (account, revision, journal) VALUES ($1, 1, $2::text::jsonb)
                         ON CONFLICT (account) DO NOTHING",
                    ),
                    &[&journal.account, &text],
                )
                .map_err(self.error("importing migration journals"))?;
                let row = tx
                    .query_one(&self.sql("SELECT journal::text FROM {s}.journals WHERE account = $1"), &[&journal.account])
                    .map_err(self.error("importing migration journals"))?;
                let there = Journal::parse(serde_json::from_str(row.get::<_, &str>(0)).unwrap_or_default(), &journal.account);
                if there.as_ref() != Ok(journal) {
                    return Err(StoreError::Damaged {
                        place: format!("the PostgreSQL journal of `{}`", journal.account),
                        problem: "it differs from the folder's journal of a migration under way: finish that migration first, then import".into(),
                    });
                }
                imported.active_journals += 1;
            }
            tx.commit().map_err(self.error("importing"))
        })?;
        // Read back what the database now holds of the copy, compared whole with the source.
        let (records_verified, records_digest) =
            self.verify_copy("ledger", "record", records, "records", |value, _| serde_json::from_value(value).ok())?;
        let (journals_verified, journals_digest) =
            self.verify_copy("finished_journals", "journal", finished, "finished journals", |value, source| {
                Journal::parse(value, &source.account).ok()
            })?;
        imported.records_verified = records_verified;
        imported.journals_verified = journals_verified;
        // One digest over both: records, then journals.
        let mut digest = Sha256::new();
        digest.update(records_digest.as_bytes());
        digest.update(journals_digest.as_bytes());
        imported.digest = format!("{:x}", digest.finalize());
        Ok(imported)
    }

    /// Reads `items` back from `column` of `table` by their import keys, each parsed by
    /// `parse` and compared with its source: how many read back equal, and the digest of the
    /// copy (canonical JSON). Any missing or different one is an error naming `what`.
    fn verify_copy<T: serde::Serialize + PartialEq>(
        &self,
        table: &str,
        column: &str,
        items: &[(String, T)],
        what: &str,
        parse: impl Fn(serde_json::Value, &T) -> Option<T>,
    ) -> Result<(usize, String), StoreError> {
        let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
        let sql = format!("SELECT import_key, {column}::text FROM {{s}}.{table} WHERE import_key = ANY($1)");
        let back: HashMap<String, String> = self.with_client(|client| {
            let rows = client.query(&self.sql(&sql), &[&keys]).map_err(self.error("verifying the import"))?;
            Ok(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))).collect())
        })?;
        let (mut source, mut copy, mut verified) = (Sha256::new(), Sha256::new(), 0);
        for (key, item) in items {
            source.update(canonical(item));
            source.update([b'\n']);
            let read = back.get(key).and_then(|text| serde_json::from_str(text).ok()).and_then(|v| parse(v, item));
            if let Some(read) = read.filter(|read| read == item) {
                copy.update(canonical(&read));
                copy.update([b'\n']);
                verified += 1;
            }
        }
        let (source, copy) = (format!("{:x}", source.finalize()), format!("{:x}", copy.finalize()));
        if verified != items.len() || source != copy {
            return Err(StoreError::Damaged {
                place: format!("the copy in {}", self.describe()),
                problem: format!("{verified} of {} {what} read back as they are in the folder", items.len()),
            });
        }
        Ok((verified, copy))
    }

    /// What the store holds.
    pub fn status(&self) -> Result<Status, StoreError> {
        self.with_client(|client| {
            let version: i64 = client
                .query_one(&self.sql("SELECT value FROM {s}.meta WHERE key = 'schema_version'"), &[])
                .map_err(self.error("reading its status"))?
                .get(0);
            let counts = client
                .query_one(&self.sql("SELECT count(*), count(DISTINCT account) FROM {s}.ledger"), &[])
                .map_err(self.error("reading its status"))?;
            let migrations: Vec<String> = client
                .query(&self.sql("SELECT account FROM {s}.journals ORDER BY account"), &[])
                .map_err(self.error("reading its status"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let locks = client
                .query(
                    &self.sql(
                        "SELECT key, host, username, pid, command, since FROM {s}.lock_holders h
                         WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                                       WHERE l.locktype = 'advisory' AND l.granted AND l.pid = h.backend_pid)
                         ORDER BY key",
                    ),
                    &[],
                )
                .map_err(self.error("reading its status"))?
                .iter()
                .map(|r| {
                    let holder = Holder {
                        host: r.get(1),
                        user: r.get(2),
                        pid: u32::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                        command: r.get(4),
                        since: r.get(5),
                    };
                    format!("{}: {}", super::describe_key(r.get(0)), holder.describe())
                })
                .collect();
            Ok(Status {
                schema: self.schema.clone(),
                schema_version: version,
                records: counts.get(0),
                accounts: counts.get(1),
                migrations_under_way: migrations,
                locks,
            })
        })
    }
}

impl Store for PgStore {
    /// Where, without the password: ``PostgreSQL stamp@db.internal:5432/stamp, schema `stamp` ``.
    fn describe(&self) -> String {
        let Ok(config) = self.conn_str.parse::<postgres::Config>() else {
            return format!("PostgreSQL (schema `{}`)", self.schema);
        };
        let host = config.get_hosts().first().map_or_else(
            || "localhost".to_string(),
            |h| match h {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            },
        );
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().map(|u| format!("{u}@")).unwrap_or_default();
        let db = config.get_dbname().unwrap_or("");
        crate::text::one_line(&format!("PostgreSQL {user}{host}:{port}/{db}, schema `{}`", self.schema)).into_owned()
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn history(&self, account: &str) -> Result<History, StoreError> {
        let rows = self.with_client(|client| {
            client
                .query(
                    &self.sql("SELECT account, id, record::text FROM {s}.ledger WHERE account = $1 ORDER BY id"),
                    &[&account],
                )
                .map_err(self.error("reading the ledger"))
        })?;
        Ok(Self::rows_to_histories(&rows).remove(account).unwrap_or_default())
    }

    fn histories(&self, accounts: Option<&[&str]>) -> Result<BTreeMap<String, History>, StoreError> {
        let rows = self.with_client(|client| {
            match accounts {
                None => client.query(&self.sql("SELECT account, id, record::text FROM {s}.ledger ORDER BY id"), &[]),
                Some(names) => client.query(
                    &self.sql("SELECT account, id, record::text FROM {s}.ledger WHERE account = ANY($1) ORDER BY id"),
                    &[&names],
                ),
            }
            .map_err(self.error("reading the ledger"))
        })?;
        Ok(Self::rows_to_histories(&rows))
    }

    fn append(&self, record: &Record) -> Result<(), StoreError> {
        let text = serde_json::to_string(record).expect("records serialise");
        self.with_client(|client| {
            client
                .execute(
                    &self.sql("INSERT INTO {s}.ledger (account, record) VALUES ($1, $2::text::jsonb)"),
                    &[&record.account, &text],
                )
                .map(|_| ())
                .map_err(self.error("appending to the ledger"))
        })
    }

    fn place(&self, account: &str, damage: &Damage) -> Place {
        Place {
            file: None,
            text: format!("record {} of `{account}` in {} (table `ledger`)", damage.line, self.describe()),
        }
    }

    fn journal(&self, account: &str) -> Result<Option<StoredJournal>, StoreError> {
        let row = self.with_client(|client| {
            client
                .query_opt(
                    &self.sql("SELECT revision, journal::text FROM {s}.journals WHERE account = $1"),
                    &[&account],
                )
                .map_err(self.error("reading a migration journal"))
        })?;
        let Some(row) = row else { return Ok(None) };
        let damaged = |problem: String| StoreError::Damaged { place: self.journal_place(account), problem };
        let value: serde_json::Value =
            serde_json::from_str(row.get::<_, &str>(1)).map_err(|e| damaged(format!("not JSON ({e})")))?;
        let journal = Journal::parse(value, account).map_err(damaged)?;
        Ok(Some(StoredJournal { journal, revision: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0) }))
    }

    fn journal_place(&self, account: &str) -> String {
        format!("the journal of `{account}` in {}", self.describe())
    }

    fn put_journal(&self, journal: &Journal, expected: Option<u64>) -> Result<u64, StoreError> {
        let text = serde_json::to_string(journal).expect("journals serialise");
        let written = self.with_client(|client| {
            match expected {
                None => client.execute(
                    &self.sql(
                        "INSERT INTO {s}.journals (account, revision, journal) VALUES ($1, 1, $2::text::jsonb)
                         ON CONFLICT (account) DO NOTHING",
                    ),
                    &[&journal.account, &text],
                ),
                Some(revision) => client.execute(
                    &self.sql(
                        "UPDATE {s}.journals SET revision = revision + 1, journal = $2::text::jsonb
                         WHERE account = $1 AND revision = $3",
                    ),
                    &[&journal.account, &text, &db_revision(revision)],
                ),
            }
            .map_err(self.error("writing a migration journal"))
        })?;
        if written != 1 {
            return Err(StoreError::Conflict { account: journal.account.clone() });
        }
        Ok(expected.map_or(1, |r| r + 1))
    }

    fn finish_journal(&self, account: &str, expected: u64) -> Result<String, StoreError> {
        let id = self.with_client(|client| {
            let mut tx = client.transaction().map_err(self.error("finishing a migration journal"))?;
            let Some(row) = tx
                .query_opt(
                    &self.sql("DELETE FROM {s}.journals WHERE account = $1 AND revision = $2 RETURNING journal::text"),
                    &[&account, &db_revision(expected)],
                )
                .map_err(self.error("finishing a migration journal"))?
            else {
                return Ok(None);
            };
            let text: String = row.get(0);
            let id: i64 = tx
                .query_one(
                    &self.sql("INSERT INTO {s}.finished_journals (account, journal) VALUES ($1, $2::text::jsonb) RETURNING id"),
                    &[&account, &text],
                )
                .map_err(self.error("finishing a migration journal"))?
                .get(0);
            tx.commit().map_err(self.error("finishing a migration journal"))?;
            Ok(Some(id))
        })?;
        match id {
            Some(id) => Ok(format!("finished journal {id} in {}", self.describe())),
            None => Err(StoreError::Conflict { account: account.to_string() }),
        }
    }

    fn finished_journals(&self) -> Result<Vec<(String, Journal)>, StoreError> {
        let rows = self.with_client(|client| {
            client
                .query(
                    &self.sql("SELECT id, account, journal::text, import_key FROM {s}.finished_journals ORDER BY id"),
                    &[],
                )
                .map_err(self.error("reading finished journals"))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, account): (i64, String) = (row.get(0), row.get(1));
            let place = format!("finished journal {id} in {}", self.describe());
            let value: serde_json::Value = serde_json::from_str(row.get::<_, &str>(2))
                .map_err(|e| StoreError::Damaged { place: place.clone(), problem: format!("not JSON ({e})") })?;
            let journal = Journal::parse(value, &account).map_err(|problem| StoreError::Damaged { place, problem })?;
            out.push((row.get::<_, Option<String>>(3).unwrap_or_else(|| format!("pg-{id}")), journal));
        }
        Ok(out)
    }

    fn as_pg(&self) -> Option<&PgStore> {
        Some(self)
    }

    fn lock(&self, key: &str, holder: &Holder) -> Result<Option<StoreLock>, LockError> {
        // Held while taking it, so two threads of this process never race for one key.
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.lost.load(Ordering::SeqCst) {
            return Err(LockError::Store(StoreError::LostLocks));
        }
        if let Some(count) = held.get_mut(key) {
            *count += 1;
        } else {
            let id = self.lock_id(key);
            let taken = self.with_client(|client| {
                let taken: bool = client
                    .query_one(
                        "SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtextextended($1::text, 0::bigint))",
                        &[&id],
                    )
                    .map_err(self.error("taking a lock"))?
                    .get(0);
                if !taken {
                    return Ok(Err(self.holder_of(client, key)?));
                }
                client
                    .execute(
                        &self.sql(
                            "INSERT INTO {s}.lock_holders (key, host, username, pid, command, since, backend_pid)
                             VALUES ($1, $2, $3, $4, $5, $6, pg_catalog.pg_backend_pid())
                             ON CONFLICT (key) DO UPDATE SET host = EXCLUDED.host, username = EXCLUDED.username,
                               pid = EXCLUDED.pid, command = EXCLUDED.command, since = EXCLUDED.since,
                               backend_pid = EXCLUDED.backend_pid",
                        ),
                        &[&key, &holder.host, &holder.user, &i64::from(holder.pid), &holder.command, &holder.since],
                    )
                    .map_err(self.error("taking a lock"))?;
                Ok(Ok(()))
            })?;
            if let Err(holder) = taken {
                return Err(LockError::Held { what: super::describe_key(key), holder });
            }
            held.insert(key.to_string(), 1);
            self.held_count.fetch_add(1, Ordering::SeqCst);
        }
        drop(held);
        let store = Self::shared(&self.conn_str, Some(&self.schema)).map_err(LockError::Store)?;
        let key = key.to_string();
        Ok(Some(StoreLock::new(move || store.release(&key))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["stamp", "_x", "team_a2"] {
            assert!(valid_schema(good), "{good}");
        }
        for bad in ["", "Stamp", "a-b", "a\"b", "x; DROP TABLE y", "1abc", &"a".repeat(64)] {
            assert!(!valid_schema(bad), "{bad}");
        }
        assert!(matches!(PgStore::shared("postgres://x@localhost/db", Some("a\"b")), Err(StoreError::BadSchema(_))));
    }

    #[test]
    fn the_description_leaves_the_password_out() {
        let store = PgStore::shared("postgres://ana:s3cret@db.internal:6543/teamdb", None).unwrap();
        let text = store.describe();
        assert_eq!(text, "PostgreSQL ana@db.internal:6543/teamdb, schema `stamp`");
        let store = PgStore::shared("host=db user=ci password=hunter2 dbname=x", Some("ci")).unwrap();
        assert!(!store.describe().contains("hunter2"), "{}", store.describe());
    }
}
