//! `stamp init`: a new project in a folder, from one of the example archetypes built into Stamp
//! (`stamp.yaml`, the archetype, its blueprint, one account and a `.gitignore`). It never
//! overwrites a file: when any file it would write exists, it writes nothing.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use crate::diagnostics::{Diagnostic, Report, Sources};
use crate::fsio::{self, Mode};
use crate::starter::Example;

/// What `stamp init` is asked to do.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The project folder, as the user gave it (created when missing).
    pub dir: PathBuf,
    pub example: Example,
}

/// What `stamp init` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InitReport {
    /// The project folder, as the user gave it.
    pub dir: PathBuf,
    pub archetype: &'static str,
    pub account: &'static str,
    /// The files written, relative to `dir`, in the order written.
    pub files: Vec<String>,
    /// The commands to run next, in order.
    pub next: Vec<String>,
    /// What to do before those commands can reach a cloud account.
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Files `stamp init` would write exist: nothing was written.
    #[error("{} of the files `stamp init` writes {}", .existing.len(), if .existing.len() == 1 { "exists" } else { "exist" })]
    Exists { existing: Vec<PathBuf> },
    /// Folders (or files) below DIR that `stamp init` would write into are symbolic links:
    /// nothing was written.
    #[error("{} of the paths `stamp init` writes into {}", .links.len(), if .links.len() == 1 { "is a symbolic link" } else { "are symbolic links" })]
    Link { links: Vec<PathBuf> },
    #[error("the example archetype `{0}` is not built into this Stamp")]
    NotBuiltIn(&'static str),
    /// A write failed: what `stamp init` had created was removed, but for `left`.
    #[error("cannot write the project: {error}")]
    Io {
        #[source]
        error: std::io::Error,
        /// What `stamp init` created but could not remove.
        left: Vec<PathBuf>,
    },
}

impl super::error::OpError for InitError {
    fn own_code(&self) -> &'static str {
        match self {
            Self::Exists { .. } => "init.exists",
            Self::Link { .. } => "init.link",
            Self::NotBuiltIn(_) => "init.example",
            Self::Io { .. } => "init.io",
        }
    }

    fn hints(&self) -> Vec<String> {
        match self {
            Self::Exists { .. } => {
                vec![
                    "`stamp init` never overwrites a file: move the file(s) above away, or start the project in another folder"
                        .into(),
                ]
            }
            Self::Link { .. } => vec![
                "`stamp init` writes only into real folders below DIR, never through a link to somewhere else: replace the link(s) above with folders, or start the project in another folder"
                    .into(),
            ],
            Self::NotBuiltIn(_) | Self::Io { .. } => Vec::new(),
        }
    }

    /// The paths in the way one per line, in the order `stamp init` writes them; every path and
    /// message escaped, so a folder name cannot move the terminal's cursor.
    fn to_report(&self) -> Report {
        let mut message = self.to_string();
        let mut details = Vec::new();
        match self {
            Self::Exists { existing: paths } | Self::Link { links: paths } => {
                message.push_str(", so nothing was written:");
                details.extend(paths.iter().map(|path| path.to_string_lossy().into_owned()));
            }
            Self::Io { left, .. } if left.is_empty() => {
                details.push("nothing `stamp init` created is left: run it again once the cause is fixed".into());
            }
            Self::Io { left, .. } => {
                details.push("`stamp init` removed what it had created, but for:".into());
                details.extend(left.iter().map(|path| path.to_string_lossy().into_owned()));
            }
            Self::NotBuiltIn(_) => {}
        }
        let diagnostic = details.into_iter().fold(Diagnostic::error(self.code(), message), Diagnostic::detail);
        let diagnostic = self.hints().into_iter().fold(diagnostic, Diagnostic::hint);
        Report::new(vec![diagnostic], Sources::default())
    }
}

/// A file to write, relative to the project folder.
struct Planned {
    path: String,
    bytes: Vec<u8>,
    mode: Mode,
}

/// Writes a new project into `options.dir` (created when missing), or nothing when any of its
/// files exists or any path below `options.dir` it would write into is a symbolic link. When a
/// write fails, the files and folders written so far are removed again.
pub fn init(options: &InitOptions) -> Result<InitReport, InitError> {
    if options.dir.as_os_str().is_empty() {
        return init(&InitOptions { dir: PathBuf::from("."), ..options.clone() });
    }
    let example = options.example;
    let account_file = example.account_file().ok_or(InitError::NotBuiltIn(example.name()))?;
    let account_path = format!("accounts/{}.yaml", example.account());
    let mut paths = vec!["stamp.yaml".to_string(), ".gitignore".to_string(), account_path.clone()];
    paths.extend(example.files().map(|f| f.path.to_string()));

    let (mut links, mut existing) = (Vec::new(), Vec::new());
    for path in &paths {
        match in_the_way(&options.dir, path) {
            Some(Obstacle::Link(path)) => links.push(shown(&options.dir, &path)),
            Some(Obstacle::Exists(path)) => existing.push(shown(&options.dir, &path)),
            None => {}
        }
    }
    let mut seen = BTreeSet::new();
    links.retain(|p| seen.insert(p.clone()));
    existing.retain(|p| seen.insert(p.clone()));
    if !links.is_empty() {
        return Err(InitError::Link { links });
    }
    if !existing.is_empty() {
        return Err(InitError::Exists { existing });
    }

    let mut created = Created::default();
    let written = write_project(options, account_file, account_path, &mut created);
    let (root, files, warnings) = match written {
        Ok(written) => written,
        Err(error) => return Err(InitError::Io { error, left: created.undo() }),
    };
    let (next, mut notes) = next_steps(&options.dir, example);
    if !root.ancestors().any(|dir| dir.join(".git").exists()) {
        notes.push(
            "outside git each run stamps a new development version, so a plan after an apply still shows changes; commit the project (`git init && git add -A && git commit -m init`) to stamp one version per commit".into(),
        );
    }
    Ok(InitReport {
        dir: options.dir.clone(),
        archetype: example.name(),
        account: example.account(),
        files,
        next,
        notes,
        warnings,
    })
}

/// Writes the project, recording in `created` every file and folder it creates: the project
/// folder (canonical), the files written relative to it, and the warnings.
fn write_project(
    options: &InitOptions,
    account_file: &crate::starter::EmbeddedFile,
    account_path: String,
    created: &mut Created,
) -> std::io::Result<(PathBuf, Vec<String>, Vec<String>)> {
    let example = options.example;
    created.dirs_to(&options.dir)?;
    let root = fs_err::canonicalize(&options.dir)?;
    let mut warnings = Vec::new();
    let envs = if example.offline() { environments_dir(&root, example, &mut warnings) } else { None };

    let account = String::from_utf8_lossy(account_file.bytes);
    let mut planned = vec![
        Planned { path: "stamp.yaml".into(), bytes: project_file(example).into_bytes(), mode: Mode::Shared },
        Planned { path: ".gitignore".into(), bytes: GITIGNORE.as_bytes().to_vec(), mode: Mode::Shared },
        Planned {
            path: account_path,
            bytes: account_text(example, &account, envs.as_ref()).into_bytes(),
            mode: Mode::Shared,
        },
    ];
    planned.extend(example.files().map(|f| Planned {
        path: f.path.to_string(),
        bytes: f.bytes.to_vec(),
        mode: if f.executable { Mode::Executable } else { Mode::Shared },
    }));

    let mut files = Vec::new();
    for file in planned {
        let target = root.join(&file.path);
        created.dirs_below(&root, &file.path)?;
        created.file(&target, &file.bytes, file.mode)?;
        files.push(file.path);
    }
    Ok((root, files, warnings))
}

/// The files and folders `stamp init` created, to remove them again when a later step fails.
#[derive(Debug, Default)]
struct Created {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Created {
    /// Creates `dir` and whichever folders above it are missing, recording those it created.
    fn dirs_to(&mut self, dir: &Path) -> std::io::Result<()> {
        let mut missing = Vec::new();
        let mut path = dir;
        while path.symlink_metadata().is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
            missing.push(path.to_path_buf());
            match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => path = parent,
                _ => break,
            }
        }
        for path in missing.into_iter().rev() {
            self.dir(&path)?;
        }
        Ok(())
    }

    /// Creates the folders of `relative` (a file's path below `root`) that are missing, one at a
    /// time; a symbolic link on the way (one that appeared since the check) stops it.
    fn dirs_below(&mut self, root: &Path, relative: &str) -> std::io::Result<()> {
        let mut path = root.to_path_buf();
        let parts: Vec<&str> = relative.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            path.push(part);
            match path.symlink_metadata() {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(std::io::Error::other(format!(
                        "`{}` became a symbolic link while `stamp init` ran",
                        path.display()
                    )));
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.dir(&path)?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Creates one folder (its parent exists) and records it.
    fn dir(&mut self, path: &Path) -> std::io::Result<()> {
        match fs_err::create_dir(path) {
            Ok(()) => {
                self.dirs.push(path.to_path_buf());
                Ok(())
            }
            // Another run made it a moment ago: it is not ours to remove.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Writes a new file (never replacing one) and records it.
    fn file(&mut self, path: &Path, bytes: &[u8], mode: Mode) -> std::io::Result<()> {
        match fsio::create_atomic(path, bytes, mode) {
            Ok(()) => {
                self.files.push(path.to_path_buf());
                Ok(())
            }
            Err(e) => {
                // Written, but the folder's sync failed: the file is ours all the same.
                if e.kind() != std::io::ErrorKind::AlreadyExists && path.symlink_metadata().is_ok() {
                    self.files.push(path.to_path_buf());
                }
                Err(e)
            }
        }
    }

    /// Removes what was created: the files, then the folders, deepest first. A folder that is
    /// not empty (something else was written into it meanwhile) stays. Returns what stayed.
    fn undo(self) -> Vec<PathBuf> {
        let mut left = Vec::new();
        for file in self.files.into_iter().rev() {
            match fs_err::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => left.push(file),
                _ => {}
            }
        }
        let mut dirs = self.dirs;
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in dirs {
            match fs_err::remove_dir(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => left.push(dir),
                _ => {}
            }
        }
        left
    }
}

/// What is in the way of writing a file.
#[derive(Debug, PartialEq, Eq)]
enum Obstacle {
    /// A symbolic link below DIR, on the way or at the file itself.
    Link(PathBuf),
    /// A file (or anything else) at the file's path, or something not a folder where a folder
    /// must be.
    Exists(PathBuf),
}

/// The first path on the way of writing `relative` under `dir` that is in the way. `dir` itself
/// may be a link to a folder (the user chose it); nothing below it may be a link.
fn in_the_way(dir: &Path, relative: &str) -> Option<Obstacle> {
    if dir.symlink_metadata().is_ok() && !dir.is_dir() {
        return Some(Obstacle::Exists(dir.to_path_buf()));
    }
    let mut path = dir.to_path_buf();
    let parts: Vec<&str> = relative.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        let Ok(meta) = path.symlink_metadata() else {
            return None;
        };
        if meta.file_type().is_symlink() {
            return Some(Obstacle::Link(path));
        }
        if i + 1 == parts.len() || !meta.is_dir() {
            return Some(Obstacle::Exists(path));
        }
    }
    None
}

/// `path` as the user would name it: relative to where they ran Stamp when `dir` is `.`.
fn shown(dir: &Path, path: &Path) -> PathBuf {
    if is_here(dir) {
        path.strip_prefix(dir).map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
    } else {
        path.to_path_buf()
    }
}

/// `dir` is the current folder (`.`, `./.`, or empty).
fn is_here(dir: &Path) -> bool {
    dir.components().all(|c| c == Component::CurDir)
}

/// The local platform archetype's default `root_dir`, shared by every project that keeps it.
const SHARED_ROOT_DIR: &str = "/tmp/stamp-local";

/// Where the local platform's environments live: the account's `root_dir`.
#[derive(Debug, PartialEq, Eq)]
struct Environments {
    root_dir: String,
    /// In the project (`.stamp/envs/`), rather than in a folder of its own outside it.
    inside: bool,
}

/// The local platform's `root_dir` for the project at `root`: `.stamp/envs/` beside its state,
/// so nothing is shared with other projects. When the schema refuses that path (spaces, other
/// characters), a folder of the project's own under the archetype's default, with a warning;
/// `None` (the default stays, shared, with a warning) when even that does not fit.
fn environments_dir(root: &Path, example: Example, warnings: &mut Vec<String>) -> Option<Environments> {
    let pattern = example
        .schema()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(bytes).ok())
        .and_then(|schema| schema.pointer("/properties/root_dir/pattern").and_then(|p| p.as_str()).map(str::to_string))
        .and_then(|pattern| regex::Regex::new(&pattern).ok());
    let fits = |text: &str| pattern.as_ref().is_none_or(|p| p.is_match(text));
    let account = example.account();
    let inside = root.join(".stamp").join("envs");
    if let Some(text) = inside.to_str().filter(|t| fits(t)) {
        return Some(Environments { root_dir: text.to_string(), inside: true });
    }
    let own = format!("{SHARED_ROOT_DIR}/{}", own_folder_name(root));
    if fits(&own) {
        warnings.push(format!(
            "the project's path `{}` has characters `root_dir` does not accept (letters, digits, `._-` and `/` only), so its environments live outside it, in `{own}/<account>/`, a folder of its own; to move them, set `root_dir:` in `accounts/{account}.yaml` to another absolute folder",
            root.display()
        ));
        return Some(Environments { root_dir: own, inside: false });
    }
    warnings.push(format!(
        "`root_dir` is left at the archetype's default `{SHARED_ROOT_DIR}`: `{}` has characters `root_dir` does not accept, and every project left at the default shares `{SHARED_ROOT_DIR}/<account>/`, so two of them with an account of the same name use (and destroy) the same environment; set `root_dir:` in `accounts/{account}.yaml` to an absolute folder of this project's own (letters, digits, `._-` and `/` only)",
        inside.display()
    ));
    None
}

/// A folder name for the project at `root` that `root_dir` accepts: its name with every other
/// character made `-`, and a hash of its whole path, so two projects never share it.
fn own_folder_name(root: &Path) -> String {
    use sha2::{Digest, Sha256};
    let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut slug = String::new();
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' };
        if !(c == '-' && slug.ends_with('-')) {
            slug.push(c);
        }
    }
    let slug: String = slug.trim_matches(['.', '-']).chars().take(40).collect();
    let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
    let hash = format!("{:08x}", u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]));
    if slug.is_empty() { format!("project-{hash}") } else { format!("{slug}-{hash}") }
}

const GITIGNORE: &str = "\
# Stamp's own files on this machine: build cache, Terraform state and environments of local
# accounts, the deployment ledger, snapshots.
/.stamp/
# Rendered Terraform (`stamp render`) and artifacts (`stamp build`): rebuilt from the sources.
/build/
/dist/
";

const PROJECT_HEAD: &str = "\
# Stamp project file: where the archetypes, blueprints and account configs live, the defaults
# merged under every account, and where Terraform keeps state. Written by `stamp init`; Stamp's
# README and docs/authoring.md describe every key.
archetypes: archetypes
blueprints: blueprints
accounts: accounts

# The lowest layer of every account's config: the archetype's `defaults`, then the account
# file, override it.
defaults:
  tags:
    ManagedBy: stamp
";

const LOCAL_STATE: &str = "
# Where Terraform keeps each account's state. Local accounts run on this machine, so their state
# does too: `.stamp/state/<account>/terraform.tfstate` (git ignores `.stamp/`).
state:
  local:
    dir: .stamp/state
";

const S3_STATE: &str = "
# Where Terraform keeps each account's state: one key per account in an S3 bucket, locked by S3
# itself (`use_lockfile`, Terraform 1.11 or later). The CHANGE-ME values are placeholders:
# replace them with a bucket of yours before `stamp plan`.
state:
  s3:
    bucket: CHANGE-ME-terraform-state      # an existing bucket, with versioning on
    region: CHANGE-ME-region               # the bucket's region, such as eu-west-1
";

fn project_file(example: Example) -> String {
    let state = if example.offline() { LOCAL_STATE } else { S3_STATE };
    format!("{PROJECT_HEAD}{state}")
}

/// The example account, with a header saying where it comes from and, for the local platform,
/// the project's own `root_dir`.
fn account_text(example: Example, text: &str, envs: Option<&Environments>) -> String {
    let mut out = format!(
        "# The project's first account, from Stamp's example `{}`. `stamp schema {}`\n# prints the schema every account of the archetype is checked against.\n#\n",
        example.account(),
        example.name()
    );
    if !example.offline() {
        out.push_str(
            "# Its ids, region, zones and names are examples: replace them with yours before\n# `stamp plan`.\n#\n",
        );
    }
    out.push_str(text);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    let has_root_dir = text.lines().any(|l| l.starts_with("root_dir:"));
    if let (Some(envs), false) = (envs, has_root_dir) {
        let about = if envs.inside {
            "inside the project, in\n# `.stamp/` which git ignores. An absolute path: when the project moves, change it."
        } else {
            "a folder of this\n# project's own, outside it: the project's path has characters `root_dir` does not accept\n# (letters, digits, `._-` and `/` only). Set another absolute folder here to move it."
        };
        out.push_str(&format!(
            "\n# Where this account's environment lives (`<root_dir>/<account>/`): {about}\nroot_dir: {}\n",
            envs.root_dir
        ));
    }
    out
}

/// The three commands to run next, and what to do before they reach a cloud account.
fn next_steps(dir: &Path, example: Example) -> (Vec<String>, Vec<String>) {
    let account = example.account();
    let mut next = Vec::new();
    if !is_here(dir) {
        next.push(format!("cd {}", shell_word(dir)));
    }
    next.push("stamp check".to_string());
    if example.offline() {
        next.push(format!("stamp plan {account}"));
        next.push(format!("stamp apply {account}"));
    } else {
        next.push(format!("stamp render {account}"));
        next.push(format!("stamp plan {account}"));
    }
    next.truncate(3);
    let notes = if example.offline() {
        Vec::new()
    } else {
        vec![format!(
            "before `stamp plan {account}`: replace the CHANGE-ME values in `stamp.yaml` with your state bucket, and the example ids, region and zones in `accounts/{account}.yaml`; planning needs AWS credentials, downloads the AWS provider (once, into Stamp's provider cache) and runs the archetype's checkov policy (`pip install checkov`)"
        )]
    };
    (next, notes)
}

/// `path` as one shell word for `cd`: as it is when that is safe; `./` in front when it starts
/// like an option (`-x`, or `+1`, a folder of zsh's stack); in single quotes when it has other
/// characters; in `$'...'` (bash, zsh, ksh and POSIX sh) with `\xHH` escapes when it has control
/// characters or bytes that are not UTF-8, so the command is never printed with them raw.
fn shell_word(path: &Path) -> String {
    let bytes = path.as_os_str().as_encoded_bytes();
    let prefix = if matches!(bytes.first(), Some(b'-' | b'+')) { "./" } else { "" };
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c);
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.is_empty() && !text.starts_with('=') && text.chars().all(safe) => format!("{prefix}{text}"),
        Ok(text) if !text.chars().any(crate::text::needs_escape) => {
            format!("'{prefix}{}'", text.replace('\'', r"'\''"))
        }
        _ => {
            let mut out = format!("$'{prefix}");
            for chunk in bytes.utf8_chunks() {
                for c in chunk.valid().chars() {
                    match c {
                        '\\' | '\'' => {
                            out.push('\\');
                            out.push(c);
                        }
                        '\n' => out.push_str(r"\n"),
                        '\r' => out.push_str(r"\r"),
                        '\t' => out.push_str(r"\t"),
                        c if crate::text::needs_escape(c) => {
                            let mut buf = [0; 4];
                            for b in c.encode_utf8(&mut buf).bytes() {
                                out.push_str(&format!(r"\x{b:02x}"));
                            }
                        }
                        c => out.push(c),
                    }
                }
                for b in chunk.invalid() {
                    out.push_str(&format!(r"\x{b:02x}"));
                }
            }
            out.push('\'');
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_commands_start_where_the_project_is() {
        let (next, notes) = next_steps(Path::new("my project"), Example::LocalPlatform);
        assert_eq!(next, ["cd 'my project'", "stamp check", "stamp plan local-staging"]);
        assert!(notes.is_empty());
        let (next, notes) = next_steps(Path::new("."), Example::ServicePlatform);
        assert_eq!(next, ["stamp check", "stamp render staging", "stamp plan staging"]);
        assert!(notes[0].contains("CHANGE-ME"), "{notes:?}");
    }

    #[test]
    fn any_folder_name_is_one_shell_word_printed_without_control_characters() {
        let word = |text: &str| shell_word(Path::new(text));
        assert_eq!(word("shop/a-1"), "shop/a-1");
        assert_eq!(word("it's"), r"'it'\''s'");
        assert_eq!(word("-dash"), "./-dash");
        assert_eq!(word("+1"), "./+1");
        assert_eq!(word("=ls"), "'=ls'");
        assert_eq!(word("-my shop"), "'./-my shop'");
        assert_eq!(word("épicerie"), "'épicerie'");
        assert_eq!(word("a\u{1b}[31mb\rc'd\\"), r"$'a\x1b[31mb\rc\'d\\'");
        assert_eq!(word("x\u{202e}y"), r"$'x\xe2\x80\xaey'");
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let path = Path::new(std::ffi::OsStr::from_bytes(b"a\xffb"));
            assert_eq!(shell_word(path), r"$'a\xffb'");
        }
    }

    #[test]
    fn anything_in_the_way_is_found() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert_eq!(in_the_way(dir, "archetypes/a/schema.json"), None);
        fs_err::write(dir.join("archetypes"), "").unwrap();
        assert_eq!(in_the_way(dir, "archetypes/a/schema.json"), Some(Obstacle::Exists(dir.join("archetypes"))));
        fs_err::create_dir_all(dir.join("blueprints/b")).unwrap();
        assert_eq!(in_the_way(dir, "blueprints/b/main.tf"), None);
        fs_err::write(dir.join("blueprints/b/main.tf"), "").unwrap();
        assert_eq!(in_the_way(dir, "blueprints/b/main.tf"), Some(Obstacle::Exists(dir.join("blueprints/b/main.tf"))));
        assert_eq!(in_the_way(&dir.join("archetypes"), "stamp.yaml"), Some(Obstacle::Exists(dir.join("archetypes"))));
    }

    #[cfg(unix)]
    #[test]
    fn links_below_the_project_folder_are_in_the_way_but_the_folder_itself_may_be_one() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, outside) = (tmp.path().join("d"), tmp.path().join("outside"));
        fs_err::create_dir_all(dir.join("blueprints")).unwrap();
        fs_err::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("blueprints/b")).unwrap();
        assert_eq!(in_the_way(&dir, "blueprints/b/main.tf"), Some(Obstacle::Link(dir.join("blueprints/b"))));
        std::os::unix::fs::symlink(tmp.path().join("nowhere"), dir.join("stamp.yaml")).unwrap();
        assert_eq!(in_the_way(&dir, "stamp.yaml"), Some(Obstacle::Link(dir.join("stamp.yaml"))));
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert_eq!(in_the_way(&link, "accounts/a.yaml"), None);
    }

    #[test]
    fn undoing_removes_only_what_was_created() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("new/project");
        let mut created = Created::default();
        created.dirs_to(&dir).unwrap();
        fs_err::create_dir(dir.join("mine")).unwrap();
        created.dirs_below(&dir, "mine/sub/a.txt").unwrap();
        created.file(&dir.join("mine/sub/a.txt"), b"a", Mode::Shared).unwrap();
        created.dirs_below(&dir, "other/b.txt").unwrap();
        created.file(&dir.join("other/b.txt"), b"b", Mode::Shared).unwrap();
        // Written by someone else meanwhile: its folder stays, and says so.
        fs_err::write(dir.join("other/theirs.txt"), "").unwrap();
        assert_eq!(created.dirs, [tmp.path().join("new"), dir.clone(), dir.join("mine/sub"), dir.join("other")]);
        let left = created.undo();
        assert_eq!(left, [dir.join("other"), dir.clone(), tmp.path().join("new")]);
        assert!(dir.join("mine").is_dir() && !dir.join("mine/sub").exists());
        assert_eq!(fs_err::read_dir(dir.join("other")).unwrap().count(), 1);

        let mut created = Created::default();
        created.dirs_to(&tmp.path().join("x/y")).unwrap();
        created.dirs_below(&tmp.path().join("x/y"), "z/f").unwrap();
        created.file(&tmp.path().join("x/y/z/f"), b"", Mode::Shared).unwrap();
        assert!(created.undo().is_empty());
        assert!(!tmp.path().join("x").exists());
    }

    #[test]
    fn a_project_path_the_schema_refuses_gets_a_root_dir_of_its_own() {
        let mut warnings = Vec::new();
        let fits = environments_dir(Path::new("/home/ana/shop"), Example::LocalPlatform, &mut warnings);
        assert_eq!(fits, Some(Environments { root_dir: "/home/ana/shop/.stamp/envs".into(), inside: true }));
        assert!(warnings.is_empty());
        let own = environments_dir(Path::new("/home/ana/my épicerie"), Example::LocalPlatform, &mut warnings).unwrap();
        assert!(!own.inside);
        assert!(own.root_dir.starts_with("/tmp/stamp-local/my-picerie-"), "{own:?}");
        assert!(warnings[0].contains("a folder of its own"), "{warnings:?}");
        let other = environments_dir(Path::new("/home/bo/my épicerie"), Example::LocalPlatform, &mut warnings).unwrap();
        assert_ne!(own.root_dir, other.root_dir, "two projects of one name share no folder");
        for root in ["/", "/srv/..weird", "/srv/\u{1b}"] {
            let name = own_folder_name(Path::new(root));
            assert!(!name.starts_with(['.', '-']) && name.len() > 8, "{root}: {name}");
        }
    }

    #[test]
    fn the_shared_root_dir_is_the_archetypes_default() {
        let archetype = Example::LocalPlatform.files().find(|f| f.path.ends_with("/archetype.yaml")).unwrap();
        let text = String::from_utf8_lossy(archetype.bytes);
        assert!(text.lines().any(|l| l.trim() == format!("root_dir: {SHARED_ROOT_DIR}")), "{text}");
    }
}
