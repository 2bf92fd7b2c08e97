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
    #[error("the example archetype `{0}` is not built into this Stamp")]
    NotBuiltIn(&'static str),
    #[error("cannot write the project: {0}")]
    Io(#[source] std::io::Error),
}

impl super::error::OpError for InitError {
    fn own_code(&self) -> &'static str {
        match self {
            Self::Exists { .. } => "init.exists",
            Self::NotBuiltIn(_) => "init.example",
            Self::Io(_) => "init.io",
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
            Self::NotBuiltIn(_) | Self::Io(_) => Vec::new(),
        }
    }

    /// The existing files one per line, in the order `stamp init` writes them.
    fn to_report(&self) -> Report {
        let mut message = self.to_string();
        if let Self::Exists { existing } = self {
            message.push_str(", so nothing was written:");
            for path in existing {
                message.push_str(&format!("\n  {}", path.display()));
            }
        }
        let diagnostic = self.hints().into_iter().fold(Diagnostic::error(self.code(), message), Diagnostic::hint);
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
/// files exists.
pub fn init(options: &InitOptions) -> Result<InitReport, InitError> {
    if options.dir.as_os_str().is_empty() {
        return init(&InitOptions { dir: PathBuf::from("."), ..options.clone() });
    }
    let example = options.example;
    let account_file = example.account_file().ok_or(InitError::NotBuiltIn(example.name()))?;
    let account_path = format!("accounts/{}.yaml", example.account());
    let mut paths = vec!["stamp.yaml".to_string(), ".gitignore".to_string(), account_path.clone()];
    paths.extend(example.files().map(|f| f.path.to_string()));

    let mut seen = BTreeSet::new();
    let existing: Vec<PathBuf> = paths
        .iter()
        .filter_map(|path| first_existing(&options.dir, path))
        .map(|p| shown(&options.dir, &p))
        .filter(|p| seen.insert(p.clone()))
        .collect();
    if !existing.is_empty() {
        return Err(InitError::Exists { existing });
    }

    fs_err::create_dir_all(&options.dir).map_err(InitError::Io)?;
    let root = fs_err::canonicalize(&options.dir).map_err(InitError::Io)?;
    let mut warnings = Vec::new();
    let root_dir = if example.offline() { environments_dir(&root, example, &mut warnings) } else { None };

    let account = String::from_utf8_lossy(account_file.bytes);
    let mut planned = vec![
        Planned { path: "stamp.yaml".into(), bytes: project_file(example).into_bytes(), mode: Mode::Shared },
        Planned { path: ".gitignore".into(), bytes: GITIGNORE.as_bytes().to_vec(), mode: Mode::Shared },
        Planned {
            path: account_path,
            bytes: account_text(example, &account, root_dir.as_deref()).into_bytes(),
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
        fsio::create_atomic(&target, &file.bytes, file.mode).map_err(InitError::Io)?;
        files.push(file.path);
    }
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

/// The path, or the first folder on its way, that is in the way of writing `relative` under
/// `dir`: a file (or link) at the path itself, or something not a folder where a folder must be.
fn first_existing(dir: &Path, relative: &str) -> Option<PathBuf> {
    if dir.symlink_metadata().is_ok() && !dir.is_dir() {
        return Some(dir.to_path_buf());
    }
    let mut path = dir.to_path_buf();
    let parts: Vec<&str> = relative.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        if path.symlink_metadata().is_err() {
            return None;
        }
        // Folders on the way may exist (and be links to folders); the file itself may not.
        if i + 1 == parts.len() || !path.is_dir() {
            return Some(path);
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

/// The local platform's `root_dir` for the project at `root`: its environments live in
/// `.stamp/envs/` beside its state, so nothing is shared with other projects. `None` (the
/// archetype's default stays, with a warning) when that path is not one the schema accepts.
fn environments_dir(root: &Path, example: Example, warnings: &mut Vec<String>) -> Option<String> {
    let dir = root.join(".stamp").join("envs");
    let text = dir.to_str().map(str::to_string);
    let pattern = example
        .schema()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(bytes).ok())
        .and_then(|schema| schema.pointer("/properties/root_dir/pattern").and_then(|p| p.as_str()).map(str::to_string))
        .and_then(|pattern| regex::Regex::new(&pattern).ok());
    match (text, pattern) {
        (Some(text), Some(pattern)) if pattern.is_match(&text) => Some(text),
        (Some(text), None) => Some(text),
        _ => {
            warnings.push(format!(
                "`root_dir` is left at the archetype's default: `{}` has characters `root_dir` does not accept; set `root_dir:` in the account file to a folder of your own",
                dir.display()
            ));
            None
        }
    }
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
fn account_text(example: Example, text: &str, root_dir: Option<&str>) -> String {
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
    if let (Some(root_dir), false) = (root_dir, has_root_dir) {
        out.push_str(&format!(
            "\n# Where this account's environment lives (`<root_dir>/<account>/`): inside the project, in\n# `.stamp/` which git ignores. An absolute path: when the project moves, change it.\nroot_dir: {root_dir}\n"
        ));
    }
    out
}

/// The three commands to run next, and what to do before they reach a cloud account.
fn next_steps(dir: &Path, example: Example) -> (Vec<String>, Vec<String>) {
    let account = example.account();
    let mut next = Vec::new();
    if !is_here(dir) {
        next.push(format!("cd {}", shell_quoted(&dir.to_string_lossy())));
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

/// `text` as one shell word.
fn shell_quoted(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c)) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
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
        assert_eq!(shell_quoted("it's"), r"'it'\''s'");
    }

    #[test]
    fn anything_in_the_way_is_found() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert_eq!(first_existing(dir, "archetypes/a/schema.json"), None);
        fs_err::write(dir.join("archetypes"), "").unwrap();
        assert_eq!(first_existing(dir, "archetypes/a/schema.json"), Some(dir.join("archetypes")));
        fs_err::create_dir_all(dir.join("blueprints/b")).unwrap();
        assert_eq!(first_existing(dir, "blueprints/b/main.tf"), None);
        fs_err::write(dir.join("blueprints/b/main.tf"), "").unwrap();
        assert_eq!(first_existing(dir, "blueprints/b/main.tf"), Some(dir.join("blueprints/b/main.tf")));
        assert_eq!(first_existing(&dir.join("archetypes"), "stamp.yaml"), Some(dir.join("archetypes")));
    }

    #[test]
    fn a_project_path_the_schema_refuses_keeps_the_default_root_dir() {
        let mut warnings = Vec::new();
        let fits = environments_dir(Path::new("/home/ana/shop"), Example::LocalPlatform, &mut warnings);
        assert_eq!(fits.as_deref(), Some("/home/ana/shop/.stamp/envs"));
        assert!(warnings.is_empty());
        assert_eq!(environments_dir(Path::new("/home/ana/my shop"), Example::LocalPlatform, &mut warnings), None);
        assert!(warnings[0].contains("`root_dir` is left at the archetype's default"), "{warnings:?}");
    }
}
