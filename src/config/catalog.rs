//! The catalog: every account file of the project, known by a small summary (its name,
//! archetype, and the values the checks between accounts compare), so a command about one
//! account loads that one and only scans the others.
//!
//! Summaries and the digests of rendered trees are kept in the cache ([`crate::cache`]) under
//! keys made of everything they depend on: a changed byte in `stamp.yaml`, an archetype, an
//! account file, a blueprint, the version stamped in or Stamp itself gives another key. A file
//! is recognised as unchanged by its content digest; its `stat` (size, times, inode) stands in
//! for reading it only when it was taken more than a second before the run that recorded it
//! (as git does), so an edit within the same clock tick is never missed.

// Hash maps: a cache file is looked up by long keys (paths, digests) thousands of times a
// run, and its order does not matter (it is never shown). Hashed with foldhash (seeded per
// run), which is several times faster than std's SipHash on such keys.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Account;
use crate::cache::{Cache, Version};
use crate::ledger::{Damage, History, Slot};

/// The values that must differ between accounts (the checks between accounts compare them).
pub const FACT_POINTERS: &[&str] = &["/name", "/account_id", "/dns/zone", CIDR];

/// One compared value of an account (never a sensitive one) and where it is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    /// One of [`FACT_POINTERS`] (kept as its place among them).
    #[serde(with = "fact_pointer")]
    pub pointer: Pointer,
    pub value: String,
    /// Line, column and end column (0: unknown) of the value, or of its closest ancestor.
    pub at: Option<(usize, usize, usize)>,
    /// Whether the account file itself sets it (not the defaults).
    pub own: bool,
}

/// One of [`FACT_POINTERS`] (a name of its own, so serde does not take it for text borrowed
/// from what it reads).
pub type Pointer = &'static str;

/// A fact's pointer as its place in [`FACT_POINTERS`]: thousands of summaries share them.
mod fact_pointer {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::FACT_POINTERS;

    pub fn serialize<S: Serializer>(pointer: &&'static str, serializer: S) -> Result<S::Ok, S::Error> {
        let at = FACT_POINTERS
            .iter()
            .position(|p| p == pointer)
            .ok_or_else(|| serde::ser::Error::custom(format!("`{pointer}` is not a fact's pointer")))?;
        serializer.serialize_u8(u8::try_from(at).map_err(serde::ser::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<&'static str, D::Error> {
        let at = u8::deserialize(deserializer)?;
        FACT_POINTERS
            .get(usize::from(at))
            .copied()
            .ok_or_else(|| serde::de::Error::custom(format!("no fact's pointer at {at}")))
    }
}

/// What the project needs to know of an account it does not load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub name: String,
    pub archetype: String,
    pub environment: String,
    /// The config's `region`, when it has one.
    pub region: Option<String>,
    pub protected: bool,
    pub ephemeral: bool,
    /// The config's own `created_at`.
    pub created_at: Option<String>,
    pub facts: Vec<Fact>,
    /// The compared values the account has but that are sensitive, so not among `facts`
    /// (their pointers only): whoever needs them reads the account whole.
    pub withheld: Vec<String>,
    /// The first and last address of the network its `/network/cidr` fact names (see
    /// [`network_of`]): parsed once, where the summary is made, not at each of the thousands
    /// of comparisons a check makes.
    pub network: Option<(u32, u32)>,
}

/// The pointer of the compared network (one of [`FACT_POINTERS`]).
pub const CIDR: &str = "/network/cidr";

/// The first and last address of the network of the `/network/cidr` fact among `facts`,
/// when it is one.
pub fn network_of(facts: &[Fact]) -> Option<(u32, u32)> {
    use std::str::FromStr as _;
    let fact = facts.iter().find(|f| f.pointer == CIDR)?;
    let network = ipnet::Ipv4Net::from_str(&fact.value).ok()?;
    Some((u32::from(network.network()), u32::from(network.broadcast())))
}

impl Summary {
    /// A summary of an account named `name` with these facts and nothing else (for tests).
    #[cfg(test)]
    pub(crate) fn with_facts(name: &str, facts: Vec<Fact>) -> Self {
        Self {
            network: network_of(&facts),
            name: name.into(),
            archetype: "a".into(),
            environment: "e".into(),
            region: None,
            protected: false,
            ephemeral: false,
            created_at: None,
            facts,
            withheld: Vec::new(),
        }
    }

    pub fn of(account: &Account) -> Self {
        let facts: Vec<Fact> = FACT_POINTERS
            .iter()
            .filter(|p| !account.is_sensitive(p))
            .filter_map(|&pointer| {
                let value = account.str_at(pointer)?.to_string();
                let at = account.positions.value(pointer).map(|p| (p.line, p.column, p.end_column.unwrap_or(0)));
                Some(Fact { pointer, value, at, own: account.own.pointer(pointer).is_some() })
            })
            .collect();
        let withheld = FACT_POINTERS
            .iter()
            .filter(|p| account.is_sensitive(p) && account.effective.pointer(p).is_some())
            .map(|&p| p.to_string())
            .collect();
        Self {
            name: account.name.clone(),
            archetype: account.archetype.clone(),
            environment: account.environment().to_string(),
            region: account.effective.get("region").and_then(Value::as_str).map(str::to_string),
            protected: account.is_protected(),
            ephemeral: account.is_ephemeral(),
            created_at: own_created_at(&account.effective),
            network: network_of(&facts),
            facts,
            withheld,
        }
    }
}

fn own_created_at(effective: &Value) -> Option<String> {
    effective.get("created_at").and_then(Value::as_str).map(str::to_string)
}

/// When an account was created: its config's `created_at`, else its first apply in `slot`.
pub fn created_at(own: Option<&str>, history: &History, slot: Slot) -> Option<String> {
    own.map(str::to_string).or_else(|| crate::ledger::created_at(&history.records, slot))
}

/// One account file of the project.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The file as shown to the user.
    pub display: String,
    /// Where the file belongs in the project.
    pub path: PathBuf,
    /// Where its content is read when not at `path` (see [`super::project::AccountFile`]).
    pub elsewhere: Option<PathBuf>,
    /// The digest of the file's content.
    pub content: String,
    /// The cache key of what loading the file gives.
    pub load_key: String,
    /// Shared with the cache's index that held it.
    pub summary: Arc<Summary>,
    /// From the ledger, as for [`Account::annotate`].
    pub slot: Slot,
    pub created_at: Option<String>,
    pub ledger_damage: Vec<Damage>,
}

impl Entry {
    pub fn name(&self) -> &str {
        &self.summary.name
    }

    /// Where its content is read.
    pub fn read_from(&self) -> &Path {
        self.elsewhere.as_deref().unwrap_or(&self.path)
    }

    pub fn fact(&self, pointer: &str) -> Option<&Fact> {
        self.summary.facts.iter().find(|f| f.pointer == pointer)
    }

    /// Sets the live slot, creation time and damaged records from the account's history.
    pub fn annotate(&mut self, history: &History) {
        self.slot = crate::ledger::live_slot(&history.records);
        self.created_at = created_at(self.summary.created_at.as_deref(), history, self.slot);
        self.ledger_damage.clone_from(&history.damage);
    }
}

/// A file's `stat`, which stands in for reading it while it is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
    dev: u64,
}

impl Stat {
    #[cfg(unix)]
    pub fn of(meta: &std::fs::Metadata) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        Some(Self {
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        })
    }

    #[cfg(not(unix))]
    pub fn of(_: &std::fs::Metadata) -> Option<Self> {
        None
    }

    /// Whether the file's last change was more than a second before `run_started` (seconds
    /// since the epoch): a later write would change its times.
    fn settled_before(&self, run_started: i64) -> bool {
        let settled = run_started.saturating_sub(1);
        self.ctime.0 < settled && self.mtime.0 < settled
    }
}

/// Whether this run met a record of the index it found (used its file or load): the index it
/// leaves keeps only what it met. Never written, and no part of the record's value.
#[derive(Debug, Default)]
struct Met(AtomicBool);

impl Met {
    fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Clone for Met {
    fn clone(&self) -> Self {
        Self(AtomicBool::new(self.is_set()))
    }
}

impl PartialEq for Met {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Met {}

/// What the cache knows of a file: its content digest, and the `stat` that stands in for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    stat: Stat,
    content: String,
    /// When the run that read the file started (seconds since the epoch).
    read_at: i64,
    #[serde(skip)]
    met: Met,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct LoadRecord {
    summary: Option<Arc<Summary>>,
    /// `(result key, tree digest)` of the latest clean results, newest first, as [`Results`].
    results: Results,
    #[serde(skip)]
    met: Met,
}

/// Results as one text of `key digest` lines (both hex): an index decodes it with one
/// allocation, where most loads' results are never looked at by a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
struct Results(String);

impl Results {
    fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.lines().filter_map(|line| line.split_once(' '))
    }

    fn get(&self, key: &str) -> Option<String> {
        self.iter().find(|(k, _)| *k == key).map(|(_, digest)| digest.to_string())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These results first, then those of `older` they do not hold, up to [`RESULTS_KEPT`].
    fn then<'a>(&'a self, older: &'a Self) -> Self {
        let mut kept: Vec<(&str, &str)> = Vec::new();
        for (key, digest) in self.iter().chain(older.iter()) {
            if kept.len() < RESULTS_KEPT && !kept.iter().any(|(k, _)| *k == key) {
                kept.push((key, digest));
            }
        }
        Self(kept.iter().fold(String::new(), |mut text, (key, digest)| {
            use std::fmt::Write as _;
            let _ = writeln!(text, "{key} {digest}");
            text
        }))
    }

    /// One result; `None` for a key or digest that could not be read back (not hex).
    fn one(key: &str, digest: &str) -> Option<Self> {
        let hex = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit());
        (hex(key) && hex(digest)).then(|| Self(format!("{key} {digest}\n")))
    }
}

/// How many results are kept per loaded file: a check, a plan's work folder and both sides of
/// `affected` each have their own.
const RESULTS_KEPT: usize = 6;

/// A rendered tree on disk: what it holds, and a digest of its files' `stat` (marker
/// included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TreeRecord {
    /// The digest of the tree and of its marker's text.
    digest: String,
    stats: String,
    /// The latest change of any of its files (seconds since the epoch).
    changed: i64,
    read_at: i64,
}

/// The rendered trees the cache knows, by folder: a file of its own, read only by the
/// commands that write trees.
type Trees = HashMap<String, TreeRecord>;

const TREES: &str = "trees";

fn stats_key(stats: &[(String, Stat)]) -> (String, i64) {
    // One field per file: its name, then its `stat` as fixed-width numbers.
    let mut key = crate::cache::Key::new("stats");
    let mut changed = i64::MIN;
    let mut bytes = Vec::with_capacity(64);
    for (name, stat) in stats {
        bytes.clear();
        for number in [stat.len, stat.ino, stat.dev] {
            bytes.extend_from_slice(&number.to_le_bytes());
        }
        for number in [stat.mtime.0, stat.mtime.1, stat.ctime.0, stat.ctime.1] {
            bytes.extend_from_slice(&number.to_le_bytes());
        }
        key = key.field(name).field(&bytes);
        changed = changed.max(stat.ctime.0).max(stat.mtime.0);
    }
    (key.finish(), changed)
}

/// Records of files and loads: one shard of the index, or what a run adds to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Records {
    /// By the file's path.
    files: HashMap<String, FileRecord>,
    /// By load key.
    loads: HashMap<String, LoadRecord>,
}

/// The index, in [`SHARDS`] files of its own, each record in the one its key falls in: a run
/// that changes a few records rewrites a few small files, not one of every account's.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Index {
    shards: Vec<Records>,
    /// The shards whose file was missing, damaged or another Stamp's: each is written by the
    /// run, even empty, so no file of another Stamp stays behind.
    unread: Vec<bool>,
    /// Which file each shard was read from.
    versions: Vec<Version>,
}

const SHARDS: usize = 64;

const INDEX: &str = "index";

/// The shard a key (a path or a load key) falls in: the same in every run of every Stamp.
fn shard_of(key: &str) -> usize {
    // FNV-1a: defined by its constants, so stable where `std`'s hashers promise nothing.
    let hash = key
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3));
    usize::try_from(hash % SHARDS as u64).unwrap_or(0)
}

fn shard_file(shard: usize) -> String {
    format!("{INDEX}-{shard:02}")
}

impl Default for Index {
    fn default() -> Self {
        Self { shards: vec![Records::default(); SHARDS], unread: vec![true; SHARDS], versions: vec![None; SHARDS] }
    }
}

impl Index {
    /// Every shard the cache holds; one that is missing or damaged is empty.
    fn read(cache: &Cache) -> Self {
        let mut index = Self::default();
        for s in 0..SHARDS {
            let (read, version) = cache.read_versioned(&shard_file(s), INDEX);
            index.unread[s] = read.is_none();
            index.shards[s] = read.unwrap_or_default();
            index.versions[s] = version;
        }
        index
    }

    /// Takes in, for the shards this run rewrites, the records another run saved since this
    /// one read them (while this run holds the cache's lock): runs that save at once keep
    /// each other's records, this run's first.
    fn take_in_saved(&mut self, cache: &Cache, changed: &[bool]) {
        for s in (0..SHARDS).filter(|&s| changed[s]) {
            if cache.version(&shard_file(s)) == self.versions[s] {
                continue;
            }
            let Some(saved) = cache.read::<Records>(&shard_file(s), INDEX) else { continue };
            let shard = &mut self.shards[s];
            for (path, record) in saved.files {
                shard.files.entry(path).or_insert(record);
            }
            for (key, record) in saved.loads {
                match shard.loads.get_mut(&key) {
                    Some(mine) => mine.results = mine.results.then(&record.results),
                    None if record.summary.is_some() => {
                        shard.loads.insert(key, record);
                    }
                    None => {}
                }
            }
        }
    }

    /// Writes the shards marked in `changed`.
    fn write(&self, cache: &Cache, changed: &[bool]) -> Result<(), String> {
        if changed.iter().any(|&c| c) {
            // The whole index of earlier Stamps, in one file.
            cache.remove(INDEX);
        }
        let mut written = Ok(());
        for (s, shard) in self.shards.iter().enumerate().filter(|(s, _)| changed[*s]) {
            let result = cache.write(&shard_file(s), INDEX, shard);
            written = written.and(result);
        }
        written
    }

    fn file(&self, path: &str) -> Option<&FileRecord> {
        self.shards[shard_of(path)].files.get(path)
    }

    fn load(&self, key: &str) -> Option<&LoadRecord> {
        self.shards[shard_of(key)].loads.get(key)
    }
}

/// The cache as one run uses it: the index the run found, and the one it leaves (only what
/// it met, so entries of deleted files and replaced content go).
#[derive(Debug, Default)]
pub struct Memo {
    cache: Cache,
    /// What account files' digests are taken with.
    key: crate::cache::FileKey,
    started: i64,
    /// The index as read by a thread of its own (while the project is read), until it is needed.
    reading: Mutex<Option<std::thread::JoinHandle<Index>>>,
    found: std::sync::OnceLock<Index>,
    kept: Mutex<Records>,
    /// The trees the run found, and which file they were read from.
    found_trees: std::sync::OnceLock<(Trees, Version)>,
    kept_trees: Mutex<Trees>,
}

impl Memo {
    pub fn new(cache: Cache) -> Self {
        Self::with_key(cache, crate::cache::FileKey::fresh())
    }

    /// [`Memo::new`], the digests of account files taken with `key`.
    pub fn with_key(cache: Cache, key: crate::cache::FileKey) -> Self {
        let cache = cache.bound_to(&key);
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let reader = cache.clone();
        let reading = cache
            .is_on()
            .then(|| {
                std::thread::Builder::new().name("stamp-cache-index".into()).spawn(move || Index::read(&reader)).ok()
            })
            .flatten();
        Self {
            cache,
            key,
            started,
            reading: Mutex::new(reading),
            found: std::sync::OnceLock::new(),
            kept: Mutex::new(Records::default()),
            found_trees: std::sync::OnceLock::new(),
            kept_trees: Mutex::new(Trees::default()),
        }
    }

    pub fn is_on(&self) -> bool {
        self.cache.is_on()
    }

    /// The digest of an account file's content (see [`crate::cache::FileKey`]).
    pub fn file_digest(&self, bytes: &[u8]) -> String {
        self.key.digest(bytes)
    }

    /// The index the run found.
    fn found(&self) -> &Index {
        self.found.get_or_init(|| {
            let reading = self.reading.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            // Without a thread (none could start) or when it failed: read here, or start empty.
            reading.and_then(|r| r.join().ok()).unwrap_or_else(|| Index::read(&self.cache))
        })
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Records> {
        self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The content digest of the file at `path`, if the cache knows it from its `stat` (the
    /// record is then met: [`Memo::file_record`] has nothing to add).
    pub fn known_content(&self, path: &Path, stat: Option<Stat>) -> Option<&str> {
        let stat = stat?;
        let record = self.found().file(path.to_str()?)?;
        // A record from the future (a clock set back, or a hand-made file) is not trusted.
        let trusted = record.read_at <= self.started && record.stat.settled_before(record.read_at);
        (record.stat == stat && trusted).then(|| {
            record.met.mark();
            record.content.as_str()
        })
    }

    /// What to remember of a file whose content digest is `content` (read now, or known from
    /// its `stat`), to hand to [`Memo::keep`]; `None` when the index holds it already (or the
    /// cache is off).
    pub fn file_record(&self, path: &Path, stat: Option<Stat>, content: &str) -> Option<(String, FileRecord)> {
        let path = path.to_str()?;
        let stat = stat.filter(|_| self.is_on())?;
        // A record taken too close to the file's last change is taken again, so it can become
        // one the next run trusts.
        if let Some(found) = self
            .found()
            .file(path)
            .filter(|f| f.stat == stat && f.content == content && f.stat.settled_before(f.read_at))
        {
            found.met.mark();
            return None;
        }
        let record = FileRecord { stat, content: content.to_string(), read_at: self.started, met: Met::default() };
        Some((path.to_string(), record))
    }

    /// The summary of a loaded file, by its load key.
    pub fn summary(&self, load_key: &str) -> Option<Arc<Summary>> {
        let record = self.found().load(load_key)?;
        let summary = record.summary.clone()?;
        record.met.mark();
        Some(summary)
    }

    /// Remembers the new files and loads a run met (all at once: the runs's threads do not
    /// wait for each other file by file); those the index holds already were marked as met.
    pub fn keep(&self, files: Vec<(String, FileRecord)>, loads: Vec<(String, Arc<Summary>)>) {
        if !self.is_on() || (files.is_empty() && loads.is_empty()) {
            return;
        }
        let mut kept = self.kept();
        kept.files.extend(files);
        for (key, summary) in loads {
            kept.loads.entry(key).or_default().summary = Some(summary);
        }
    }

    /// The digest of the tree a clean check of this load gave under `result_key`.
    pub fn result(&self, load_key: &str, result_key: &str) -> Option<String> {
        let find = |record: &LoadRecord| record.results.get(result_key);
        if let Some(found) = self.found().load(load_key).and_then(find) {
            return Some(found);
        }
        self.kept().loads.get(load_key).and_then(find)
    }

    /// Remembers a clean result.
    pub fn checked(&self, load_key: &str, result_key: &str, digest: &str) {
        if !self.is_on() {
            return;
        }
        let mut kept = self.kept();
        let record = kept.loads.entry(load_key.to_string()).or_default();
        if let Some(result) = Results::one(result_key, digest) {
            record.results = result.then(&record.results);
        }
    }

    fn found_trees(&self) -> &Trees {
        let (trees, _) = self.found_trees.get_or_init(|| {
            let (trees, version) = self.cache.read_versioned(TREES, TREES);
            (trees.unwrap_or_default(), version)
        });
        trees
    }

    /// Whether the folder `dir`, whose files have `stats`, holds what the cache saw it hold:
    /// the tree of `digest` (with its marker), unchanged since.
    pub fn tree_known(&self, dir: &Path, digest: &str, stats: &[(String, Stat)]) -> bool {
        let Some(record) = dir.to_str().and_then(|d| self.found_trees().get(d)) else { return false };
        let (key, _) = stats_key(stats);
        record.digest == digest
            && record.stats == key
            && record.read_at <= self.started
            && record.changed < record.read_at.saturating_sub(1)
    }

    /// Remembers that `dir`, whose files have `stats`, holds the tree of `digest` (read back,
    /// or just written).
    pub fn tree_seen(&self, dir: &Path, digest: &str, stats: &[(String, Stat)]) {
        let Some(dir) = dir.to_str().filter(|_| self.is_on()) else { return };
        let record = if self.tree_known(Path::new(dir), digest, stats) {
            self.found_trees()[dir].clone()
        } else {
            let (key, changed) = stats_key(stats);
            TreeRecord { digest: digest.to_string(), stats: key, changed, read_at: self.started }
        };
        self.kept_trees.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(dir.to_string(), record);
    }

    /// Writes the trees this run met, with those it did not (a `check` between two renders
    /// writes none), when they changed: into the trees it found, in place, or into those
    /// another run saved since (while this run holds the cache's lock).
    fn save_trees(cache: &Cache, found: Option<(Trees, Version)>, kept: Trees) -> Result<(), String> {
        if kept.is_empty() {
            return Ok(());
        }
        let mut trees = match found {
            Some((trees, version)) if cache.version(TREES) == version => trees,
            found => {
                std::mem::forget(found);
                cache.read(TREES, TREES).unwrap_or_default()
            }
        };
        let mut changed = false;
        for (dir, record) in kept {
            if trees.get(&dir) != Some(&record) {
                trees.insert(dir, record);
                changed = true;
            }
        }
        let written = if changed { cache.write(TREES, TREES, &trees) } else { Ok(()) };
        // Plain data, freed by the process's exit (see `save`).
        std::mem::forget(trees);
        written
    }

    /// Writes what this run met as the index, when it differs from what it found: the found
    /// index is updated in place (no copy of thousands of records), keeping what the run met
    /// with its new records and results; a load keeps the results it had.
    pub fn save(self) -> Result<(), String> {
        if !self.is_on() {
            return Ok(());
        }
        // The index found, read now if the run never asked for it (a run without file
        // `stat`s): its results and summaries are kept for the loads the run met.
        self.found();
        let kept_trees = self.kept_trees.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        let found_trees = self.found_trees.into_inner();
        let kept = self.kept.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut index = self.found.into_inner().unwrap_or_default();
        let changed = index.update(kept);
        // Runs that save at once take turns, each taking in what the other saved; a run with
        // nothing to write takes no lock (and makes no cache folder).
        let cache = &self.cache;
        if kept_trees.is_empty() && !changed.contains(&true) {
            std::mem::forget((index, found_trees));
            return Ok(());
        }
        let written = cache.locked(|| {
            let trees = Self::save_trees(cache, found_trees, kept_trees);
            index.take_in_saved(cache, &changed);
            trees.and(index.write(cache, &changed))
        });
        // Plain data, freed by the process's exit: dropping it entry by entry takes longer than
        // the rest of a one-account check of a large organisation.
        std::mem::forget(index);
        written
    }
}

impl Index {
    /// Makes this (found) index the one a run leaves: what the run met, with what it `kept`
    /// (new records; new results first). Which shards changed.
    fn update(&mut self, kept: Records) -> Vec<bool> {
        let mut changed = self.unread.clone();
        for (path, record) in kept.files {
            let s = shard_of(&path);
            let files = &mut self.shards[s].files;
            match files.get(&path) {
                Some(old) if *old == record => old.met.mark(),
                _ => {
                    record.met.mark();
                    files.insert(path, record);
                    changed[s] = true;
                }
            }
        }
        for (key, new) in kept.loads {
            let s = shard_of(&key);
            let loads = &mut self.shards[s].loads;
            let Some(record) = loads.get_mut(&key) else {
                // A load the index did not hold is kept only with its summary.
                if new.summary.is_some() {
                    new.met.mark();
                    loads.insert(key, new);
                    changed[s] = true;
                }
                continue;
            };
            record.met.mark();
            if new.summary.is_some() && new.summary != record.summary {
                record.summary = new.summary;
                changed[s] = true;
            }
            if !new.results.is_empty() {
                let results = new.results.then(&record.results);
                changed[s] |= results != record.results;
                record.results = results;
            }
        }
        for (shard, changed) in self.shards.iter_mut().zip(&mut changed) {
            let before = (shard.files.len(), shard.loads.len());
            shard.files.retain(|_, r| r.met.is_set());
            shard.loads.retain(|_, r| r.met.is_set() && r.summary.is_some());
            *changed |= before != (shard.files.len(), shard.loads.len());
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(name: &str) -> Summary {
        Summary::with_facts(name, Vec::new())
    }

    #[test]
    fn the_index_a_run_leaves_holds_what_it_met_and_is_rewritten_only_when_it_changed() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), true);
        let index_dir = dir.path().join(crate::cache::DIR);
        let inode = || -> Vec<Option<u64>> {
            (0..SHARDS).map(|s| fs_err::metadata(index_dir.join(shard_file(s))).ok().map(|m| m.ino())).collect()
        };
        // Files last changed long ago: their `stat` is trusted.
        let stat = |ino| Stat { len: 1, mtime: (100, 0), ctime: (100, 0), ino, dev: 1 };
        let (a, b) = (Path::new("/p/a.yaml"), Path::new("/p/b.yaml"));

        // A first run reads both files and checks `a`.
        let memo = Memo::with_key(cache.clone(), crate::cache::FileKey::fixed());
        let files: Vec<_> = [(a, 1, "ca"), (b, 2, "cb")]
            .iter()
            .filter_map(|&(p, ino, c)| memo.file_record(p, Some(stat(ino)), c))
            .collect();
        assert_eq!(files.len(), 2, "both are new");
        memo.keep(files, vec![("la".into(), Arc::new(summary("a"))), ("lb".into(), Arc::new(summary("b")))]);
        memo.checked("la", "e1", "d1");
        memo.save().unwrap();
        let first = inode();

        // A run that meets everything and adds nothing leaves the index as it is.
        let memo = Memo::with_key(cache.clone(), crate::cache::FileKey::fixed());
        assert_eq!(memo.known_content(a, Some(stat(1))), Some("ca"));
        assert!(memo.file_record(a, Some(stat(1)), "ca").is_none(), "known already");
        assert!(memo.file_record(b, Some(stat(2)), "cb").is_none());
        assert_eq!(memo.summary("la").as_deref(), Some(&summary("a")));
        assert_eq!(memo.summary("lb").as_deref(), Some(&summary("b")));
        memo.keep(Vec::new(), Vec::new());
        memo.save().unwrap();
        assert_eq!(inode(), first, "not rewritten");

        // `b` is gone: only `a` is met; a new result comes first, the older one stays.
        let memo = Memo::with_key(cache.clone(), crate::cache::FileKey::fixed());
        assert!(memo.file_record(a, Some(stat(1)), "ca").is_none());
        assert!(memo.summary("la").is_some());
        memo.checked("la", "e2", "d2");
        memo.save().unwrap();
        let now = inode();
        assert_ne!(now, first, "rewritten");
        // Only the shards of the changed records: `la`'s new result, `b` and `lb` gone.
        let touched = [shard_of("la"), shard_of("/p/b.yaml"), shard_of("lb")];
        for s in (0..SHARDS).filter(|s| !touched.contains(s)) {
            assert_eq!(now[s], first[s], "shard {s} is not rewritten");
        }
        let memo = Memo::with_key(cache.clone(), crate::cache::FileKey::fixed());
        assert_eq!(memo.known_content(b, Some(stat(2))), None, "the record of a file not met is dropped");
        assert_eq!(memo.summary("lb"), None, "and its load");
        assert_eq!(memo.result("la", "e1").as_deref(), Some("d1"));
        assert_eq!(memo.result("la", "e2").as_deref(), Some("d2"));
        assert_eq!(memo.found().load("la").unwrap().results.iter().next(), Some(("e2", "d2")), "newest first");

        // `a` changed: its new record replaces the old one; a result for a load the index does
        // not hold (no summary) is not kept.
        assert!(memo.known_content(a, Some(stat(3))).is_none());
        let files: Vec<_> = memo.file_record(a, Some(stat(3)), "ca2").into_iter().collect();
        assert_eq!(files.len(), 1);
        memo.keep(files, vec![("la2".into(), Arc::new(summary("a")))]);
        memo.checked("unknown", "e", "d");
        memo.save().unwrap();
        let memo = Memo::with_key(cache, crate::cache::FileKey::fixed());
        assert_eq!(memo.known_content(a, Some(stat(3))), Some("ca2"));
        assert_eq!(memo.summary("la2").as_deref(), Some(&summary("a")));
        assert_eq!(memo.summary("la"), None, "not met");
        assert!(memo.found().load("unknown").is_none());
    }

    #[test]
    fn runs_that_save_at_once_keep_each_others_records() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), true);
        let stat = |ino| Stat { len: 1, mtime: (100, 0), ctime: (100, 0), ino, dev: 1 };
        let (a, b) = (Path::new("/p/a.yaml"), Path::new("/p/b.yaml"));
        let tree = |name: &str| Path::new("/p/build").join(name);
        let stats = |ino| vec![(".stamp-rendered".to_string(), stat(ino))];
        // Both runs read the cache before either saves; each meets a file and a tree of its own.
        let runs = [(a, 1, "a", "da"), (b, 2, "b", "db")].map(|(path, ino, name, digest)| {
            let memo = Memo::with_key(cache.clone(), crate::cache::FileKey::fixed());
            memo.found();
            memo.found_trees();
            memo.keep(
                memo.file_record(path, Some(stat(ino)), &format!("c{name}")).into_iter().collect(),
                vec![(format!("l{name}"), Arc::new(summary(name)))],
            );
            memo.checked(&format!("l{name}"), "0a", digest);
            memo.tree_seen(&tree(name), digest, &stats(ino));
            memo
        });
        for memo in runs {
            memo.save().unwrap();
        }
        let next = Memo::with_key(cache.clone(), crate::cache::FileKey::fixed());
        assert_eq!(next.known_content(a, Some(stat(1))), Some("ca"));
        assert_eq!(next.known_content(b, Some(stat(2))), Some("cb"));
        for (name, digest) in [("a", "da"), ("b", "db")] {
            assert_eq!(next.summary(&format!("l{name}")).unwrap().name, name);
            assert_eq!(next.result(&format!("l{name}"), "0a").as_deref(), Some(digest));
            assert!(next.found_trees().contains_key(tree(name).to_str().unwrap()), "{name}");
        }
    }

    #[test]
    fn results_keep_the_newest_of_each_key_up_to_their_limit() {
        let mut results = Results::default();
        for i in 0..10 {
            results = Results::one(&format!("a{}", i % 7), &format!("d{i}")).unwrap().then(&results);
        }
        let kept: Vec<(&str, &str)> = results.iter().collect();
        assert_eq!(kept, [("a2", "d9"), ("a1", "d8"), ("a0", "d7"), ("a6", "d6"), ("a5", "d5"), ("a4", "d4")]);
        assert_eq!(results.get("a0").as_deref(), Some("d7"));
        assert_eq!(results.get("a3"), None, "older than the newest six");
        assert!(Results::one("a b", "d").is_none() && Results::one("a", "d\nz").is_none(), "not hex");
    }

    #[test]
    fn a_stat_taken_within_a_second_of_its_read_is_not_trusted() {
        let stat = Stat { len: 1, mtime: (100, 0), ctime: (100, 5), ino: 1, dev: 1 };
        assert!(!stat.settled_before(100));
        assert!(!stat.settled_before(101));
        assert!(stat.settled_before(102));
    }
}
