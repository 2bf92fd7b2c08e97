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
    _dir: tempfile::TempDir,
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
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
        Ok(Self { rev: rev.to_string(), commit, root, _dir: dir })
    }

    /// The version a build of this revision carries: `version` (or the development version of
    /// the commit's time) with the revision's short commit.
    pub fn build_version(&self, project_root: &Path, version: Option<&str>) -> BuildVersion {
        let short = self.commit.chars().take(12).collect::<String>();
        let at_commit = version.map_or_else(
            || {
                let time =
                    git(project_root, &["show", "-s", "--format=%ct", &self.commit]).ok().and_then(|t| t.parse().ok());
                let at = time
                    .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
                    .unwrap_or_else(time::OffsetDateTime::now_utc);
                crate::version::development_version(at)
            },
            str::to_string,
        );
        BuildVersion { version: at_commit, commit: short, dirty: false }
    }
}
