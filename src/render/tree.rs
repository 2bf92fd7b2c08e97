//! A rendered root module in memory, and writing it to disk atomically.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use crate::config::catalog::Stat;

/// One file of a rendered tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    pub content: Arc<[u8]>,
    pub executable: bool,
}

/// A rendered root module: relative path (with `/`) to file, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub files: BTreeMap<String, TreeFile>,
}

/// A marker file in every tree Stamp writes, so it never replaces a folder it did not write.
pub const MARKER: &str = ".stamp-rendered";

#[derive(Debug, Error)]
pub enum WriteError {
    #[error("`{0}` exists and was not written by Stamp (no `{MARKER}` file); refusing to replace it")]
    NotOurs(PathBuf),
    #[error("`{0}` is a symbolic link; Stamp replaces only folders it wrote, never through a link")]
    Link(PathBuf),
    /// What the folder holds that Stamp did not write (see [`foreign_in`]), relative to it.
    #[error("`{}` holds what Stamp did not write, which replacing it would remove: {}", .0.display(), .1.iter().map(|f| format!("`{}`", crate::text::one_line(f))).collect::<Vec<_>>().join(", "))]
    Foreign(PathBuf, Vec<String>),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Tree {
    /// The digest of every file's path and content: equal digests, equal trees.
    pub fn digest(&self) -> String {
        digest_of(self.files.iter().map(|(path, file)| (path.as_str(), &*file.content)))
    }

    /// The digest of every file's path, mode (executable or not) and content, each
    /// length-prefixed: what a tree written to disk is compared by ([`Tree::digest`], which the
    /// ledger records, leaves the mode out).
    pub fn disk_digest(&self) -> String {
        disk_digest_of(self.files.iter().map(|(path, file)| (path.as_str(), file.executable, &*file.content)))
    }

    /// The files of the tree Stamp wrote to `dir` (its marker included, Terraform's
    /// `.terraform` folder, which a render keeps, left out), as relative path and full path;
    /// `None` when there is no tree, or something else than files and folders is in it.
    fn files_on_disk(dir: &Path) -> Option<Vec<(String, PathBuf)>> {
        let mut files = Vec::new();
        let walk = walkdir::WalkDir::new(dir)
            .min_depth(1)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| !(e.depth() == 1 && e.file_name() == ".terraform"));
        for entry in walk {
            let entry = entry.ok()?;
            if entry.file_type().is_dir() {
                continue;
            }
            if !entry.file_type().is_file() {
                return None;
            }
            let relative = slashed(entry.path().strip_prefix(dir).ok()?.to_str()?);
            files.push((relative, entry.into_path()));
        }
        files.sort();
        files.iter().any(|(relative, _)| relative == MARKER).then_some(files)
    }

    /// The `stat` of every file of the tree Stamp wrote to `dir` (see [`Tree::digest_on_disk`]).
    pub fn stats_on_disk(dir: &Path) -> Option<Stats> {
        // The same files as `files_on_disk`, each `stat` taken relative to its open folder
        // (`DirEntry::metadata`), not by walking its whole path again: for thousands of trees
        // that is most of the time.
        fn walk(dir: &Path, prefix: &str, out: &mut Stats) -> Option<()> {
            for entry in fs_err::read_dir(dir).ok()? {
                let entry = entry.ok()?;
                let name = entry.file_name().into_string().ok()?;
                let kind = entry.file_type().ok()?;
                if prefix.is_empty() && name == ".terraform" {
                    continue;
                }
                let relative = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
                if kind.is_dir() {
                    walk(&entry.path(), &relative, out)?;
                } else if kind.is_file() {
                    out.push((relative, entry.metadata().ok().as_ref().and_then(Stat::of)?));
                } else {
                    return None;
                }
            }
            Some(())
        }
        let mut stats = Vec::new();
        walk(dir, "", &mut stats)?;
        stats.sort_by(|a, b| a.0.cmp(&b.0));
        stats.iter().any(|(relative, _)| relative == MARKER).then_some(stats)
    }

    /// The digest (as [`Tree::digest`]) and number of files of the tree Stamp wrote to `dir`
    /// with `marker_text`, read back from disk; `None` when there is none, or something else
    /// is there (a symbolic link, another marker). Each file is streamed through the digest,
    /// so a file of any size takes no memory.
    pub fn digest_on_disk(dir: &Path, marker_text: &str) -> Option<(String, usize)> {
        let found = Self::files_on_disk(dir)?;
        // The marker lists the files it was written with: those found. It is compared first,
        // so that no other file is read when one was added.
        let marker = with_files(marker_text, found.iter().map(|(relative, _)| relative.as_str()));
        if crate::fsio::plain_text(&dir.join(MARKER), marker.len() as u64)? != marker {
            return None;
        }
        let mut key = disk_digest_key();
        let mut count = 0;
        for (relative, path) in found.iter().filter(|(relative, _)| relative != MARKER) {
            let (file, metadata) = crate::fsio::open_plain(path).ok()?;
            key = disk_digest_field(key, relative, is_executable(&metadata)).field_read(file, metadata.len())?;
            count += 1;
        }
        Some((key.finish(), count))
    }

    /// Writes the tree to `dir`: first into a temporary folder next to it (every file synced),
    /// then exchanged with the old folder in one step, so `dir` is always either the old tree
    /// or the new one, never half of either. A `.terraform` folder from an earlier `init` is
    /// carried over.
    pub fn write_atomically(&self, dir: &Path, marker_text: &str) -> Result<(), WriteError> {
        // Left beside it by runs that were killed (once per folder and process: a work folder's
        // parent holds every account's).
        sweep_staging_once(&crate::fsio::parent(dir));
        let (staging, _) = self.write_staging(dir, marker_text, true)?;
        let old = match install(staging.path(), dir) {
            Ok(old) => old,
            Err(e) => {
                discard(staging);
                return Err(e);
            }
        };
        // The staging folder is now the tree (or, after an exchange, the old one).
        let _ = staging.keep();
        crate::fsio::sync_dir(&crate::fsio::parent(dir))?;
        if let Some(old) = old {
            fs_err::remove_dir_all(old)?;
        }
        Ok(())
    }

    /// Writes the tree into a staging folder next to `dir`, to be moved into place by
    /// [`Batch::commit`] with the other trees of `batch`. Its files are not synced one by one:
    /// the commit syncs the file system once for all of them.
    pub fn stage<T>(&self, dir: &Path, marker_text: &str, batch: &Batch<T>, tag: T) -> Result<(), WriteError> {
        let (staging, stats) = self.write_staging(dir, marker_text, !cfg!(target_os = "linux"))?;
        batch.staged.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Staged {
            tag,
            staging,
            dir: dir.to_path_buf(),
            stats,
        });
        batch.flusher.staged(&crate::fsio::parent(dir));
        Ok(())
    }

    /// The tree written into a new temporary folder next to `dir` (removed when dropped), each
    /// file synced when `sync` says so, and the `stat` of its files as [`Tree::stats_on_disk`]
    /// gives them (moving the folder changes none).
    fn write_staging(
        &self,
        dir: &Path,
        marker_text: &str,
        sync: bool,
    ) -> Result<(tempfile::TempDir, Option<Stats>), WriteError> {
        refuse_foreign(dir)?;
        let parent = crate::fsio::parent(dir);
        fs_err::create_dir_all(&parent)?;
        let staging = staging_dir_in(&parent)?;
        // Each folder is made once (thousands of trees: the calls add up).
        let mut folders = std::collections::BTreeSet::new();
        let mut stats = Vec::with_capacity(self.files.len() + 1);
        for (path, file) in &self.files {
            // A tree's paths are plain names below it (see `blueprint::portable`): whatever a
            // bug lets through is refused here, never written out of the folder.
            if !is_plain_path(path) {
                return Err(WriteError::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`{}` is not a plain path below the tree", crate::text::one_line(path)),
                )));
            }
            let target = staging.path().join(path);
            if let Some((folder, _)) = path.rsplit_once('/')
                && folders.insert(folder)
            {
                fs_err::create_dir_all(staging.path().join(folder))?;
            }
            stats.push(write_file(&target, &file.content, file.executable, sync)?.map(|stat| (path.clone(), stat)));
        }
        let marker_text = with_files(marker_text, self.files.keys().map(String::as_str));
        let marker = write_file(&staging.path().join(MARKER), marker_text.as_bytes(), false, sync)?;
        stats.push(marker.map(|stat| (MARKER.to_string(), stat)));
        // Without a `stat` (not on Unix), none.
        let mut stats: Option<Stats> = stats.into_iter().collect();
        if let Some(stats) = &mut stats {
            stats.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Ok((staging, stats))
    }
}

/// The text of a tree's marker: `head`, the caller's, then the files of the tree (the marker
/// left out), one JSON string a line, so that a later render can tell them from what was put
/// beside them, however soon after.
fn with_files<'a>(head: &str, files: impl Iterator<Item = &'a str>) -> String {
    let mut text = head.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(FILES);
    for path in files.filter(|path| *path != MARKER) {
        text.push_str(&serde_json::to_string(path).expect("text serialises"));
        text.push('\n');
    }
    text
}

/// A path relative to a tree, with `/` between its parts (on Unix, a `\` is part of a name:
/// a file named `a\b` is not `a/b`).
fn slashed(path: &str) -> String {
    if cfg!(windows) { path.replace('\\', "/") } else { path.to_string() }
}

/// The text of the marker in `dir`: `None` when there is none, or it is not a plain file of
/// text (a link, a device, anything larger than [`MAX_MARKER`]): a marker is read whole, so
/// one made huge, or a link to `/dev/zero`, must not be.
pub fn marker_text(dir: &Path) -> Option<String> {
    crate::fsio::plain_text(&dir.join(MARKER), MAX_MARKER)
}

/// The most a marker may hold: the names of a tree of a hundred thousand files.
const MAX_MARKER: u64 = 16 << 20;

/// Where a marker's list of files starts (after its head, which ends its line).
const FILES: &str = "files:\n";

/// The files a marker's text lists: `None` when it lists none (a marker of an older Stamp);
/// an error when its list cannot be read (a damaged marker).
fn listed_in(marker: &str) -> Result<Option<std::collections::BTreeSet<String>>, ()> {
    // The last: no line of the list reads `files:` (each is a JSON string).
    let list = match marker.rsplit_once(&format!("\n{FILES}")) {
        Some((_, list)) => list,
        None => match marker.strip_prefix(FILES) {
            Some(list) => list,
            None => return Ok(None),
        },
    };
    list.lines().map(|line| serde_json::from_str::<String>(line).map_err(|_| ())).collect::<Result<_, _>>().map(Some)
}

/// What the folder `dir`, a tree Stamp rendered, holds that Stamp did not write and that
/// replacing it with a tree of the files `new` would lose: besides what Terraform itself
/// writes there, files its marker does not list (put there after it, however soon), files of
/// the old tree not in `new` whose inode changed after the marker was written (edited, or
/// moved, copied or unpacked in, whatever times they were given), empty folders neither tree
/// has, entries that are neither files nor folders, and entries that cannot be read or named.
/// A marker of an older Stamp lists no files (nor does one emptied, or cut before its list):
/// then every file and empty folder the new tree does not replace is the user's; a marker whose
/// list cannot be read is itself named. Their paths,
/// relative to `dir`; none when there is no tree there.
pub fn foreign_in(dir: &Path, new: &std::collections::BTreeSet<String>) -> Vec<String> {
    use std::collections::BTreeSet;
    use std::os::unix::fs::MetadataExt as _;
    let changed_at = |m: &std::fs::Metadata| (m.ctime(), m.ctime_nsec());
    // No tree there yet (every tree of a first render): one `stat`.
    let Ok(written) = fs_err::metadata(dir.join(MARKER)).map(|m| changed_at(&m)) else { return Vec::new() };
    // A link is refused whatever it leads to (see `refuse_foreign`).
    if dir.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
        return Vec::new();
    }
    let Ok(listed) = marker_text(dir).ok_or(()).and_then(|text| listed_in(&text)) else {
        return vec![format!("{MARKER} (its list of the files Stamp wrote cannot be read)")];
    };
    // Every folder of a tree's files, however deep.
    let folders_of = |paths: &mut dyn Iterator<Item = &str>| -> BTreeSet<String> {
        paths.flat_map(|path| path.match_indices('/').map(move |(at, _)| path[..at].to_string())).collect()
    };
    let new_folders = folders_of(&mut new.iter().map(String::as_str));
    let listed_folders = listed.as_ref().map(|listed| folders_of(&mut listed.iter().map(String::as_str)));
    let walk = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !(e.depth() == 1 && TERRAFORMS.iter().any(|k| e.file_name() == *k)));
    let mut foreign = Vec::new();
    for entry in walk {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let path = e.path().and_then(|p| p.strip_prefix(dir).ok()).unwrap_or(Path::new("?"));
                foreign.push(format!("{} (cannot be read)", path.to_string_lossy()));
                continue;
            }
        };
        let path = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let Some(relative) = path.to_str().map(slashed) else {
            foreign.push(path.to_string_lossy().into_owned());
            continue;
        };
        let kind = entry.file_type();
        // Asked only where the answer needs it: thousands of trees replaced at once.
        let changed = || entry.metadata().ok().is_none_or(|m| changed_at(&m) > written);
        let theirs = if kind.is_dir() {
            // A folder is judged by what is in it; an empty one by itself.
            !new_folders.contains(&relative)
                && fs_err::read_dir(entry.path()).map_or(true, |mut e| e.next().is_none())
                && match &listed_folders {
                    Some(folders) => !folders.contains(&relative) || changed(),
                    None => true,
                }
        } else if kind.is_file() {
            relative != MARKER
                && match &listed {
                    Some(listed) => !listed.contains(&relative) || (!new.contains(&relative) && changed()),
                    // Without a list (an older Stamp's marker, or one emptied or cut before its
                    // list), no file the new tree does not replace is taken for Stamp's: a
                    // marker rewritten since is newer than every file, so times tell nothing.
                    None => !new.contains(&relative),
                }
        } else {
            true
        };
        if theirs {
            foreign.push(relative);
        }
    }
    foreign
}

/// The name every staging folder starts with (then [`host_tag`] and the id of the process
/// writing it).
pub const STAGING_PREFIX: &str = ".stamp-new-";

/// A new staging folder in `parent`, named with this machine and process, so a run after this
/// one was killed can tell it is gone (see [`sweep_staging`]).
pub fn staging_dir_in(parent: &Path) -> std::io::Result<tempfile::TempDir> {
    let prefix = format!("{STAGING_PREFIX}{}-{}-", host_tag().unwrap_or("any"), std::process::id());
    tempfile::Builder::new().prefix(&prefix).tempdir_in(parent)
}

/// Which processes a process id names here: this boot of this kernel and this process id
/// namespace (containers on one host have their own), as a short digest; `None` where that
/// cannot be told (not Linux), and then no staging folder is ever swept.
fn host_tag() -> Option<&'static str> {
    static TAG: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        let boot = fs_err::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let namespace = fs_err::read_link("/proc/self/ns/pid").ok()?;
        // Not a cache key (which names the running Stamp): every Stamp, an older one too, must
        // tell the folders of its own machine by the same name.
        let digest = crate::cache::content_digest(format!("{}\0{}", boot.trim(), namespace.to_str()?).as_bytes());
        Some(digest[..12].to_string())
    })
    .as_deref()
}

/// Removes the staging folders in `parent` left by runs that were killed: written on this
/// machine (see [`host_tag`]) by a process that is gone. A folder of a run still going, of
/// another machine or container sharing the folder, or holding a `.terraform` folder (a
/// killed move may have left the only copy there) is left alone.
///
/// A folder with a marker may be an old tree the killed run had moved out of its place and
/// not yet removed: a shell still in it (its working folder moved with it) may have written
/// there since, for as long as no run swept it. It is judged as the run would have judged it
/// (see [`retire`]) and kept beside its account's folder when it holds what Stamp did not
/// write; a sentence for each one kept is returned.
#[must_use = "what it kept is to be told"]
pub fn sweep_staging(parent: &Path) -> Vec<String> {
    let mut kept = Vec::new();
    let Some(tag) = host_tag() else { return kept };
    let Ok(entries) = fs_err::read_dir(parent) else { return kept };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(STAGING_PREFIX)).and_then(|n| n.strip_prefix(tag))
        else {
            continue;
        };
        let Some(Ok(pid)) = rest.strip_prefix('-').and_then(|r| r.split('-').next()).map(str::parse::<u32>) else {
            continue;
        };
        let path = entry.path();
        if pid != std::process::id()
            && entry.file_type().is_ok_and(|t| t.is_dir())
            && !path.join(".terraform").exists()
            && !process_alive(pid)
        {
            if path.join(MARKER).symlink_metadata().is_ok() {
                let dir = parent.join(account_of(&path).unwrap_or_else(|| "tree".into()));
                kept.extend(retire(&path, &dir, AFTER_STOPPED));
            } else {
                let _ = fs_err::remove_dir_all(path);
            }
        }
    }
    kept
}

/// The account a tree's marker names (`account: NAME`, as `stamp render` writes it), when it
/// is a plain name: the folder of that name beside the tree is where it was rendered.
fn account_of(tree: &Path) -> Option<String> {
    let text = marker_text(tree)?;
    let name = text.lines().find_map(|line| line.strip_prefix("account: "))?;
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    plain.then(|| name.to_string())
}

/// [`sweep_staging`], the first time this process writes into `parent`.
fn sweep_staging_once(parent: &Path) {
    static SWEPT: std::sync::Mutex<std::collections::BTreeSet<PathBuf>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let first = SWEPT.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(parent.to_path_buf());
    if first {
        // A work folder's parent: nothing is rendered there by hand, and no shell is kept in
        // one of its trees (what is kept is kept all the same, beside its folder).
        let _ = sweep_staging(parent);
    }
}

/// Whether a process of this id runs (one of another user counts: it may be writing).
#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return true };
    !matches!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None), Err(nix::errno::Errno::ESRCH))
}

#[cfg(not(unix))]
fn process_alive(_: u32) -> bool {
    true
}

/// Refuses to replace a folder Stamp did not write (one with files and no marker).
fn refuse_foreign(dir: &Path) -> Result<(), WriteError> {
    // What it leads to (a work folder, say) would lose its `.terraform` and be judged by its
    // marker, while the link itself is replaced.
    if dir.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(WriteError::Link(dir.to_path_buf()));
    }
    if dir.exists() && !dir.join(MARKER).is_file() && fs_err::read_dir(dir)?.next().is_some() {
        return Err(WriteError::NotOurs(dir.to_path_buf()));
    }
    Ok(())
}

/// What a folder keeps of Terraform's own files when Stamp replaces its tree: the providers
/// and modules `terraform init` installed there. (The dependency lock file `terraform init`
/// writes is not kept: a tree may bring its own, and one kept beside a tree that does not
/// would make every render of it a change.)
const KEPT: &[&str] = &[".terraform"];

/// What Terraform itself writes into a root module: never the user's to lose by a render
/// (`.terraform` is kept; the lock file, which `terraform init` writes again, is not).
const TERRAFORMS: &[&str] = &[".terraform", crate::terraform::providers::LOCK_FILE];

/// Moves the complete tree at `staging` to `dir` (carrying over what `dir` holds of [`KEPT`])
/// in one step; the folder then holding the old tree, if there was one, is returned to be removed
/// once the move is durable. Nothing is synced.
fn install(staging: &Path, dir: &Path) -> Result<Option<PathBuf>, WriteError> {
    refuse_foreign(dir)?;
    let mut carried = Vec::new();
    let put_back = |carried: &[&&str]| {
        for name in carried {
            let _ = fs_err::rename(staging.join(name), dir.join(name));
        }
    };
    for name in KEPT {
        let old = dir.join(name);
        if old.symlink_metadata().is_ok() && staging.join(name).symlink_metadata().is_err() {
            if let Err(e) = fs_err::rename(&old, staging.join(name)) {
                put_back(&carried);
                return Err(e.into());
            }
            carried.push(name);
        }
    }
    crate::fsio::swap_in(staging, dir).map_err(|e| {
        // The tree stays as it was, with what was carried.
        put_back(&carried);
        WriteError::Io(e)
    })
}

/// Drops a staging folder whose tree was not moved in, unless it holds what was carried over
/// and could not be put back: then it stays, and the sweep leaves it alone.
fn discard(staging: tempfile::TempDir) {
    if KEPT.iter().any(|name| staging.path().join(name).symlink_metadata().is_ok()) {
        let _ = staging.keep();
    }
}

/// Trees written together, each tagged with a `T` of the caller's: each is staged
/// ([`Tree::stage`]), then all are moved into place by one [`Batch::commit`]. Writing
/// thousands of trees, this syncs the file system once instead of every file.
#[derive(Debug)]
pub struct Batch<T> {
    staged: std::sync::Mutex<Vec<Staged<T>>>,
    /// Writes back what is staged while more is being rendered (see [`Flusher`]).
    flusher: Flusher,
}

/// Starts writing staged trees to disk while the run renders more, so the sync of the commit
/// has little left to write: every [`Flusher::EVERY`] trees, a thread of its own syncs their
/// file system (what is being written then is synced too, or by the next). They move the
/// disk's work earlier, when it is idle; an error one of them meets is the commit's error
/// (the kernel reports a write-back error to one sync only).
#[derive(Debug, Default)]
struct Flusher {
    staged: std::sync::atomic::AtomicUsize,
    thread: std::sync::Mutex<Option<Writeback>>,
}

/// The write-back thread: where to ask it to sync, and its first error when it ends.
type Writeback = (std::sync::mpsc::Sender<PathBuf>, std::thread::JoinHandle<Option<String>>);

impl Flusher {
    /// About 1,700 files: a few MB to write back at a time.
    const EVERY: usize = 100;

    /// One more tree is staged in `parent`.
    fn staged(&self, parent: &Path) {
        let staged = self.staged.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if !cfg!(target_os = "linux") || !staged.is_multiple_of(Self::EVERY) {
            return;
        }
        let mut thread = self.thread.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if thread.is_none() {
            let (send, receive) = std::sync::mpsc::channel::<PathBuf>();
            let spawned = std::thread::Builder::new().name("stamp-writeback".into()).spawn(move || {
                let mut failed = None;
                while let Ok(mut parent) = receive.recv() {
                    // Asked again while it synced: once for all of them.
                    while let Ok(later) = receive.try_recv() {
                        parent = later;
                    }
                    #[cfg(target_os = "linux")]
                    if let Err(e) = crate::fsio::sync_filesystem(&parent) {
                        failed.get_or_insert(e.to_string());
                    }
                }
                failed
            });
            match spawned {
                Ok(spawned) => *thread = Some((send, spawned)),
                Err(_) => return,
            }
        }
        if let Some((send, _)) = thread.as_ref() {
            let _ = send.send(parent.to_path_buf());
        }
    }

    /// Waits for the sync under way, if any (the commit's own follows): the first error one
    /// of them met.
    fn finish(self) -> Option<String> {
        let thread = self.thread.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (send, thread) = thread?;
        drop(send);
        thread.join().unwrap_or_else(|_| Some("the write-back thread failed".to_string()))
    }
}

#[derive(Debug)]
struct Staged<T> {
    tag: T,
    staging: tempfile::TempDir,
    dir: PathBuf,
    stats: Option<Stats>,
}

/// The `stat` of each file of a tree on disk, by relative path, sorted.
pub type Stats = Vec<(String, Stat)>;

/// What became of one tree of a [`Batch`]: in place, with the `stat` of its files, or not
/// written.
pub type Committed<T> = (T, PathBuf, Result<Option<Stats>, WriteError>);

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Self { staged: std::sync::Mutex::new(Vec::new()), flusher: Flusher::default() }
    }
}

impl<T> Batch<T> {
    /// Makes every staged tree durable (one sync of each file system they are on), moves each
    /// into place as [`Tree::write_atomically`] does, syncs the folders they are in, then removes
    /// the old trees. Each tree's own outcome is returned with its tag and folder; a tree that
    /// fails leaves its folder as it was.
    pub fn commit(self) -> Commit<T> {
        let written_back = self.flusher.finish();
        let staged = self.staged.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        let parents: std::collections::BTreeSet<PathBuf> = staged.iter().map(|s| crate::fsio::parent(&s.dir)).collect();
        let synced: BTreeMap<PathBuf, Result<(), String>> = parents
            .into_iter()
            .map(|parent| {
                // Elsewhere than Linux, each file was synced as it was written.
                #[cfg(target_os = "linux")]
                let result = match &written_back {
                    Some(failed) => Err(failed.clone()),
                    None => crate::fsio::sync_filesystem(&parent).map_err(|e| e.to_string()),
                };
                #[cfg(not(target_os = "linux"))]
                let result = Ok(());
                (parent, result)
            })
            .collect();
        let mut outcomes = Vec::with_capacity(staged.len());
        let mut old_trees = Vec::new();
        for Staged { tag, staging, dir, stats } in staged {
            let installed = match &synced[&crate::fsio::parent(&dir)] {
                Err(e) => Err(WriteError::Io(io::Error::other(format!("cannot sync the staged trees: {e}")))),
                // What the folder holds is judged now, just before it is replaced, not when
                // the tree was rendered: what was put there since is never lost.
                Ok(()) => {
                    // No tree there yet (every tree of a first render): one `stat`.
                    let foreign = if dir.join(MARKER).symlink_metadata().is_ok() {
                        foreign_in(&dir, &files_of(staging.path(), stats.as_ref()))
                    } else {
                        Vec::new()
                    };
                    if foreign.is_empty() {
                        install(staging.path(), &dir)
                    } else {
                        Err(WriteError::Foreign(dir.clone(), foreign))
                    }
                }
            };
            match installed {
                Ok(old) => {
                    let _ = staging.keep();
                    old_trees.extend(old.map(|old| (old, dir.clone())));
                    outcomes.push((tag, dir, Ok(stats)));
                }
                Err(e) => {
                    discard(staging);
                    outcomes.push((tag, dir, Err(e)));
                }
            }
        }
        // The moves are made durable before any old tree is removed; where that fails, the old
        // trees stay (in staging folders beside the new ones).
        let folders: std::collections::BTreeSet<PathBuf> =
            outcomes.iter().filter(|(_, _, r)| r.is_ok()).map(|(_, dir, _)| crate::fsio::parent(dir)).collect();
        let mut unsynced = std::collections::BTreeSet::new();
        for folder in folders {
            if let Err(e) = crate::fsio::sync_dir(&folder) {
                let message = format!("moved in, but cannot make `{}` durable: {e}", folder.display());
                for (_, dir, result) in &mut outcomes {
                    if result.is_ok() && crate::fsio::parent(dir) == folder {
                        *result = Err(WriteError::Io(io::Error::other(message.clone())));
                    }
                }
                unsynced.insert(folder);
            }
        }
        let kept = old_trees
            .into_iter()
            .filter(|(old, _)| !unsynced.contains(&crate::fsio::parent(old)))
            .filter_map(|(old, dir)| retire(&old, &dir, WHILE_MOVED_IN))
            .collect();
        Commit { trees: outcomes, kept }
    }
}

/// What a [`Batch::commit`] did: each tree's outcome, and what it kept of the old trees.
#[derive(Debug)]
pub struct Commit<T> {
    pub trees: Vec<Committed<T>>,
    /// A sentence for each old tree kept beside its folder: something was put in it while the
    /// batch moved the new trees in.
    pub kept: Vec<String>,
}

/// What a kept old tree holds, when [`Batch::commit`] kept it.
const WHILE_MOVED_IN: &str = "what was put in it while the new tree was moved in";

/// What a kept old tree holds, when [`sweep_staging`] kept it.
const AFTER_STOPPED: &str = "what was put in it after a run moved it out and was stopped before removing it";

/// Removes `old`, the tree `dir` held until a new one was moved in, unless it holds what Stamp
/// did not write (judged again: anything put in it since the folder was judged, through a
/// shell or editor still in it, say). Then it is kept beside `dir`, under a name no sweep
/// takes, and the sentence saying so is returned.
fn retire(old: &Path, dir: &Path, what: &str) -> Option<String> {
    const SHOWN: usize = 5;
    let new = marker_text(dir).and_then(|text| listed_in(&text).ok().flatten()).unwrap_or_default();
    // An old tree always had its marker (a folder without one is refused, an empty one is
    // replaced, not moved out): one gone since took Stamp's list of its files with it, so
    // whatever it holds is judged the user's.
    let foreign = if old.join(MARKER).symlink_metadata().is_ok() {
        foreign_in(old, &new)
    } else {
        let mut names: Vec<String> = fs_err::read_dir(old)
            .map(|entries| {
                entries.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    if foreign.is_empty() {
        let _ = fs_err::remove_dir_all(old);
        return None;
    }
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let name = dir.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let kept = (0..100)
        .map(|n| crate::fsio::parent(dir).join(format!("{name}.kept-{seconds}-{n}")))
        .find(|k| crate::fsio::rename_no_replace(old, k).is_ok());
    let mut shown: Vec<String> =
        foreign.iter().take(SHOWN).map(|f| format!("`{}`", crate::text::one_line(f))).collect();
    if foreign.len() > SHOWN {
        shown.push(format!("and {} more", foreign.len() - SHOWN));
    }
    let shown = shown.join(", ");
    Some(match kept {
        Some(kept) => {
            format!("the tree `{}` replaced was kept as `{}`: it holds {what}: {shown}", dir.display(), kept.display())
        }
        None => format!(
            "the tree `{}` replaced was kept as `{}`: it holds {what}: {shown} (no name beside it was free: the next render judges it again and keeps it while it holds them)",
            dir.display(),
            old.display(),
        ),
    })
}

/// The files of the tree staged at `staging`, from their `stat`s or else read from the folder.
fn files_of(staging: &Path, stats: Option<&Stats>) -> std::collections::BTreeSet<String> {
    match stats {
        Some(stats) => stats.iter().map(|(path, _)| path.clone()).collect(),
        None => Tree::files_on_disk(staging).unwrap_or_default().into_iter().map(|(path, _)| path).collect(),
    }
}

/// Whether `path` is plain names joined with `/`: never absolute, never `.` or `..`, never a
/// `\\` (a separator on Windows).
pub fn is_plain_path(path: &str) -> bool {
    path.split('/').all(|name| !name.is_empty() && name != "." && name != ".." && !name.contains('\\'))
}

fn disk_digest_of<'a>(files: impl Iterator<Item = (&'a str, bool, &'a [u8])>) -> String {
    let mut key = disk_digest_key();
    for (path, executable, content) in files {
        key = disk_digest_field(key, path, executable).field(content);
    }
    key.finish()
}

/// The start of a tree's digest on disk, then each file's path and mode before its content:
/// shared by the digest of a tree in memory and of one read back.
fn disk_digest_key() -> crate::cache::Key {
    crate::cache::Key::new("tree-on-disk")
}

fn disk_digest_field(key: crate::cache::Key, path: &str, executable: bool) -> crate::cache::Key {
    key.field(path).field(if executable { "x" } else { "-" })
}

fn digest_of<'a>(files: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (path, content) in files {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(content);
        hasher.update([0]);
    }
    format!("{:x}", hasher.finalize())
}

/// Writes a new file with its mode (whatever the umask or a default ACL: set again on the open
/// file when it was created with another), synced when `sync` says so (else the caller syncs
/// the file system).
fn write_file(path: &Path, content: &[u8], executable: bool, sync: bool) -> io::Result<Option<Stat>> {
    use std::io::Write as _;
    let mut file = create_new(path, executable)?;
    file.write_all(content)?;
    let mut metadata = file.metadata()?;
    if !has_mode(&metadata, executable) {
        set_mode(&file, executable)?;
        metadata = file.metadata()?;
    }
    if sync {
        file.file().sync_all()?;
    }
    // Its `stat` now is the one it keeps: nothing writes to it after (a sync changes none).
    Ok(Stat::of(&metadata))
}

/// A file that was not there, created with its mode (less the umask).
#[cfg(unix)]
fn create_new(path: &Path, executable: bool) -> io::Result<fs_err::File> {
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    fs_err::OpenOptions::new().write(true).create_new(true).mode(if executable { 0o755 } else { 0o644 }).open(path)
}

#[cfg(not(unix))]
fn create_new(path: &Path, _: bool) -> io::Result<fs_err::File> {
    fs_err::OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(unix)]
fn has_mode(metadata: &std::fs::Metadata, executable: bool) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o7777 == if executable { 0o755 } else { 0o644 }
}

#[cfg(not(unix))]
fn has_mode(_: &std::fs::Metadata, _: bool) -> bool {
    true
}

#[cfg(unix)]
fn set_mode(file: &fs_err::File, executable: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if executable { 0o755 } else { 0o644 };
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &fs_err::File, _: bool) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
pub fn is_executable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
pub fn is_executable(_: &std::fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id of a process that has ended.
    #[cfg(target_os = "linux")]
    fn gone_pid() -> u32 {
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let pid = gone.id();
        gone.wait().unwrap();
        pid
    }

    /// The names in `dir`, sorted.
    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs_err::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    fn tree(files: &[(&str, &str)]) -> Tree {
        Tree {
            files: files
                .iter()
                .map(|(p, c)| ((*p).to_string(), TreeFile { content: c.as_bytes().into(), executable: false }))
                .collect(),
        }
    }

    #[test]
    fn replaces_a_previous_render_and_keeps_terraform_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("build/prod");
        tree(&[("a.tf", "a"), ("sub/b.tf", "b")]).write_atomically(&dir, "prod").unwrap();
        fs_err::create_dir_all(dir.join(".terraform")).unwrap();
        tree(&[("c.tf", "c")]).write_atomically(&dir, "prod").unwrap();
        assert!(!dir.join("a.tf").exists());
        assert_eq!(fs_err::read_to_string(dir.join("c.tf")).unwrap(), "c");
        assert!(dir.join(".terraform").is_dir());
        let leftovers: Vec<_> = fs_err::read_dir(dir.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no staging folders left behind");
    }

    #[test]
    fn a_batch_moves_every_staged_tree_in_at_commit() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        tree(&[("old.tf", "old")]).write_atomically(&out.join("a"), "a").unwrap();
        fs_err::create_dir_all(out.join("a/.terraform")).unwrap();
        fs_err::create_dir_all(out.join("foreign")).unwrap();
        fs_err::write(out.join("foreign/precious.txt"), "x").unwrap();
        let batch = Batch::default();
        tree(&[("new.tf", "new"), ("scripts/run.sh", "#!/bin/sh\n")]).stage(&out.join("a"), "a", &batch, 'a').unwrap();
        tree(&[("b.tf", "b")]).stage(&out.join("b"), "b", &batch, 'b').unwrap();
        // Staged, nothing moved yet: the old tree is whole, the new one not there.
        assert!(out.join("a/old.tf").exists() && !out.join("b").exists());
        assert!(matches!(
            tree(&[("c.tf", "c")]).stage(&out.join("foreign"), "f", &batch, 'f'),
            Err(WriteError::NotOurs(_))
        ));
        let outcomes = batch.commit().trees;
        assert_eq!(
            outcomes.iter().map(|(tag, _, r)| (*tag, r.is_ok())).collect::<Vec<_>>(),
            [('a', true), ('b', true)]
        );
        for (_, dir, result) in &outcomes {
            // The `stat` taken while writing is the one the cache later compares with.
            assert_eq!(result.as_ref().unwrap(), &Tree::stats_on_disk(dir), "{}", dir.display());
        }
        assert_eq!(fs_err::read_to_string(out.join("a/new.tf")).unwrap(), "new");
        assert!(!out.join("a/old.tf").exists());
        assert!(out.join("a/.terraform").is_dir(), "Terraform's folder is carried over");
        assert_eq!(fs_err::read_to_string(out.join("b/.stamp-rendered")).unwrap(), "b\nfiles:\n\"b.tf\"\n");
        assert!(out.join("foreign/precious.txt").exists());
        let left = names_in(&out);
        assert_eq!(left, ["a", "b", "foreign"], "no staging folder or old tree left behind");
    }

    /// What is put in a tree's folder is judged when the new tree is moved in, not when it was
    /// rendered (a `render --all` of thousands of trees takes seconds), and by the files the
    /// marker lists, not by the clock: a file put there just after the marker, or named like a
    /// file of the new tree, is the user's.
    #[test]
    fn what_the_user_puts_in_a_tree_while_or_just_after_it_is_written_is_never_lost() {
        let tmp = tempfile::tempdir().unwrap();
        let commit_one = |dir: &Path, files: &[(&str, &str)], before_commit: &dyn Fn()| {
            let batch = Batch::default();
            tree(files).stage(dir, "head\n", &batch, ()).unwrap();
            before_commit();
            let ((), _, result) = batch.commit().trees.pop().unwrap();
            result
        };
        let nothing = || {};
        for (case, mine, content) in [
            ("put in while the new tree was staged", "mine.tfvars", None),
            ("put in at once, in the clock tick of the marker", "notes/todo.md", None),
            ("named like a file the new tree brings", "new.tf", Some("mine")),
        ] {
            let dir = tmp.path().join(case.replace(' ', "-"));
            commit_one(&dir, &[("old.tf", "old"), ("sub/kept.tf", "k")], &nothing).unwrap();
            let put = || {
                fs_err::create_dir_all(dir.join(mine).parent().unwrap()).unwrap();
                fs_err::write(dir.join(mine), content.unwrap_or("mine")).unwrap();
            };
            let new_tree = [("new.tf", "new"), ("sub/kept.tf", "k")];
            let result = if case.starts_with("put in while") {
                commit_one(&dir, &new_tree, &put)
            } else {
                put();
                commit_one(&dir, &new_tree, &nothing)
            };
            match result {
                Err(WriteError::Foreign(at, foreign)) => {
                    assert_eq!(at, dir, "{case}");
                    assert_eq!(foreign, [mine], "{case}");
                }
                other => panic!("{case}: {other:?}"),
            }
            assert_eq!(fs_err::read_to_string(dir.join(mine)).unwrap(), "mine", "{case}");
            assert_eq!(fs_err::read_to_string(dir.join("old.tf")).unwrap(), "old", "{case}: the old tree stays");
            assert!(names_in(tmp.path()).iter().all(|n| !n.starts_with(STAGING_PREFIX)), "{case}: nothing left beside");
        }
        // Without them, the tree is replaced, the files the old one had and the new one has not
        // gone with it.
        let dir = tmp.path().join("plain");
        commit_one(&dir, &[("old.tf", "old"), ("sub/gone.tf", "g")], &nothing).unwrap();
        commit_one(&dir, &[("new.tf", "new")], &nothing).unwrap();
        assert_eq!(names_in(&dir), [".stamp-rendered", "new.tf"]);
    }

    /// A marker's list reads back as written, whatever the names and whatever its head.
    #[test]
    fn a_marker_lists_every_name_as_it_is() {
        let names = ["main.tf", "a \"quoted\" name.tf", "line\nbreak.tf", "back\\slash.tf", "ünïcode/ф.tf", "files:"];
        for head in [
            "rendered by stamp\naccount: qa\n",
            "rendered by stamp\naccount: qa\nproject: 0123abcd\n",
            "",
            "no newline",
            "files:\nfiles:\n",
        ] {
            let text = with_files(head, names.iter().copied().chain([MARKER]));
            let listed = listed_in(&text).ok().flatten().unwrap_or_else(|| panic!("{head:?}: {text}"));
            assert_eq!(listed, names.iter().map(|n| (*n).to_string()).collect(), "{head:?}");
        }
        assert_eq!(listed_in("rendered by stamp 0.1.0\naccount: qa\n"), Ok(None), "a marker of an older Stamp");
        assert_eq!(listed_in("head\nfiles:\nnot json\n"), Err(()), "a damaged marker");
    }

    /// A marker without its list (emptied, cut before it, or an older Stamp's) tells nothing of
    /// which files Stamp wrote, and, rewritten, is newer than all of them: no file or empty
    /// folder the new tree does not replace is taken for Stamp's.
    #[test]
    fn a_marker_without_its_list_gives_away_no_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("qa");
        tree(&[("main.tf", "a"), ("old.tf", "o")]).write_atomically(&dir, "head\n").unwrap();
        fs_err::write(dir.join("NOTES.md"), "mine").unwrap();
        fs_err::create_dir_all(dir.join("mine")).unwrap();
        let new = std::iter::once("main.tf".to_string()).collect();
        for damaged in ["", "rendered by stamp 0.1.0\naccount: qa\n"] {
            fs_err::write(dir.join(MARKER), damaged).unwrap();
            assert_eq!(foreign_in(&dir, &new), ["NOTES.md", "mine", "old.tf"], "{damaged:?}");
        }
    }

    /// A marker is read whole: one that is a link (to `/dev/zero`, say) or larger than any
    /// tree's list is not read, and the tree it marks is not replaced.
    #[test]
    fn a_hostile_marker_is_never_read_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("qa");
        tree(&[("main.tf", "a")]).write_atomically(&dir, "head\n").unwrap();
        assert!(marker_text(&dir).is_some_and(|text| text.ends_with("\"main.tf\"\n")));
        let new = std::iter::once("main.tf".to_string()).collect();
        assert_eq!(foreign_in(&dir, &new), Vec::<String>::new());
        fs_err::remove_file(dir.join(MARKER)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join(MARKER)).unwrap();
        assert_eq!(marker_text(&dir), None);
        assert_eq!(foreign_in(&dir, &new), [format!("{MARKER} (its list of the files Stamp wrote cannot be read)")]);
        fs_err::remove_file(dir.join(MARKER)).unwrap();
        let huge = fs_err::File::create(dir.join(MARKER)).unwrap();
        huge.set_len(MAX_MARKER + 1).unwrap();
        assert_eq!(marker_text(&dir), None);
        assert_eq!(foreign_in(&dir, &new).len(), 1);
        // A FIFO with no writer: opening or reading it would wait for one.
        fs_err::remove_file(dir.join(MARKER)).unwrap();
        nix::unistd::mkfifo(&dir.join(MARKER), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(marker_text(&dir), None);
        assert_eq!(foreign_in(&dir, &new).len(), 1);
    }

    /// An old tree a batch moved out is judged again before it is removed: what was put in it
    /// meanwhile (through a shell still in the folder) keeps it, under a name no sweep takes.
    #[test]
    fn an_old_tree_holding_what_was_put_in_it_meanwhile_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("qa");
        tree(&[("main.tf", "new")]).write_atomically(&dir, "head\n").unwrap();
        let plain = tmp.path().join(format!("{STAGING_PREFIX}plain"));
        tree(&[("main.tf", "old"), ("gone.tf", "g")]).write_atomically(&plain, "head\n").unwrap();
        assert_eq!(retire(&plain, &dir, WHILE_MOVED_IN), None);
        assert!(!plain.exists(), "an old tree of Stamp's files alone is removed");
        let old = tmp.path().join(format!("{STAGING_PREFIX}old"));
        tree(&[("main.tf", "old")]).write_atomically(&old, "head\n").unwrap();
        fs_err::write(old.join("notes.md"), "mine").unwrap();
        let said = retire(&old, &dir, WHILE_MOVED_IN).unwrap();
        assert!(said.contains("while the new tree was moved in: `notes.md`"), "{said}");
        let kept: Vec<String> = names_in(tmp.path()).into_iter().filter(|n| n.starts_with("qa.kept-")).collect();
        assert_eq!(kept.len(), 1, "{:?}", names_in(tmp.path()));
        assert_eq!(fs_err::read_to_string(tmp.path().join(&kept[0]).join("notes.md")).unwrap(), "mine");
        assert!(sweep_staging(tmp.path()).is_empty());
        assert!(tmp.path().join(&kept[0]).join("notes.md").exists());
        // An old tree whose marker went since (its list of Stamp's files with it) is kept whole.
        let unmarked = tmp.path().join(format!("{STAGING_PREFIX}unmarked"));
        tree(&[("main.tf", "old")]).write_atomically(&unmarked, "head\n").unwrap();
        fs_err::remove_file(unmarked.join(MARKER)).unwrap();
        let said = retire(&unmarked, &dir, WHILE_MOVED_IN).unwrap();
        assert!(said.ends_with("moved in: `main.tf`"), "{said}");
        assert!(!unmarked.exists());
        assert_eq!(names_in(tmp.path()).iter().filter(|n| n.starts_with("qa.kept-")).count(), 2);
        // An empty one has nothing to keep.
        fs_err::create_dir(&unmarked).unwrap();
        assert_eq!(retire(&unmarked, &dir, WHILE_MOVED_IN), None);
        assert!(!unmarked.exists());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn only_staging_folders_of_gone_processes_are_swept() {
        let tmp = tempfile::tempdir().unwrap();
        let gone_pid = gone_pid();
        let own = std::process::id();
        let tag = host_tag().unwrap();
        let kept = [
            // A killed move left a tree's `.terraform` in this one.
            format!("{STAGING_PREFIX}{tag}-{gone_pid}-def"),
            format!("{STAGING_PREFIX}{tag}-{own}-abc"),
            format!("{STAGING_PREFIX}{tag}-1-abc"),
            format!("{STAGING_PREFIX}{tag}-x-abc"),
            // Another machine's or container's.
            format!("{STAGING_PREFIX}0123456789ab-{gone_pid}-abc"),
            format!("{STAGING_PREFIX}{gone_pid}"),
            "account".to_string(),
        ];
        for name in kept.iter().chain([&format!("{STAGING_PREFIX}{tag}-{gone_pid}-abc")]) {
            fs_err::create_dir_all(tmp.path().join(name).join("sub")).unwrap();
        }
        fs_err::create_dir_all(tmp.path().join(&kept[0]).join(".terraform")).unwrap();
        assert!(sweep_staging(tmp.path()).is_empty());
        let left = names_in(tmp.path());
        let mut expected = kept.to_vec();
        expected.sort();
        assert_eq!(left, expected);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn an_old_tree_a_killed_run_left_is_judged_before_it_is_swept() {
        let tmp = tempfile::tempdir().unwrap();
        let gone = gone_pid();
        let left = |name: &str| tmp.path().join(format!("{STAGING_PREFIX}{}-{gone}-{name}", host_tag().unwrap()));
        let head = "rendered by stamp 0.1.0\naccount: qa\n";
        tree(&[("main.tf", "new")]).write_atomically(&tmp.path().join("qa"), head).unwrap();
        // The old tree, moved out: a shell still in it wrote there after the run was killed.
        let old = left("old");
        tree(&[("main.tf", "old"), ("gone.tf", "g")]).write_atomically(&old, head).unwrap();
        fs_err::write(old.join("notes.md"), "mine").unwrap();
        // Its marker names no plain account: kept all the same, beside the trees.
        let odd = left("odd");
        tree(&[("main.tf", "old")]).write_atomically(&odd, "rendered by stamp 0.1.0\naccount: ../../x\n").unwrap();
        fs_err::write(odd.join("plan.out"), "mine").unwrap();
        // A new tree never moved in, and one killed while it was written (no marker yet).
        tree(&[("main.tf", "new")]).write_atomically(&left("staged"), head).unwrap();
        fs_err::create_dir_all(left("half")).unwrap();
        fs_err::write(left("half").join("main.tf"), "ne").unwrap();
        let said = sweep_staging(tmp.path());
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said.iter().any(|s| s.contains(AFTER_STOPPED) && s.ends_with("`notes.md`")), "{said:?}");
        let names = names_in(tmp.path());
        let kept: Vec<&String> = names.iter().filter(|n| n.contains(".kept-")).collect();
        assert_eq!(kept.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| !n.starts_with(STAGING_PREFIX)), "the rest is swept: {names:?}");
        let qa = kept.iter().find(|n| n.starts_with("qa.kept-")).expect("kept beside its account's folder");
        assert_eq!(fs_err::read_to_string(tmp.path().join(qa).join("notes.md")).unwrap(), "mine");
        let other = kept.iter().find(|n| n.starts_with("tree.kept-")).expect("kept under a name of Stamp's");
        assert!(tmp.path().join(other).join("plan.out").exists());
        assert_eq!(fs_err::read_to_string(tmp.path().join("qa").join("main.tf")).unwrap(), "new");
        // What is kept is never taken by a later sweep.
        assert!(sweep_staging(tmp.path()).is_empty());
        assert_eq!(names_in(tmp.path()), names);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_tree_written_in_place_sweeps_what_killed_runs_left_beside_it() {
        let tmp = tempfile::tempdir().unwrap();
        let gone_pid = gone_pid();
        let left_behind = tmp.path().join(format!("{STAGING_PREFIX}{}-{gone_pid}-abc", host_tag().unwrap()));
        fs_err::create_dir_all(left_behind.join("sub")).unwrap();
        tree(&[("main.tf", "a")]).write_atomically(&tmp.path().join("account"), "m").unwrap();
        let left = names_in(tmp.path());
        assert_eq!(left, ["account"]);
    }

    #[test]
    fn a_batch_dropped_before_its_commit_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let batch = Batch::default();
        tree(&[("a.tf", "a")]).stage(&tmp.path().join("a"), "a", &batch, ()).unwrap();
        drop(batch);
        assert_eq!(fs_err::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn refuses_to_replace_a_folder_it_did_not_write() {
        let tmp = tempfile::tempdir().unwrap();
        fs_err::write(tmp.path().join("precious.txt"), "x").unwrap();
        let err = tree(&[("a.tf", "a")]).write_atomically(tmp.path(), "prod").unwrap_err();
        assert!(matches!(err, WriteError::NotOurs(_)));
        assert!(tmp.path().join("precious.txt").exists());
    }
}
