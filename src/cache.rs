//! Stamp's build cache (`.stamp/cache/` in the project): what is costly to compute again (an
//! account file's summary, the digest of an account's rendered tree), keyed by digests of
//! everything it depends on. It is never state: deleting the folder only costs time.
//!
//! Each cache file carries a header naming its kind and format, and the length and checksum
//! (CRC-32) of its body: a damaged, truncated or foreign file is ignored (and rebuilt by the
//! run), never trusted. A checksum, not a cryptographic digest: it guards against damage, and
//! whoever can write the cache could write any digest too; what an entry says is keyed by
//! SHA-256 digests of what it depends on. Files
//! are written under a temporary name and renamed, so a concurrent run reads the old file or
//! the new one, never half of either; runs that save at once take turns under a lock.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// The cache folder, inside the project.
pub const DIR: &str = ".stamp/cache";

/// Set to `1` (or `true`) to run without the cache, as `--no-cache` does.
pub const NO_CACHE_ENV: &str = "STAMP_NO_CACHE";

/// The largest cache file Stamp reads.
const MAX_BYTES: u64 = 256 << 20;

/// Bumped whenever what is cached, or how keys are made, changes.
const FORMAT: &str = "5";

/// The file runs lock while they save (see [`Cache::locked`]).
const LOCK: &str = "lock";

/// How long a run waits for another's save before it saves without the lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Which file a cache file is (device, inode, size, change time), `None` when there is none.
pub type Version = Option<(u64, u64, u64, i64, i64)>;

fn version_of(meta: &std::fs::Metadata) -> (u64, u64, u64, i64, i64) {
    use std::os::unix::fs::MetadataExt as _;
    // The inode alone could be one freed and given again to a file written since.
    (meta.dev(), meta.ino(), meta.len(), meta.ctime(), meta.ctime_nsec())
}

/// Where cache files are read and written; `None`: the cache is off.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    dir: Option<PathBuf>,
    /// Which key the digests in this cache's files were taken with (see [`FileKey`]): a file
    /// written under another key is of another kind, never read.
    key: String,
}

impl Cache {
    /// The cache of the project at `root`; off when `enabled` is false or `STAMP_NO_CACHE` says so.
    pub fn open(root: &Path, enabled: bool) -> Self {
        let off = std::env::var(NO_CACHE_ENV).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"));
        Self { dir: (enabled && !off).then(|| root.join(DIR)), key: String::new() }
    }

    /// No cache: every result is computed.
    pub fn off() -> Self {
        Self { dir: None, key: String::new() }
    }

    /// This cache, its files bound to `key`: those written under another key are not read.
    #[must_use]
    pub fn bound_to(self, key: &FileKey) -> Self {
        Self { key: key.digest(b"stamp-cache-key-id").chars().take(16).collect(), ..self }
    }

    pub fn is_on(&self) -> bool {
        self.dir.is_some()
    }

    /// The cache file `name` as written by [`Cache::write`] with the same `kind`, or `None`
    /// when it is missing, damaged, of another kind or format, or the cache is off.
    pub fn read<T: DeserializeOwned>(&self, name: &str, kind: &str) -> Option<T> {
        self.read_versioned(name, kind).0
    }

    /// [`Cache::read`], and the version of the file it read (see [`Cache::version`]).
    pub fn read_versioned<T: DeserializeOwned>(&self, name: &str, kind: &str) -> (Option<T>, Version) {
        use std::io::Read as _;
        // A plain file only: a FIFO put in an entry's place must not hang the run.
        let Some((file, meta)) = self.dir.as_ref().and_then(|dir| crate::fsio::open_plain(&dir.join(name)).ok()) else {
            return (None, None);
        };
        let version = Some(version_of(&meta));
        // Far beyond any fleet's index (10,000 accounts: about 5 MB): not read at all.
        if meta.len() > MAX_BYTES {
            return (None, version);
        }
        // Sized once (one more byte to find the end), not grown by doubling: 64 shards.
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
        if file.take(MAX_BYTES).read_to_end(&mut bytes).is_err() {
            return (None, version);
        }
        (unframe(&bytes, &self.key, kind).and_then(|body| postcard::from_bytes(body).ok()), version)
    }

    /// Which file `name` is now: every write makes a new one (renamed into place), so a
    /// version that differs from the one a run read means another run wrote it since.
    pub fn version(&self, name: &str) -> Version {
        Some(version_of(&fs_err::metadata(self.dir.as_ref()?.join(name)).ok()?))
    }

    /// Runs `save` holding the cache's lock, so runs that save at once take turns (each can
    /// then take in what the other saved). Without a lock to take (the cache is off, or its
    /// file system has none), `save` runs all the same.
    pub fn locked<R>(&self, save: impl FnOnce() -> R) -> R {
        let lock = self.dir.as_ref().and_then(|dir| {
            fs_err::create_dir_all(dir).ok()?;
            // A plain file: a FIFO in its place would keep the run waiting to open it.
            let file = crate::fsio::open_lock(&dir.join(LOCK)).ok()?.into_file();
            // A save takes milliseconds: a lock held far longer is held by a stopped run.
            let deadline = std::time::Instant::now() + LOCK_WAIT;
            loop {
                match file.try_lock() {
                    Ok(()) => return Some(file),
                    Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Err(_) => return None,
                }
            }
        });
        let saved = save();
        drop(lock);
        saved
    }

    /// Removes the cache file `name` (one no Stamp writes any more), if it is there.
    pub fn remove(&self, name: &str) {
        if let Some(dir) = &self.dir {
            let _ = fs_err::remove_file(dir.join(name));
        }
    }

    /// Writes `value` as the cache file `name`, atomically. A cache that cannot be written is
    /// no error (the next run computes again): the reason is returned for `--verbose`.
    pub fn write<T: Serialize>(&self, name: &str, kind: &str, value: &T) -> Result<(), String> {
        let Some(dir) = &self.dir else { return Ok(()) };
        // A compact binary form: the index of a large organisation is read by every run.
        let body = postcard::to_allocvec(value).map_err(|e| e.to_string())?;
        let write = || -> std::io::Result<()> {
            fs_err::create_dir_all(dir)?;
            let mut temp = tempfile::Builder::new().prefix(".write-").tempfile_in(dir)?;
            temp.write_all(&frame(&body, &self.key, kind))?;
            // No sync: a file torn by a crash fails its digest and is rebuilt.
            temp.persist(dir.join(name)).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(|e| format!("cannot write the cache in `{}`: {e}", dir.display()))
    }
}

fn header(key: &str, kind: &str) -> String {
    format!("stamp-cache/{FORMAT} {kind} {} {key}\n", build_id())
}

/// The line after the header: the body's length and checksum. The index of 10,000 accounts
/// (5 MB) is read by every run, and SHA-256 of it took longer than all else of reading it.
fn check_line(body: &[u8]) -> String {
    format!("{} {:08x}\n", body.len(), crc32fast::hash(body))
}

fn frame(body: &[u8], key: &str, kind: &str) -> Vec<u8> {
    let mut out = header(key, kind).into_bytes();
    out.extend_from_slice(check_line(body).as_bytes());
    out.extend_from_slice(body);
    out
}

/// The body of a framed cache file, if its header is this build's and this key's `kind` and
/// its length and checksum hold.
fn unframe<'a>(bytes: &'a [u8], key: &str, kind: &str) -> Option<&'a [u8]> {
    let rest = bytes.strip_prefix(header(key, kind).as_bytes())?;
    let newline = rest.iter().position(|&b| b == b'\n')?;
    let (check, body) = (&rest[..=newline], &rest[newline + 1..]);
    (check == check_line(body).as_bytes()).then_some(body)
}

/// A cache key: the digest of every field it is made of (each length-prefixed, so fields
/// cannot run into each other). A key cloned part way is the common beginning of many keys.
#[derive(Clone)]
pub struct Key(Sha256);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    pub fn new(kind: &str) -> Self {
        Self(Sha256::new()).field(FORMAT).field(build_id()).field(kind)
    }

    #[must_use]
    pub fn field(mut self, bytes: impl AsRef<[u8]>) -> Self {
        let bytes = bytes.as_ref();
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    /// A field of `len` bytes read from `reader`, streamed (any size takes no memory), as
    /// [`Key::field`] of those bytes; `None` when it cannot be read or holds another number
    /// of bytes (it changed while read).
    pub fn field_read(mut self, reader: impl std::io::Read, len: u64) -> Option<Self> {
        self.0.update(len.to_le_bytes());
        let read = std::io::copy(&mut reader.take(len.saturating_add(1)), &mut self.0).ok()?;
        (read == len).then_some(self)
    }

    /// A field that may be absent (absent and empty differ).
    #[must_use]
    pub fn optional(self, bytes: Option<impl AsRef<[u8]>>) -> Self {
        match bytes {
            Some(bytes) => self.field("some").field(bytes),
            None => self.field("none"),
        }
    }

    /// 128 bits, as hex: enough for a cache whose entries are verified by what they hold.
    pub fn finish(self) -> String {
        // The first 32 hex digits (the digest's hex format takes a precision).
        format!("{:.32x}", self.0.finalize())
    }
}

/// The digest of a file's content, as hex.
pub fn content_digest(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The environment variable that gives the key of account files' digests (see [`FileKey`]).
pub const KEY_ENV: &str = "STAMP_CACHE_KEY";

/// Where the key of a project's account files' digests is kept: beside the cache folder, not
/// in it, so a copy of the cache does not hold it.
pub const KEY_FILE: &str = ".stamp/cache-key";

/// The secret key account files' digests are taken with. An account file may hold a secret
/// (one CI fills in, say): the cache keeps each file's digest, and a plain digest would let
/// whoever gets a copy of the cache test guesses of it. Keyed, the digest tells nothing without
/// the key: `STAMP_CACHE_KEY` when set (jobs that share a cache share it as a secret), else a
/// random key kept in [`KEY_FILE`] (`0600`), else one for this run only (no cache, or the key
/// cannot be kept). The cache's files are bound to the key ([`Cache::bound_to`]): those
/// written under another one are not read, which only costs time.
#[derive(Clone)]
pub struct FileKey([u8; 32]);

impl FileKey {
    /// The key of the project at `root` with `cache`, and a warning when no key can be kept
    /// (a key file that holds none, one that cannot be written): each run then takes one of its
    /// own, and the cache serves none.
    pub fn of(root: &Path, cache: &Cache) -> (Self, Option<String>) {
        if let Ok(secret) = std::env::var(KEY_ENV)
            && !secret.is_empty()
        {
            return (
                Self(Sha256::new().chain_update(b"stamp-cache-key\0").chain_update(secret).finalize().into()),
                None,
            );
        }
        if !cache.is_on() {
            return (Self::fresh(), None);
        }
        match kept_key(&root.join(KEY_FILE)) {
            Ok(key) => (Self(key), None),
            Err(problem) => (Self::fresh(), Some(problem)),
        }
    }

    /// A key for this run only.
    pub fn fresh() -> Self {
        Self(random_key().unwrap_or_else(|| {
            // No random source: the run's own time and process, which no copy of the cache holds.
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            Sha256::new()
                .chain_update(now.as_nanos().to_le_bytes())
                .chain_update(std::process::id().to_le_bytes())
                .finalize()
                .into()
        }))
    }

    /// The same key every time, for tests that make several runs' memos.
    #[cfg(test)]
    pub fn fixed() -> Self {
        Self([7; 32])
    }

    /// The digest of an account file's content, as hex.
    pub fn digest(&self, bytes: &[u8]) -> String {
        format!("{:x}", Sha256::new().chain_update(self.0).chain_update(bytes).finalize())
    }
}

impl Default for FileKey {
    fn default() -> Self {
        Self::fresh()
    }
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(..)")
    }
}

/// The key kept at `path`, made when there is none (runs that make one at once agree: the
/// first written is kept, the others read it); else why there is none, as a warning (each run
/// then takes a key of its own, and the build cache serves none).
fn kept_key(path: &Path) -> Result<[u8; 32], String> {
    use base64::Engine as _;
    let base64 = base64::engine::general_purpose::STANDARD;
    let read = || {
        let text = crate::fsio::plain_text(path, 256)?;
        <[u8; 32]>::try_from(base64.decode(text.trim()).ok()?).ok()
    };
    let holds_no_key = || {
        format!(
            "`{KEY_FILE}` holds no key (32 bytes in base64, a plain file), so the build cache serves no run: remove it, and Stamp makes another"
        )
    };
    if let Some(key) = read() {
        return Ok(key);
    }
    if path.symlink_metadata().is_ok() {
        return Err(holds_no_key());
    }
    let fresh = random_key().ok_or_else(|| {
        format!(
            "no random source (`/dev/urandom`) to make `{KEY_FILE}`, so the build cache serves no run: set {KEY_ENV}"
        )
    })?;
    let text = format!("{}\n", base64.encode(fresh));
    match crate::fsio::create_atomic(path, text.as_bytes(), crate::fsio::Mode::Private) {
        Ok(()) => Ok(fresh),
        // Another run made it meanwhile (not a folder on the way that is a file).
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.symlink_metadata().is_ok() => {
            read().ok_or_else(holds_no_key)
        }
        Err(e) => Err(format!(
            "cannot keep the build cache's key in `{KEY_FILE}` ({}), so the cache serves no run: let Stamp write there, set {KEY_ENV}, or pass `--no-cache`",
            crate::diagnostics::io_reason(&e)
        )),
    }
}

fn random_key() -> Option<[u8; 32]> {
    use std::io::Read as _;
    let mut key = [0; 32];
    fs_err::File::open("/dev/urandom").ok()?.read_exact(&mut key).ok()?;
    Some(key)
}

/// Which Stamp built the cache: its version and, since a rebuilt binary may keep its version,
/// the size and modification time of the running executable.
pub fn build_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let exe = std::env::current_exe().ok().and_then(|p| fs_err::metadata(p).ok());
        let (len, modified) = exe.map_or((0, 0), |m| {
            let modified = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            (m.len(), modified.map_or(0, |d| d.as_nanos()))
        });
        format!("{}+{len}.{modified}", env!("CARGO_PKG_VERSION"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key is kept once made; where none can be, the warning says why (each run would take a
    /// key of its own, and the cache serve none).
    #[test]
    fn a_key_that_cannot_be_kept_is_said() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".stamp/cache-key");
        let key = kept_key(&path).unwrap();
        assert_eq!(kept_key(&path), Ok(key));
        fs_err::write(&path, "not a key").unwrap();
        assert!(kept_key(&path).unwrap_err().contains("holds no key"));
        // A file on the way (root writes anywhere else).
        fs_err::remove_dir_all(dir.path().join(".stamp")).unwrap();
        fs_err::write(dir.path().join(".stamp"), "").unwrap();
        let problem = kept_key(&path).unwrap_err();
        assert!(problem.starts_with("cannot keep the build cache's key in `.stamp/cache-key` ("), "{problem}");
        assert!(problem.ends_with("set STAMP_CACHE_KEY, or pass `--no-cache`"), "{problem}");
    }

    #[test]
    fn a_damaged_or_foreign_file_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache { dir: Some(dir.path().to_path_buf()), key: String::new() };
        cache.write("x", "index", &vec![1_u32, 2, 3]).unwrap();
        assert_eq!(cache.read::<Vec<u32>>("x", "index"), Some(vec![1, 2, 3]));
        assert_eq!(cache.read::<Vec<u32>>("x", "other"), None, "another kind");
        let path = dir.path().join("x");
        let bytes = fs_err::read(&path).unwrap();
        // Torn: any shorter prefix is refused.
        for cut in 0..bytes.len() {
            fs_err::write(&path, &bytes[..cut]).unwrap();
            assert_eq!(cache.read::<Vec<u32>>("x", "index"), None, "cut at {cut}");
        }
        // One changed byte of the body.
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() = b'4';
        fs_err::write(&path, &flipped).unwrap();
        assert_eq!(cache.read::<Vec<u32>>("x", "index"), None);
        assert_eq!(Cache::off().read::<Vec<u32>>("x", "index"), None);
        // A huge file is not read (a sparse one: no disk is used).
        let huge = fs_err::File::create(&path).unwrap();
        huge.set_len(MAX_BYTES + 1).unwrap();
        assert_eq!(cache.read::<Vec<u32>>("x", "index"), None);
        // Nor one that is not a plain file: a FIFO (no writer: reading it would wait for one),
        // a link to one, a link to a good entry.
        fs_err::remove_file(&path).unwrap();
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(cache.read::<Vec<u32>>("x", "index"), None);
        cache.write("y", "index", &vec![1_u32]).unwrap();
        for (link, to) in [("l1", "x"), ("l2", "y")] {
            std::os::unix::fs::symlink(dir.path().join(to), dir.path().join(link)).unwrap();
            assert_eq!(cache.read::<Vec<u32>>(link, "index"), None, "{link}");
        }
    }

    #[test]
    fn key_fields_do_not_run_into_each_other() {
        assert_ne!(Key::new("k").field("ab").field("c").finish(), Key::new("k").field("a").field("bc").finish());
        assert_ne!(Key::new("k").optional(None::<&str>).finish(), Key::new("k").optional(Some("")).finish());
    }
}
