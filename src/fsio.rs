//! The one way Stamp writes files it must not lose: atomically (readers see the old content or
//! the new, never a mix) and durably (synced, and the folder synced after a rename, so a crash
//! or power loss right after the write cannot undo it).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Who may read a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `0644`: anyone on the machine (artifacts, reports, account files).
    Shared,
    /// `0600`: only the owner (files that hold secrets Terraform needs, such as saved plans).
    Private,
    /// `0755`: anyone may read and run it (a blueprint's scripts).
    Executable,
}

impl Mode {
    #[cfg(unix)]
    fn bits(self) -> u32 {
        match self {
            Self::Shared => 0o644,
            Self::Private => 0o600,
            Self::Executable => 0o755,
        }
    }
}

/// Writes `bytes` to `path` atomically and durably, readable by anyone (`0644`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, Mode::Shared)
}

/// Writes `bytes` into a temporary file beside `path`, syncs it, renames it over `path` and
/// syncs the folder.
pub fn write_atomic_with(path: &Path, bytes: &[u8], mode: Mode) -> io::Result<()> {
    write(path, bytes, mode, Replace::Yes)
}

/// Like [`write_atomic_with`], but never replaces a file: when `path` exists (even when it
/// appeared a moment ago), nothing is written and the error is [`io::ErrorKind::AlreadyExists`].
pub fn create_atomic(path: &Path, bytes: &[u8], mode: Mode) -> io::Result<()> {
    write(path, bytes, mode, Replace::No)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Replace {
    Yes,
    No,
}

fn write(path: &Path, bytes: &[u8], mode: Mode, replace: Replace) -> io::Result<()> {
    let dir = parent(path);
    fs_err::create_dir_all(&dir)?;
    // `tempfile`'s errors do not always name the file; these do.
    let context = |e: io::Error| io::Error::new(e.kind(), format!("failed to write `{}`: {e}", path.display()));
    let mut builder = tempfile::Builder::new();
    builder.prefix(".stamp-write-");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(mode.bits()));
    #[cfg(not(unix))]
    let _ = mode;
    let mut temp = builder.tempfile_in(&dir).map_err(context)?;
    temp.write_all(bytes).map_err(context)?;
    temp.as_file().sync_all().map_err(context)?;
    match replace {
        Replace::Yes => temp.persist(path).map_err(|e| context(e.error))?,
        Replace::No => temp.persist_noclobber(path).map_err(|e| context(e.error))?,
    };
    sync_dir(&dir)
}

/// Makes `path` a folder only its owner may enter (`0700`), made if missing (its parents as
/// well). A symbolic link in its place is refused: its mode would be set on what it leads
/// to, and what is written into it would go there. The mode is set on the folder opened.
#[cfg(unix)]
pub fn private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    let parent = parent(path);
    fs_err::create_dir_all(&parent).map_err(|e| {
        io::Error::new(e.kind(), format!("cannot create `{}`: {}", parent.display(), crate::diagnostics::io_reason(&e)))
    })?;
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(io::Error::new(e.kind(), format!("cannot create `{}`: {e}", path.display())));
        }
        _ => {}
    }
    let flags = (nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_NOFOLLOW).bits();
    let dir = std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path).map_err(|e| {
        let is_link = fs_err::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        let what = if is_link {
            "is a symbolic link, not a folder".to_string()
        } else {
            format!("cannot be opened as a folder: {e}")
        };
        io::Error::new(e.kind(), format!("`{}` {what}", path.display()))
    })?;
    dir.set_permissions(std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io::Error::new(e.kind(), format!("cannot make `{}` private: {e}", path.display())))
}

/// Opens the plain file at `path` to read it, with its metadata as opened. Anything else is an
/// error: a symbolic link (its last step is not followed), a FIFO or a device (whose reading
/// could block, or never end). Read it bounded (`Read::take`): a plain file may still be huge.
#[cfg(unix)]
pub fn open_plain(path: &Path) -> io::Result<(fs_err::File, std::fs::Metadata)> {
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    // Non-blocking, so that opening a FIFO does not wait for a writer.
    let flags = (nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits();
    let file = fs_err::OpenOptions::new().read(true).custom_flags(flags).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other(format!("`{}` is not a plain file", path.display())));
    }
    Ok((file, meta))
}

/// The bytes of the plain file at `path` ([`open_plain`]: never a FIFO, whose reading could
/// wait for ever, nor a link), read no further than `max` bytes, whatever size it claims: a
/// larger file is [`io::ErrorKind::FileTooLarge`], a missing one [`io::ErrorKind::NotFound`].
#[cfg(unix)]
pub fn read_plain(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    use std::io::Read as _;
    let (file, metadata) = open_plain(path)?;
    let too_large = || {
        let limit = if max >= 1 << 20 { format!("{} MiB", max >> 20) } else { format!("{max} bytes") };
        io::Error::new(io::ErrorKind::FileTooLarge, format!("`{}` is larger than {limit}", path.display()))
    };
    if metadata.len() > max {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Opens (made if missing) the lock file at `path` to lock it: see [`open_plain_with`].
#[cfg(unix)]
pub fn open_lock(path: &Path) -> io::Result<fs_err::File> {
    open_plain_with(fs_err::OpenOptions::new().create(true).truncate(false).write(true), path)
}

/// Opens `path` as `options` say, only as a plain file: never a FIFO (whose opening, or
/// reading, could wait for ever), a device, or through a link in its place.
#[cfg(unix)]
pub fn open_plain_with(options: &mut fs_err::OpenOptions, path: &Path) -> io::Result<fs_err::File> {
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    let flags = (nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits();
    let file = options.custom_flags(flags).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(format!("`{}` is not a plain file", path.display())));
    }
    Ok(file)
}

/// The text of the plain file at `path` ([`open_plain`]), if it holds at most `max` bytes of
/// UTF-8; `None` otherwise, or when it cannot be read.
#[cfg(unix)]
pub fn plain_text(path: &Path, max: u64) -> Option<String> {
    String::from_utf8(read_plain(path, max).ok()?).ok()
}

/// Appends `bytes` to `path` in one write and syncs the file (and, when the append created it,
/// its folder). Appends of one line each never interleave on a local file system.
pub fn append_durable(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent(path);
    fs_err::create_dir_all(&dir)?;
    let existed = path.exists();
    let mut file = open_plain_with(fs_err::OpenOptions::new().create(true).append(true), path)?;
    file.write_all(bytes)?;
    file.file().sync_all()?;
    if !existed {
        sync_dir(&dir)?;
    }
    Ok(())
}

/// Makes `staging` (a complete folder, next to `dir` on the same file system) the folder at
/// `dir` in one step: the two are exchanged where the system can (Linux), so at every moment
/// `dir` is the old folder or the new one; the old one is then removed.
pub fn replace_dir(staging: &Path, dir: &Path) -> io::Result<()> {
    let old = swap_in(staging, dir)?;
    sync_dir(&parent(dir))?;
    match old {
        Some(old) => fs_err::remove_dir_all(old),
        None => Ok(()),
    }
}

/// Moves `staging` to `dir` in one step, as [`replace_dir`] does, without syncing: the folder
/// then holding the old `dir` (the `staging` path), if there was one, is returned, to be removed
/// once the caller has synced `dir`'s folder. An empty `dir` is replaced by the rename itself
/// (the kernel checks that it is empty as it replaces it): an old folder is returned only when
/// it held something, so what is put in it afterwards can be told from what it held (see
/// `render::tree::retire`).
pub fn swap_in(staging: &Path, dir: &Path) -> io::Result<Option<PathBuf>> {
    match fs_err::rename(staging, dir) {
        Ok(()) => Ok(None),
        Err(e) if matches!(e.kind(), io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists) => {
            exchange(staging, dir)?;
            Ok(Some(staging.to_path_buf()))
        }
        Err(e) => Err(e),
    }
}

/// Makes every write to the file system holding `path` durable, all at once (`syncfs`).
#[cfg(target_os = "linux")]
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    let folder = fs_err::File::open(path)?;
    nix::unistd::syncfs(folder.file()).map_err(|errno| {
        io::Error::new(io::Error::from(errno).kind(), format!("cannot sync `{}`: {errno}", path.display()))
    })
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE).map_err(|errno| {
        io::Error::new(
            io::Error::from(errno).kind(),
            format!("cannot exchange `{}` with `{}`: {errno}", a.display(), b.display()),
        )
    })
}

/// Without an exchange call: the old folder moves aside (into a folder of its own), the new one
/// in, and the old one to where the new one was. A crash in between leaves the old folder aside,
/// never a half-written one.
#[cfg(not(target_os = "linux"))]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let aside = tempfile::Builder::new().prefix(".stamp-old-").tempdir_in(parent(b))?;
    let old = aside.path().join("tree");
    fs_err::rename(b, &old)?;
    fs_err::rename(a, b)?;
    fs_err::rename(&old, a)
}

/// Moves `file` into the folder `into` (which must be there: the caller makes it, with the
/// mode it needs) in one step, under its own name or, when that is taken, `<stem>-<n>.<ext>`:
/// never over anything there. Both folders are synced. Returns where it now lies.
pub fn move_into(file: &Path, into: &Path) -> io::Result<PathBuf> {
    let name =
        Path::new(file.file_name().ok_or_else(|| io::Error::other(format!("`{}` names no file", file.display())))?);
    for n in 0..1000 {
        // `ana.try.yaml`, then `ana.try-1.yaml`: the number goes before the last extension.
        let mut numbered = name.file_stem().unwrap_or_default().to_os_string();
        if n > 0 {
            numbered.push(format!("-{n}"));
        }
        if let Some(ext) = name.extension() {
            numbered.push(".");
            numbered.push(ext);
        }
        let to = into.join(numbered);
        match rename_no_replace(file, &to) {
            Ok(()) => {
                sync_dir(&parent(file))?;
                sync_dir(into)?;
                return Ok(to);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!("`{}` holds too many files named like `{}`", into.display(), name.display())))
}

/// A rename that never replaces `to` (`AlreadyExists` when something is there); where the file
/// system does not offer one (NFS, some FUSE mounts: `EINVAL`), a hard link (which never
/// replaces either, and moves no folder), then the old name removed.
#[cfg(target_os = "linux")]
pub fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => link_then_unlink(from, to),
        Err(errno) => Err(io::Error::new(
            io::Error::from(errno).kind(),
            format!("cannot move `{}` to `{}`: {errno}", from.display(), to.display()),
        )),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    link_then_unlink(from, to)
}

fn link_then_unlink(from: &Path, to: &Path) -> io::Result<()> {
    fs_err::hard_link(from, to)?;
    fs_err::remove_file(from)
}

/// Syncs a folder, so the renames and creations in it survive a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs_err::File::open(dir)?.file().sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// `path` as it resolves on disk, component by component: each link followed and each `..`
/// taken from where the path has led so far, as the kernel does; a part that does not exist
/// yet (so holds no link) is taken as written.
pub fn resolved(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut resolved = PathBuf::new();
    let cwd;
    let path = if path.is_relative() {
        cwd = std::env::current_dir().unwrap_or_default().join(path);
        &cwd
    } else {
        path
    };
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Prefix(_) | Component::RootDir | Component::Normal(_) => {
                resolved.push(component);
                if let Ok(found) = fs_err::canonicalize(&resolved) {
                    resolved = found;
                }
            }
        }
    }
    resolved
}

/// The folder of `path` (`.` for a bare file name).
pub fn parent(path: &Path) -> PathBuf {
    path.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_moved_into_a_folder_never_replaces_one_there() {
        let dir = tempfile::tempdir().unwrap();
        let into = dir.path().join("kept");
        private_dir(&into).unwrap();
        for name in ["play.yaml", "ana.try.yaml", "no-extension"] {
            for (n, content) in ["first", "second", "third"].iter().enumerate() {
                let file = dir.path().join(name);
                fs_err::write(&file, content).unwrap();
                let moved = move_into(&file, &into).unwrap();
                let expected = match (n, name.rsplit_once('.')) {
                    (0, _) => name.to_string(),
                    (n, Some((stem, ext))) => format!("{stem}-{n}.{ext}"),
                    (n, None) => format!("{name}-{n}"),
                };
                assert_eq!(moved, into.join(expected));
                assert!(!file.exists());
            }
        }
        let mut names: Vec<String> =
            fs_err::read_dir(&into).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        let expected = [
            "ana.try-1.yaml",
            "ana.try-2.yaml",
            "ana.try.yaml",
            "no-extension",
            "no-extension-1",
            "no-extension-2",
            "play-1.yaml",
            "play-2.yaml",
            "play.yaml",
        ];
        assert_eq!(names, expected);
        assert_eq!(fs_err::read_to_string(into.join("play.yaml")).unwrap(), "first");
    }

    /// A folder made private is the folder named: made with its parents, an existing one's mode
    /// narrowed, and a link in its place refused with what it leads to left as it was.
    #[test]
    fn a_private_folder_is_never_reached_through_a_link() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mode = |path: &Path| fs_err::metadata(path).unwrap().permissions().mode() & 0o7777;
        let made = dir.path().join("data/made");
        private_dir(&made).unwrap();
        assert_eq!(mode(&made), 0o700);
        let open = dir.path().join("data/open");
        fs_err::create_dir_all(&open).unwrap();
        fs_err::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&open).unwrap();
        assert_eq!(mode(&open), 0o700);
        let elsewhere = dir.path().join("elsewhere");
        fs_err::create_dir_all(&elsewhere).unwrap();
        fs_err::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = dir.path().join("data/link");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let refused = private_dir(&link).unwrap_err();
        assert!(refused.to_string().contains("is a symbolic link, not a folder"), "{refused}");
        assert_eq!(mode(&elsewhere), 0o755);
        let file = dir.path().join("data/file");
        fs_err::write(&file, "x").unwrap();
        assert!(private_dir(&file).is_err());
    }

    #[test]
    fn paths_resolve_as_the_kernel_follows_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs_err::canonicalize(dir.path()).unwrap();
        fs_err::create_dir_all(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink(root.join("a/b"), root.join("link")).unwrap();
        // `..` after a link is the parent of where the link leads.
        assert_eq!(resolved(&root.join("link/..")), root.join("a"));
        assert_eq!(resolved(&root.join("link/new/../c")), root.join("a/b/c"));
        assert_eq!(resolved(&root.join("./x/./y/..")), root.join("x"));
        assert!(resolved(&root.join("link/z")).starts_with(root.join("a")));
        assert!(!resolved(&root.join("ab")).starts_with(root.join("a")), "a name that only begins like it");
        assert!(!resolved(&root.join("a/../..")).starts_with(&root));
    }

    #[test]
    fn writes_replace_whole_files_with_the_mode_asked_for() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("sub/file.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic_with(&path, b"two", Mode::Private).unwrap();
        assert_eq!(fs_err::read(&path).unwrap(), b"two");
        assert_eq!(fs_err::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs_err::read_dir(tmp.path().join("sub")).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn an_empty_folder_is_replaced_and_one_that_holds_something_is_handed_back() {
        let tmp = tempfile::tempdir().unwrap();
        let (staging, dir) = (tmp.path().join("staging"), tmp.path().join("dir"));
        fs_err::create_dir(&staging).unwrap();
        fs_err::write(staging.join("a"), "new").unwrap();
        fs_err::create_dir(&dir).unwrap();
        assert_eq!(swap_in(&staging, &dir).unwrap(), None, "an empty folder has nothing to judge");
        assert!(!staging.exists());
        fs_err::create_dir(&staging).unwrap();
        fs_err::write(staging.join("a"), "newer").unwrap();
        assert_eq!(swap_in(&staging, &dir).unwrap(), Some(staging.clone()));
        assert_eq!(fs_err::read_to_string(staging.join("a")).unwrap(), "new");
        assert_eq!(fs_err::read_to_string(dir.join("a")).unwrap(), "newer");
    }

    #[test]
    fn a_created_file_never_replaces_one() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("run.sh");
        create_atomic(&path, b"one", Mode::Executable).unwrap();
        let error = create_atomic(&path, b"two", Mode::Shared).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists, "{error}");
        assert_eq!(fs_err::read(&path).unwrap(), b"one");
        assert_eq!(fs_err::metadata(&path).unwrap().permissions().mode() & 0o777, 0o755);
        assert_eq!(fs_err::read_dir(tmp.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn folders_are_exchanged_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, staging) = (tmp.path().join("tree"), tmp.path().join(".staging"));
        for (content, name) in [("old", "a.tf"), ("new", "b.tf")] {
            fs_err::create_dir_all(&staging).unwrap();
            fs_err::write(staging.join(name), content).unwrap();
            replace_dir(&staging, &dir).unwrap();
        }
        assert!(!dir.join("a.tf").exists());
        assert_eq!(fs_err::read_to_string(dir.join("b.tf")).unwrap(), "new");
        assert!(!staging.exists());
    }
}
