//! The project as it was at a git revision, checked out into a temporary folder, so it can be
//! rendered and compared with the working tree.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::version::BuildVersion;

/// A checked-out revision; the folder is removed on drop.
pub struct Revision {
    /// What the user asked for (`main`, `HEAD~1`, a hash).
    pub rev: String,
    /// The full commit hash.
    pub commit: String,
    /// The project root inside the checkout.
    pub root: PathBuf,
    /// The temporary folder the revision is extracted to (the repository's top).
    top: tempfile::TempDir,
}

/// `git -C dir ARGS`: its output (trimmed), or its error output.
pub(crate) fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

impl Revision {
    /// Extracts the project at `rev` (`git archive`, so the working tree is not touched).
    pub fn checkout(project_root: &Path, rev: &str) -> Result<Self, String> {
        let top = git(project_root, &["rev-parse", "--show-toplevel"])
            .map_err(|_| format!("`{}` is not in a git repository", project_root.display()))?;
        let prefix = git(project_root, &["rev-parse", "--show-prefix"])?;
        let commit = git(project_root, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")])
            .map_err(|_| format!("unknown git revision `{rev}`"))?;
        let dir = tempfile::Builder::new().prefix("stamp-rev-").tempdir().map_err(|e| e.to_string())?;
        let mut archive = Command::new("git")
            .arg("-C")
            .arg(&top)
            .args(["archive", "--format=tar", &commit])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run git archive: {e}"))?;
        let tar = Command::new("tar")
            .arg("-x")
            .arg("-C")
            .arg(dir.path())
            .stdin(archive.stdout.take().expect("piped"))
            .output()
            .map_err(|e| format!("cannot run tar: {e}"))?;
        let archived = archive.wait_with_output().map_err(|e| e.to_string())?;
        if !archived.status.success() || !tar.status.success() {
            return Err(format!(
                "cannot extract revision `{rev}`: {}{}",
                String::from_utf8_lossy(&archived.stderr),
                String::from_utf8_lossy(&tar.stderr)
            ));
        }
        let root = dir.path().join(prefix);
        if !root.join(crate::config::project::PROJECT_FILE).is_file() {
            return Err(format!("revision `{rev}` has no `stamp.yaml` in this project's folder"));
        }
        Ok(Self { rev: rev.to_string(), commit, root, top: dir })
    }

    /// The version a build of this revision carries (see [`build_version`]).
    pub fn build_version(&self, project_root: &Path, version: Option<&str>) -> BuildVersion {
        build_version(project_root, &self.commit, version)
    }
}

/// The version a build of `commit` carries: `version` (or the development version of the
/// commit's time) with the commit's short hash.
pub fn build_version(project_root: &Path, commit: &str, version: Option<&str>) -> BuildVersion {
    let short = commit.chars().take(12).collect::<String>();
    let at_commit = version.map_or_else(
        || {
            let time = git(project_root, &["show", "-s", "--format=%ct", commit]).ok().and_then(|t| t.parse().ok());
            let at = time
                .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
                .unwrap_or_else(|| time::OffsetDateTime::from(crate::ephemeral::run_started()));
            crate::version::development_version(at)
        },
        str::to_string,
    );
    BuildVersion { version: at_commit, commit: short, dirty: false }
}

/// The project at a git revision, without a checkout: `stamp.yaml`, the archetypes and the
/// blueprints of the revision extracted into a temporary folder, and its account files listed,
/// each read from the working tree where git says it holds the revision's content, else
/// extracted too. Git gives all of this from its object store, so the cost follows what
/// changed since the revision, not the number of accounts.
pub struct Snapshot {
    pub commit: String,
    /// The project root inside the temporary folder.
    pub root: PathBuf,
    pub accounts: Vec<crate::config::project::AccountFile>,
    _dir: Option<tempfile::TempDir>,
    _checkout: Option<Revision>,
}

/// One file of a git tree: its mode, blob id and path (relative to the project).
#[derive(Clone)]
struct Listed {
    mode: String,
    oid: String,
    path: PathBuf,
}

impl Snapshot {
    /// The project at `rev`. Where reading git's objects directly could differ from a checkout
    /// (symbolic links, submodules, attributes that convert files, folders outside the
    /// project, names that are not UTF-8), the revision is extracted whole instead.
    pub fn take(project_root: &Path, rev: &str) -> Result<Self, String> {
        Self::take_with(project_root, rev, true)
    }

    /// [`Snapshot::take`] for a caller that reads the account files where they are now: the
    /// revision's own are neither listed nor needed (they may lie outside the repository).
    pub fn without_accounts(project_root: &Path, rev: &str) -> Result<Self, String> {
        Self::take_with(project_root, rev, false)
    }

    fn take_with(project_root: &Path, rev: &str, accounts: bool) -> Result<Self, String> {
        git(project_root, &["rev-parse", "--show-toplevel"])
            .map_err(|_| format!("`{}` is not in a git repository", project_root.display()))?;
        let commit = git(project_root, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")])
            .map_err(|_| format!("unknown git revision `{rev}`"))?;
        match Self::from_objects(project_root, rev, &commit, accounts)? {
            Some(snapshot) => Ok(snapshot),
            None => Self::checked_out(project_root, rev, accounts),
        }
    }

    /// The whole revision extracted (`git archive`), its account files (when `accounts`) read
    /// from there.
    fn checked_out(project_root: &Path, rev: &str, accounts: bool) -> Result<Self, String> {
        let revision = Revision::checkout(project_root, rev)?;
        let settings = crate::config::project::read_settings(&revision.root)
            .map_err(|d| format!("`stamp.yaml` at `{rev}`: {}", d.message))?;
        // A folder that leads out of the repository (by `..` or a link) is not in the revision;
        // read in the temporary folder's place, it would be whatever is there (`/tmp/shared`).
        let top = fs_err::canonicalize(revision.top.path()).map_err(|e| e.to_string())?;
        let folders = [("archetypes", &settings.archetypes), ("blueprints", &settings.blueprints)];
        let listed = [("accounts", &settings.accounts)];
        for (key, dir) in folders.iter().chain(listed.iter().filter(|_| accounts)) {
            // An absolute folder is the one there is today, in every revision.
            if dir.is_absolute() {
                continue;
            }
            let full = revision.root.join(dir);
            if !fs_err::canonicalize(&full).unwrap_or_else(|_| lexically(&full)).starts_with(&top) {
                return Err(format!(
                    "`{key}: {}` in `stamp.yaml` at `{rev}` leads outside the git repository: what it held at that revision cannot be read",
                    dir.display()
                ));
            }
        }
        let files = if accounts {
            crate::config::project::account_files_in(&revision.root.join(&settings.accounts))
                .map_err(|e| format!("the account files at `{rev}`: {}", crate::diagnostics::error_chain(&e)))?
        } else {
            Vec::new()
        };
        Ok(Self {
            commit: revision.commit.clone(),
            root: revision.root.clone(),
            accounts: files,
            _dir: None,
            _checkout: Some(revision),
        })
    }

    /// The revision from git's objects: only `stamp.yaml`, archetypes, blueprints and the
    /// account files that differ from the working tree are extracted. `None`: the repository
    /// holds something this way could read differently from a checkout.
    fn from_objects(project_root: &Path, rev: &str, commit: &str, accounts: bool) -> Result<Option<Self>, String> {
        // Attributes (line endings, filters) make a checkout differ from the stored objects.
        let attributes = git_bytes(project_root, &["ls-files", "-z", "--", ":(top,glob)**/.gitattributes"])?;
        let info = git(project_root, &["rev-parse", "--git-path", "info/attributes"]).unwrap_or_default();
        let converts = ["core.autocrlf", "core.eol"]
            .iter()
            .any(|key| git(project_root, &["config", "--get", key]).is_ok_and(|v| !v.is_empty() && v != "false"));
        if !attributes.is_empty() || project_root.join(&info).is_file() || converts {
            return Ok(None);
        }
        let listing = git_bytes(project_root, &["ls-tree", "-r", "-z", commit, "--", "."])?;
        let mut listed = Vec::new();
        for line in listing.split(|&b| b == 0).filter(|line| !line.is_empty()) {
            let Some((meta, path)) = std::str::from_utf8(line).ok().and_then(|l| l.split_once('\t')) else {
                return Ok(None);
            };
            let mut parts = meta.split(' ');
            let (Some(mode), Some(kind), Some(oid)) = (parts.next(), parts.next(), parts.next()) else {
                return Ok(None);
            };
            if kind != "blob" || !matches!(mode, "100644" | "100755") {
                // A symbolic link or a submodule.
                return Ok(None);
            }
            // A name no checkout writes (`..`, made with plumbing), which extracting it here
            // would write outside the temporary folder: `git archive` and `tar` are left to
            // refuse it.
            if !Path::new(path).components().all(|c| matches!(c, std::path::Component::Normal(_))) {
                return Ok(None);
            }
            listed.push(Listed { mode: mode.to_string(), oid: oid.to_string(), path: PathBuf::from(path) });
        }
        let changed =
            git_bytes(project_root, &["diff", "--name-only", "-z", "--no-renames", "--relative", commit, "--"])?;
        let mut changed: std::collections::BTreeSet<PathBuf> = changed
            .split(|&b| b == 0)
            .filter(|p| !p.is_empty())
            .filter_map(|p| std::str::from_utf8(p).ok().map(PathBuf::from))
            .collect();
        // Files git is told not to look at (`--assume-unchanged`, `--skip-worktree`) may differ
        // without `git diff` saying so: they are read from the revision.
        let flagged = git_bytes(project_root, &["ls-files", "-v", "-z", "--", "."])?;
        for entry in flagged.split(|&b| b == 0).filter(|e| e.len() > 2) {
            let tag = entry[0];
            if tag.is_ascii_lowercase() || tag == b'S' {
                changed.extend(std::str::from_utf8(&entry[2..]).ok().map(PathBuf::from));
            }
        }
        let project_file = Path::new(crate::config::project::PROJECT_FILE);
        let Some(stamp_yaml) = listed.iter().find(|l| l.path == project_file) else {
            return Err(format!("revision `{rev}` has no `stamp.yaml` in this project's folder"));
        };
        let dir = tempfile::Builder::new().prefix("stamp-rev-").tempdir().map_err(|e| e.to_string())?;
        let root = dir.path().to_path_buf();
        extract(project_root, &root, std::slice::from_ref(stamp_yaml))?;
        let settings = crate::config::project::read_settings(&root)
            .map_err(|d| format!("`stamp.yaml` at `{rev}`: {}", d.message))?;
        let normal = |dir: &Path| -> Option<PathBuf> {
            dir.components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .map(|c| match c {
                    std::path::Component::Normal(part) => Some(part),
                    _ => None,
                })
                .collect()
        };
        // A folder outside the project (`../shared`) is not in this listing. Without
        // `accounts`, the revision's account folder is not looked at.
        let accounts_dir = if accounts { Some(normal(&settings.accounts)) } else { None };
        let (Some(archetypes), Some(blueprints)) = (normal(&settings.archetypes), normal(&settings.blueprints)) else {
            return Ok(None);
        };
        if accounts_dir == Some(None) {
            return Ok(None);
        }
        let accounts_dir = accounts_dir.flatten();
        // The whole project when a folder is the project itself.
        let inside = |path: &Path, dir: &Path| path.starts_with(dir);
        let mut wanted = Vec::new();
        let mut files = Vec::new();
        for file in &listed {
            if inside(&file.path, &archetypes) || inside(&file.path, &blueprints) {
                wanted.push(file);
            } else if accounts_dir.as_ref().is_some_and(|dir| inside(&file.path, dir))
                && crate::config::project::is_yaml(&file.path)
            {
                let unchanged = !changed.contains(&file.path) && project_root.join(&file.path).is_file();
                // The working tree's file, when it holds what the revision does.
                let elsewhere = unchanged.then(|| project_root.join(&file.path));
                if !unchanged {
                    wanted.push(file);
                }
                files.push(crate::config::project::AccountFile { path: root.join(&file.path), elsewhere, stat: None });
            }
        }
        extract(project_root, &root, &wanted.into_iter().cloned().collect::<Vec<_>>())?;
        Ok(Some(Self { commit: commit.to_string(), root, accounts: files, _dir: Some(dir), _checkout: None }))
    }
}

/// `path` with its `.` and `..` parts resolved by their names alone (no link followed).
fn lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn git_bytes(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Writes the blobs of `files` (from `git cat-file --batch`) under `root`.
/// The most of one file of a revision written out: the largest file Stamp reads (a blueprint's).
const MAX_BLOB: u64 = crate::render::blueprint::MAX_FILE_BYTES;
/// The most of a revision's files written out together.
const MAX_REVISION: u64 = 4 << 30;

fn extract(project_root: &Path, root: &Path, files: &[Listed]) -> Result<(), String> {
    use std::io::{BufRead, Read, Write};
    if files.is_empty() {
        return Ok(());
    }
    let mut child = Command::new("git")
        .arg("-C")
        .arg(project_root)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git cat-file: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let oids: String = files.iter().flat_map(|f| [f.oid.as_str(), "\n"]).collect();
    let feeder = std::thread::spawn(move || stdin.write_all(oids.as_bytes()));
    let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let failed = |e: &dyn std::fmt::Display| format!("cannot read the revision's files from git: {e}");
    let mut total = 0_u64;
    for file in files {
        let mut header = String::new();
        out.read_line(&mut header).map_err(|e| failed(&e))?;
        let size: u64 = match header.trim_end().split(' ').collect::<Vec<_>>()[..] {
            [oid, "blob", size] if oid == file.oid => size.parse().map_err(|e| failed(&e))?,
            _ => return Err(failed(&format!("unexpected answer `{}`", header.trim_end()))),
        };
        let target = root.join(&file.path);
        if let Some(parent) = target.parent() {
            fs_err::create_dir_all(parent).map_err(|e| failed(&e))?;
        }
        // Streamed into its file: a blob of any size (a commit can hold gigabytes that pack to
        // almost nothing) takes no memory, and no more disk than one byte past the largest file
        // Stamp reads (the loader then refuses it as too large); the rest is read and dropped.
        let kept = size.min(MAX_BLOB + 1);
        total += kept;
        if total > MAX_REVISION {
            return Err(failed(&format!("its files are more than {} GiB together", MAX_REVISION >> 30)));
        }
        let mut written = fs_err::File::create(&target).map_err(|e| failed(&e))?;
        let copied = std::io::copy(&mut (&mut out).take(kept), &mut written).map_err(|e| failed(&e))?;
        let dropped = std::io::copy(&mut (&mut out).take(size - kept), &mut std::io::sink()).map_err(|e| failed(&e))?;
        let mut newline = [0; 1];
        if copied + dropped != size || out.read_exact(&mut newline).is_err() || newline != *b"\n" {
            return Err(failed(&"the answer ended early"));
        }
        #[cfg(unix)]
        if file.mode == "100755" {
            use std::os::unix::fs::PermissionsExt;
            fs_err::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).map_err(|e| failed(&e))?;
        }
    }
    drop(out);
    let _ = feeder.join();
    let _ = child.wait();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Listed, MAX_BLOB, extract};

    /// A blob larger than any file Stamp reads (a commit can pack gigabytes into a few bytes)
    /// is written out one byte past the limit, so the loader refuses it, never whole.
    #[test]
    fn a_blob_is_written_out_no_further_than_stamp_reads() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        fs_err::create_dir_all(&repo).unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        git(&["init", "-q"]);
        fs_err::File::create(repo.join("big.bin")).unwrap().set_len(MAX_BLOB + (8 << 20)).unwrap();
        git(&["add", "big.bin"]);
        git(&["commit", "-qm", "big"]);
        let oid = git(&["rev-parse", "HEAD:big.bin"]);
        let out = dir.path().join("out");
        let listed = Listed { mode: "100644".into(), oid, path: "big.bin".into() };
        extract(&repo, &out, &[listed]).unwrap();
        assert_eq!(fs_err::metadata(out.join("big.bin")).unwrap().len(), MAX_BLOB + 1);
    }
}
