//! A rendered root module in memory, and writing it to disk atomically.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

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
            let relative = entry.path().strip_prefix(dir).ok()?.to_str()?.replace('\\', "/");
            files.push((relative, entry.into_path()));
        }
        files.sort();
        files.iter().any(|(relative, _)| relative == MARKER).then_some(files)
    }

    /// The `stat` of every file of the tree Stamp wrote to `dir` (see [`Tree::digest_on_disk`]).
    pub fn stats_on_disk(dir: &Path) -> Option<Vec<(String, crate::config::catalog::Stat)>> {
        // The same files as `files_on_disk`, each `stat` taken relative to its open folder
        // (`DirEntry::metadata`), not by walking its whole path again: for thousands of trees
        // that is most of the time.
        fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, crate::config::catalog::Stat)>) -> Option<()> {
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
                    out.push((relative, entry.metadata().ok().as_ref().and_then(crate::config::catalog::Stat::of)?));
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
    /// is there (a symbolic link, another marker).
    pub fn digest_on_disk(dir: &Path, marker_text: &str) -> Option<(String, usize)> {
        let mut files = BTreeMap::new();
        for (relative, path) in Self::files_on_disk(dir)? {
            let content = fs_err::read(&path).ok()?;
            if relative == MARKER {
                if content != marker_text.as_bytes() {
                    return None;
                }
            } else {
                let executable = fs_err::metadata(&path).ok().is_some_and(|m| is_executable(&m));
                files.insert(relative, (executable, content));
            }
        }
        let count = files.len();
        let digest = disk_digest_of(files.iter().map(|(path, (x, content))| (path.as_str(), *x, content.as_slice())));
        Some((digest, count))
    }

    /// Writes the tree to `dir`: first into a temporary folder next to it (every file synced),
    /// then exchanged with the old folder in one step, so `dir` is always either the old tree
    /// or the new one, never half of either. A `.terraform` folder from an earlier `init` is
    /// carried over.
    pub fn write_atomically(&self, dir: &Path, marker_text: &str) -> Result<(), WriteError> {
        if dir.exists() && !dir.join(MARKER).is_file() && fs_err::read_dir(dir)?.next().is_some() {
            return Err(WriteError::NotOurs(dir.to_path_buf()));
        }
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs_err::create_dir_all(parent)?;
        let staging = tempfile::Builder::new().prefix(".stamp-new-").tempdir_in(parent)?;
        for (path, file) in &self.files {
            let target = staging.path().join(path);
            if let Some(folder) = target.parent() {
                fs_err::create_dir_all(folder)?;
            }
            write_synced(&target, &file.content)?;
            set_mode(&target, file.executable)?;
        }
        write_synced(&staging.path().join(MARKER), marker_text.as_bytes())?;
        let old_terraform = dir.join(".terraform");
        if old_terraform.is_dir() {
            fs_err::rename(&old_terraform, staging.path().join(".terraform"))?;
        }
        crate::fsio::replace_dir(&staging.keep(), dir)?;
        Ok(())
    }
}

fn disk_digest_of<'a>(files: impl Iterator<Item = (&'a str, bool, &'a [u8])>) -> String {
    let mut key = crate::cache::Key::new("tree-on-disk");
    for (path, executable, content) in files {
        key = key.field(path).field(if executable { "x" } else { "-" }).field(content);
    }
    key.finish()
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

/// Writes a new file and syncs it, so the folder it is in can be swapped in durably.
fn write_synced(path: &Path, content: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let mut file = fs_err::File::create(path)?;
    file.write_all(content)?;
    file.file().sync_all()
}

#[cfg(unix)]
fn set_mode(path: &Path, executable: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if executable { 0o755 } else { 0o644 };
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: bool) -> io::Result<()> {
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
    fn refuses_to_replace_a_folder_it_did_not_write() {
        let tmp = tempfile::tempdir().unwrap();
        fs_err::write(tmp.path().join("precious.txt"), "x").unwrap();
        let err = tree(&[("a.tf", "a")]).write_atomically(tmp.path(), "prod").unwrap_err();
        assert!(matches!(err, WriteError::NotOurs(_)));
        assert!(tmp.path().join("precious.txt").exists());
    }
}
