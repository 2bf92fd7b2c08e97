//! The environment version: a release version (or the development version `0.0.YYDDD.SSSSS`)
//! plus the source commit, stamped into every rendered root.

use std::path::Path;
use std::process::Command;

use time::OffsetDateTime;

/// The project's release version file (one line, e.g. `1.4.0`), used when no `--version` is
/// given.
pub const VERSION_FILE: &str = "VERSION";

/// A version is used in file names and git tags: letters, digits and `.`, `-`, `+`, `_`,
/// starting with a letter or digit.
pub fn validate(version: &str) -> Result<(), String> {
    let ok = version.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && version.len() <= 64
        && version.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
        && !version.contains("..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid version `{version}`: use letters, digits, `.`, `-`, `+` and `_` (e.g. `1.4.0`), as it names files and git tags"
        ))
    }
}

/// What a rendered tree was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildVersion {
    pub version: String,
    /// Short commit hash, or `none` outside a git checkout.
    pub commit: String,
    pub dirty: bool,
}

impl BuildVersion {
    /// `<version>+<commit>`, with `-dirty` when the tree had uncommitted changes.
    pub fn environment_version(&self) -> String {
        format!("{}+{}{}", self.version, self.commit, if self.dirty { "-dirty" } else { "" })
    }

    /// Resolves the version: `explicit` (from `--version` or `STAMP_VERSION`), else the
    /// project's `VERSION` file, otherwise the development version of a moment that is the same for every render of the same source:
    /// `SOURCE_DATE_EPOCH` if set, else the time of the git commit, else the time this run
    /// started (outside git: one run, one version, however long it takes).
    /// The commit (and whether the tree is dirty) comes from git.
    pub fn resolve(explicit: Option<&str>, project_root: &Path) -> Self {
        let git = git_state(project_root);
        let version = release(explicit, project_root).unwrap_or_else(|| {
            let epoch = std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .or_else(|| git.as_ref().map(|g| g.time));
            let at = epoch
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                .unwrap_or_else(|| OffsetDateTime::from(crate::ephemeral::run_started()));
            development_version(at)
        });
        match git {
            Some(git) => Self { version, commit: git.commit, dirty: git.dirty },
            None => Self { version, commit: "none".to_string(), dirty: false },
        }
    }

    /// The version stamped in by a run for which it cannot matter (a check whose templates do
    /// not read it): the release version given or in the `VERSION` file, so a malformed one
    /// is still reported, else a fixed one; git is not asked.
    pub fn unread(explicit: Option<&str>, project_root: &Path) -> Self {
        let version = release(explicit, project_root).unwrap_or_else(|| Self::placeholder().version);
        Self { version, ..Self::placeholder() }
    }

    /// A fixed, well-formed version, for trees whose version nothing reads (a check's) or that
    /// are only compared (both sides of `affected`).
    pub fn placeholder() -> Self {
        Self { version: "0.0.0".to_string(), commit: "none".to_string(), dirty: false }
    }
}

/// The release version: `explicit`, else the project's `VERSION` file when it has one.
fn release(explicit: Option<&str>, project_root: &Path) -> Option<String> {
    if let Some(explicit) = explicit {
        return Some(explicit.to_string());
    }
    let path = project_root.join(VERSION_FILE);
    path.symlink_metadata().ok()?;
    // A plain file, read no further than a version could be: a link in its place (to
    // `/proc/self/environ`, say) would have its text shown as the invalid version.
    let Some(from_file) = crate::fsio::plain_text(&path, 256) else {
        return Some(format!("(the {VERSION_FILE} file is not a plain text file of at most 256 bytes)"));
    };
    Some(from_file.trim().to_string()).filter(|v| !v.is_empty())
}

/// `0.0.YYDDD.SSSSS`: two-digit year, day of the year and second of the day (UTC), so an
/// unversioned build is obvious and still ordered in time.
pub fn development_version(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let seconds = u32::from(at.hour()) * 3600 + u32::from(at.minute()) * 60 + u32::from(at.second());
    format!("0.0.{:02}{:03}.{seconds:05}", at.year().rem_euclid(100), at.ordinal())
}

/// The git state of a project asked for ahead (see [`prefetch`]), with the folder asked
/// about.
type Prefetch = (std::path::PathBuf, std::thread::JoinHandle<Option<GitState>>);

static PREFETCH: std::sync::Mutex<Option<Prefetch>> = std::sync::Mutex::new(None);

/// Asks git about the project at `root` on a thread of its own, for the next
/// [`BuildVersion::resolve`] of that project to take: git's walk over the work tree runs while
/// the project is read rather than after it. Only the first `resolve` takes it (a later one
/// asks git again, as the tree may have changed meanwhile).
pub fn prefetch(root: &Path) {
    let Ok(root) = fs_err::canonicalize(root) else { return };
    let asked = root.clone();
    let thread = std::thread::Builder::new().name("stamp-git".into()).spawn(move || git_commit(&asked));
    if let Ok(thread) = thread {
        *PREFETCH.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((root, thread));
    }
}

/// The git state of the project at `root` (`None`: outside git): the prefetched one when it
/// was asked for, else git is asked now.
fn git_state(root: &Path) -> Option<GitState> {
    let prefetched = {
        let mut prefetch = PREFETCH.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let same = prefetch
            .as_ref()
            .is_some_and(|(asked, _)| fs_err::canonicalize(root).ok().as_deref() == Some(asked.as_path()));
        if same { prefetch.take() } else { None }
    };
    match prefetched.map(|(_, thread)| thread.join()) {
        Some(Ok(state)) => state,
        // None asked for, or its thread failed.
        _ => git_commit(root),
    }
}

struct GitState {
    commit: String,
    /// Committer time, seconds since the epoch.
    time: i64,
    dirty: bool,
}

fn git_commit(root: &Path) -> Option<GitState> {
    // Both questions are asked at once: each `git` takes a few milliseconds to start.
    let start = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            // A `status` that outlives a run (one whose answer was asked for ahead and never
            // taken) never holds the index's lock against the user's next git command (the
            // variable, not `--no-optional-locks`, which git before 2.15 refuses).
            .env("GIT_OPTIONAL_LOCKS", "0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()
    };
    let finish = |child: Option<std::process::Child>| {
        child?
            .wait_with_output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = start(&["log", "-1", "--format=%h %ct", "--abbrev=12", "HEAD"]);
    let status = start(&["status", "--porcelain", "--untracked-files=no", "--", "."]);
    let (head, status) = (finish(head), finish(status));
    let head = head?;
    let (commit, time) = head.split_once(' ')?;
    // A tree git could not tell clean is taken for dirty.
    let dirty = status.is_none_or(|s| !s.is_empty());
    Some(GitState { commit: commit.to_string(), time: time.parse().ok()?, dirty })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_version_format() {
        let at = OffsetDateTime::from_unix_timestamp(1_795_219_200 + 3_661).unwrap(); // 2026-11-21 01:01:01
        assert_eq!(development_version(at), "0.0.26325.03661");
    }

    #[test]
    fn versions_name_files_safely() {
        assert!(validate("1.4.0").is_ok());
        assert!(validate("0.0.26325.03661").is_ok());
        assert!(validate("2.0.0-rc.1+build_7").is_ok());
        for bad in ["1/../../x", "../1", "", "1 0", "-1", "1..2"] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_run_has_one_version_outside_git() {
        let outside = tempfile::tempdir().unwrap();
        if std::env::var_os("SOURCE_DATE_EPOCH").is_some() || git_commit(outside.path()).is_some() {
            return; // the version does not come from the clock here
        }
        let first = BuildVersion::resolve(None, outside.path());
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(BuildVersion::resolve(None, outside.path()), first, "a second later, the same run");
    }

    /// A git repository with one commit of one file; its short commit.
    fn repository(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid", "-c", "commit.gpgsign=false"])
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        git(&["init", "-q"]);
        fs_err::write(dir.path().join("f"), text).unwrap();
        git(&["add", "f"]);
        git(&["commit", "-qm", "m"]);
        let commit = git(&["log", "-1", "--format=%h", "--abbrev=12"]);
        (dir, commit)
    }

    #[test]
    fn a_prefetched_answer_serves_only_its_own_project_and_only_once() {
        let (a, a_commit) = repository("a");
        let (b, b_commit) = repository("b");
        prefetch(a.path());
        assert_eq!(BuildVersion::resolve(Some("1.0.0"), b.path()).commit, b_commit, "another project asks git");
        // Once git has answered, `a` stops being a repository: only the answer asked for ahead
        // still knows its commit.
        let answered = || PREFETCH.lock().unwrap().as_ref().is_none_or(|(_, thread)| thread.is_finished());
        while !answered() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        fs_err::rename(a.path().join(".git"), a.path().join("git-away")).unwrap();
        let first = BuildVersion::resolve(Some("1.0.0"), a.path());
        assert_eq!((first.commit.as_str(), first.dirty), (a_commit.as_str(), false), "the answer asked ahead");
        assert_eq!(BuildVersion::resolve(Some("1.0.0"), a.path()).commit, "none", "taken once: git is asked again");
    }

    #[test]
    fn environment_version_marks_dirty() {
        let v = BuildVersion { version: "1.2.0".into(), commit: "abc".into(), dirty: true };
        assert_eq!(v.environment_version(), "1.2.0+abc-dirty");
    }
}
