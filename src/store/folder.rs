//! The folder store: one append-only JSON-lines file per account (`<ledger>/<account>.jsonl`),
//! migration journals in `<ledger>/migrations/<account>.json` (finished ones in `done/`). Its
//! locks are the local ones: it is for one machine, or a folder that only one machine writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{LockError, Place, Store, StoreError, StoreLock, StoredJournal};
use crate::ledger::journal::Journal;
use crate::ledger::{Damage, History, Record};

/// The largest ledger or journal file read: years of records of one account are megabytes.
const MAX_FILE: u64 = 256 << 20;

/// The ledger folder of a project.
#[derive(Debug)]
pub struct FolderStore {
    dir: PathBuf,
    /// The project root, to show paths relative to it.
    root: PathBuf,
}

/// A journal file: the journal with its revision (absent in journals written before there
/// were revisions: 0).
#[derive(Serialize, Deserialize)]
struct JournalFile {
    #[serde(default)]
    revision: u64,
    #[serde(flatten)]
    journal: serde_json::Value,
}

impl FolderStore {
    pub fn new(dir: PathBuf, root: &Path) -> Self {
        Self { dir, root: root.to_path_buf() }
    }

    /// The ledger file of an account.
    pub fn path(&self, account: &str) -> PathBuf {
        self.dir.join(format!("{account}.jsonl"))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn journal_path(&self, account: &str) -> PathBuf {
        self.dir.join("migrations").join(format!("{account}.json"))
    }

    fn done_dir(&self) -> PathBuf {
        self.dir.join("migrations").join("done")
    }

    fn display(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).display().to_string()
    }

    /// Holds an exclusive lock on `migrations/.<account>.lock` in the ledger folder for the
    /// read-compare-write of the account's journal: two runs sharing the folder (two
    /// checkouts on one machine) never both advance one journal.
    fn journal_guard(&self, account: &str) -> Result<fs_err::File, StoreError> {
        let dir = self.dir.join("migrations");
        fs_err::create_dir_all(&dir).map_err(Self::io(&dir))?;
        let path = dir.join(format!(".{account}.lock"));
        let file = crate::fsio::open_lock(&path).map_err(Self::io(&path))?;
        file.file().lock().map_err(Self::io(&path))?;
        Ok(file)
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io { path: path.to_path_buf(), source }
    }

    fn read_history(&self, account: &str) -> History {
        match crate::fsio::read_plain(&self.path(account), MAX_FILE) {
            Ok(bytes) => crate::ledger::read_lines(&bytes, account),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => History::default(),
            Err(e) => {
                let problem = format!("cannot read it: {}", crate::diagnostics::io_reason(&e));
                History { records: Vec::new(), damage: vec![Damage { line: 0, problem }] }
            }
        }
    }

    /// Every record of every account, each with a key naming it for an import: the digest of
    /// its line, and which of identical lines it is (a line's key does not change when lines
    /// before it are repaired or removed). The damaged lines, with their places, instead.
    pub fn keyed_records(&self) -> Result<Vec<(String, Record)>, Vec<String>> {
        use sha2::{Digest, Sha256};
        let mut keyed = Vec::new();
        let mut damaged = Vec::new();
        for account in self.accounts().map_err(|e| vec![e.to_string()])? {
            let path = self.path(&account);
            let bytes = crate::fsio::read_plain(&path, MAX_FILE).map_err(|e| vec![Self::io(&path)(e).to_string()])?;
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match crate::ledger::parse_record(line, &account) {
                    Ok(record) => {
                        let digest = format!("{:x}", Sha256::digest(line));
                        let n = seen.entry(digest.clone()).or_default();
                        *n += 1;
                        keyed.push((format!("folder:{account}:{digest}:{n}"), record));
                    }
                    Err(problem) => {
                        let place = self.place(&account, &Damage { line: index + 1, problem: problem.clone() });
                        damaged.push(format!("{}: {problem}", place.text));
                    }
                }
            }
        }
        if damaged.is_empty() { Ok(keyed) } else { Err(damaged) }
    }

    /// The accounts with a ledger file.
    pub fn accounts(&self) -> Result<Vec<String>, StoreError> {
        let entries = match fs_err::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io(&self.dir)(e)),
        };
        let mut names: Vec<String> =
            entries.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".jsonl").map(str::to_string)).collect();
        names.sort();
        Ok(names)
    }

    fn read_journal(&self, path: &Path, account: &str) -> Result<Option<(Journal, u64)>, StoreError> {
        let bytes = match crate::fsio::read_plain(path, MAX_FILE) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Self::io(path)(e)),
        };
        let damaged = |problem: String| StoreError::Damaged { place: format!("`{}`", self.display(path)), problem };
        let file: JournalFile =
            serde_json::from_slice(&bytes).map_err(|e| damaged(format!("not a migration journal ({e})")))?;
        let journal = Journal::parse(file.journal, account).map_err(damaged)?;
        Ok(Some((journal, file.revision)))
    }
}

impl Store for FolderStore {
    fn describe(&self) -> String {
        format!("the ledger folder `{}`", self.display(&self.dir))
    }

    fn is_shared(&self) -> bool {
        false
    }

    fn history(&self, account: &str) -> Result<History, StoreError> {
        Ok(self.read_history(account))
    }

    fn histories(&self, accounts: Option<&[&str]>) -> Result<BTreeMap<String, History>, StoreError> {
        // The folder is listed once, and only the files of accounts that were ever deployed
        // are read.
        let present = self.accounts()?;
        if present.is_empty() {
            return Ok(BTreeMap::new());
        }
        let wanted: Option<std::collections::HashSet<&str>> = accounts.map(|a| a.iter().copied().collect());
        Ok(present
            .into_iter()
            .filter(|name| wanted.as_ref().is_none_or(|wanted| wanted.contains(name.as_str())))
            .map(|name| {
                let history = self.read_history(&name);
                (name, history)
            })
            .collect())
    }

    /// One line in one write, then synced (see [`crate::fsio`]): a crash can at worst leave a
    /// partial last line, which readers report; earlier records are never touched.
    fn append(&self, record: &Record) -> Result<(), StoreError> {
        let mut line = serde_json::to_string(record).expect("records serialise");
        line.push('\n');
        let path = self.path(&record.account);
        // After a torn write, start on a fresh line so this record stays readable: its last
        // byte tells (the file is not read whole for it, however long the account's history).
        if last_byte(&path).is_some_and(|b| b != b'\n') {
            line.insert(0, '\n');
        }
        crate::fsio::append_durable(&path, line.as_bytes()).map_err(Self::io(&path))
    }

    fn place(&self, account: &str, damage: &Damage) -> Place {
        let file = self.display(&self.path(account));
        let text = if damage.line > 0 { format!("`{file}` line {}", damage.line) } else { format!("`{file}`") };
        Place { file: Some(self.path(account)), text }
    }

    fn journal(&self, account: &str) -> Result<Option<StoredJournal>, StoreError> {
        Ok(self
            .read_journal(&self.journal_path(account), account)?
            .map(|(journal, revision)| StoredJournal { journal, revision }))
    }

    fn journal_place(&self, account: &str) -> String {
        format!("`{}`", self.display(&self.journal_path(account)))
    }

    /// The check and the write happen under the journal's lock in the ledger folder.
    fn put_journal(&self, journal: &Journal, expected: Option<u64>) -> Result<u64, StoreError> {
        let _guard = self.journal_guard(&journal.account)?;
        let path = self.journal_path(&journal.account);
        let current = self.read_journal(&path, &journal.account)?.map(|(_, revision)| revision);
        if current != expected {
            return Err(StoreError::Conflict { account: journal.account.clone() });
        }
        let revision = expected.map_or(1, |r| r + 1);
        let file = JournalFile { revision, journal: serde_json::to_value(journal).expect("journals serialise") };
        let text = serde_json::to_string_pretty(&file).expect("journals serialise") + "\n";
        crate::fsio::write_atomic(&path, text.as_bytes()).map_err(Self::io(&path))?;
        Ok(revision)
    }

    fn finish_journal(&self, account: &str, expected: u64) -> Result<String, StoreError> {
        let _guard = self.journal_guard(account)?;
        let path = self.journal_path(account);
        let Some((journal, revision)) = self.read_journal(&path, account)? else {
            return Err(StoreError::Conflict { account: account.to_string() });
        };
        if revision != expected {
            return Err(StoreError::Conflict { account: account.to_string() });
        }
        let stamp: String = journal.started.chars().filter(char::is_ascii_alphanumeric).collect();
        let done_dir = self.done_dir();
        fs_err::create_dir_all(&done_dir).map_err(Self::io(&done_dir))?;
        // Never over another finished journal (two started in the same second): the first
        // free name, taken without replacing (a hard link fails if the name exists).
        let mut done = done_dir.join(format!("{account}-{stamp}.json"));
        let mut n = 1;
        loop {
            match fs_err::hard_link(&path, &done) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    n += 1;
                    done = done_dir.join(format!("{account}-{stamp}-{n}.json"));
                }
                Err(e) => return Err(Self::io(&done)(e)),
            }
        }
        fs_err::remove_file(&path).map_err(Self::io(&path))?;
        for dir in [&done_dir, &self.dir.join("migrations")] {
            crate::fsio::sync_dir(dir).map_err(Self::io(dir))?;
        }
        Ok(format!("`{}`", self.display(&done)))
    }

    fn finished_journals(&self) -> Result<Vec<(String, Journal)>, StoreError> {
        let dir = self.done_dir();
        let entries = match fs_err::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io(&dir)(e)),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let mut out = Vec::new();
        for path in files {
            let bytes = crate::fsio::read_plain(&path, MAX_FILE).map_err(Self::io(&path))?;
            let damaged =
                |problem: String| StoreError::Damaged { place: format!("`{}`", self.display(&path)), problem };
            let file: JournalFile =
                serde_json::from_slice(&bytes).map_err(|e| damaged(format!("not a migration journal ({e})")))?;
            let account = file.journal.get("account").and_then(|a| a.as_str()).unwrap_or_default().to_string();
            let journal = Journal::parse(file.journal, &account).map_err(damaged)?;
            let key = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            out.push((key, journal));
        }
        Ok(out)
    }

    fn lock(&self, _key: &str, _holder: &super::Holder) -> Result<Option<StoreLock>, LockError> {
        Ok(None)
    }
}

/// The last byte of the plain file at `path`, if it has one.
fn last_byte(path: &Path) -> Option<u8> {
    use std::io::{Read as _, Seek as _};
    let (mut file, metadata) = crate::fsio::open_plain(path).ok()?;
    file.seek(std::io::SeekFrom::Start(metadata.len().checked_sub(1)?)).ok()?;
    let mut byte = [0];
    file.read_exact(&mut byte).ok()?;
    Some(byte[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Slot;
    use crate::ledger::{Outcome, example};

    #[test]
    fn damaged_lines_are_reported_with_their_place_and_the_others_still_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path().join("ledger"), dir.path());
        store.append(&example("qa", Outcome::Succeeded)).unwrap();
        store.append(&example("qa", Outcome::Failed)).unwrap();
        let path = store.path("qa");
        let mut bytes = fs_err::read(&path).unwrap();
        bytes[10] = 0xff;
        fs_err::write(&path, &bytes).unwrap();
        let history = store.history("qa").unwrap();
        assert_eq!(history.records.len(), 1);
        assert_eq!(store.place("qa", &history.damage[0]).text, "`ledger/qa.jsonl` line 1");
    }

    #[test]
    fn appends_after_a_torn_last_line_and_lists_accounts_with_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path().join("ledger"), dir.path());
        store.append(&example("qa", Outcome::Succeeded)).unwrap();
        store.append(&example("qa", Outcome::Failed)).unwrap();
        // A crash in the middle of a write leaves a partial line at the end.
        let path = store.path("qa");
        let mut text = fs_err::read_to_string(&path).unwrap();
        text.push_str("{\"time\":\"2026-");
        fs_err::write(&path, text).unwrap();
        let history = store.history("qa").unwrap();
        assert_eq!((history.records.len(), history.damage.len()), (2, 1), "the torn line is reported");
        store.append(&example("qa", Outcome::Succeeded)).unwrap();
        assert_eq!(store.history("qa").unwrap().records.len(), 3, "a record after a torn line is kept");
        store.append(&example("prod", Outcome::Succeeded)).unwrap();
        let all = store.histories(None).unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["prod", "qa"]);
        assert_eq!(store.histories(Some(&["prod", "nobody"])).unwrap().len(), 1);
        assert!(store.history("nobody").unwrap().records.is_empty());
    }

    #[test]
    fn journals_advance_only_from_the_revision_read_and_finish_into_done() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path().join("ledger"), dir.path());
        let mut journal = Journal::start("prod", Slot::Blue, "1.5.0");
        assert_eq!(store.put_journal(&journal, None).unwrap(), 1);
        assert!(matches!(store.put_journal(&journal, None), Err(StoreError::Conflict { .. })));
        journal.mark(crate::ledger::journal::MigrationStep::Standby);
        assert_eq!(store.put_journal(&journal, Some(1)).unwrap(), 2);
        assert!(matches!(store.put_journal(&journal, Some(1)), Err(StoreError::Conflict { .. })), "a stale writer");
        let stored = store.journal("prod").unwrap().unwrap();
        assert_eq!((stored.journal, stored.revision), (journal.clone(), 2));
        assert!(matches!(store.finish_journal("prod", 1), Err(StoreError::Conflict { .. })));
        let place = store.finish_journal("prod", 2).unwrap();
        assert!(place.starts_with("`ledger/migrations/done/prod-"), "{place}");
        assert!(store.journal("prod").unwrap().is_none());
        assert_eq!(store.finished_journals().unwrap().len(), 1);
    }

    #[test]
    fn two_writers_of_one_journal_never_both_advance_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for round in 0..50 {
            let account = format!("acct{round}");
            let store = FolderStore::new(root.join("ledger"), &root);
            let journal = Journal::start(&account, Slot::Blue, "1.5.0");
            store.put_journal(&journal, None).unwrap();
            let barrier = std::sync::Barrier::new(2);
            let won = std::thread::scope(|scope| {
                let runs: Vec<_> = (0..2)
                    .map(|_| {
                        let (barrier, journal, root) = (&barrier, &journal, &root);
                        scope.spawn(move || {
                            let store = FolderStore::new(root.join("ledger"), root);
                            barrier.wait();
                            store.put_journal(journal, Some(1)).is_ok()
                        })
                    })
                    .collect();
                runs.into_iter().map(|r| r.join().unwrap()).filter(|won| *won).count()
            });
            assert_eq!(won, 1, "round {round}: both writers advanced the journal");
        }
    }

    #[test]
    fn finished_journals_started_in_the_same_second_are_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path().join("ledger"), dir.path());
        let journal = Journal::start("prod", Slot::Blue, "1.5.0");
        for _ in 0..3 {
            store.put_journal(&journal, None).unwrap();
            store.finish_journal("prod", 1).unwrap();
        }
        assert_eq!(store.finished_journals().unwrap().len(), 3);
    }

    #[test]
    fn a_journal_written_before_revisions_reads_as_revision_0_and_a_damaged_one_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path().join("ledger"), dir.path());
        let journal = Journal::start("prod", Slot::Blue, "1.5.0");
        let path = dir.path().join("ledger/migrations/prod.json");
        crate::fsio::write_atomic(&path, serde_json::to_string(&journal).unwrap().as_bytes()).unwrap();
        assert_eq!(store.journal("prod").unwrap().unwrap().revision, 0);
        assert_eq!(store.put_journal(&journal, Some(0)).unwrap(), 1);
        fs_err::write(&path, "{\"revision\": 3, \"format\": \"stamp-migration/9\"}").unwrap();
        let error = store.journal("prod").unwrap_err().to_string();
        assert!(error.contains("prod.json") && error.contains("is damaged"), "{error}");
    }
}
