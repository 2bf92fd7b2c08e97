//! `stamp build` and `stamp verify`: versioned, reproducible artifacts of accounts' rendered
//! Terraform, and checking them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde::Serialize;

use super::Workspace;
use super::check::{Selection, VersionSpec, default_out_dir, validate_and_render, with_jobs};
use crate::artifact::{self, ArtifactInput};
use crate::config::Account;
use crate::diagnostics::Report;

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub accounts: Vec<String>,
    pub all: bool,
    pub version: Option<String>,
    /// Output folder (default `dist/` in the project).
    pub out: Option<PathBuf>,
    /// Create a git tag `<account>/<version>` for each artifact.
    pub tag: bool,
    /// Plan each account and add the plan file and its JSON to the artifact.
    pub plan: bool,
    /// The Terraform binary for `plan`.
    pub terraform: Option<PathBuf>,
}

/// One written artifact.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    pub account: String,
    pub path: PathBuf,
    pub digest: String,
    pub tag: Option<String>,
}

/// Why `build` or `verify` did not give artifacts.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The selected accounts do not validate or render (their diagnostics, whole).
    #[error(transparent)]
    Invalid(Report),
    #[error("name the accounts to build, or pass `--all`")]
    NoAccounts,
    #[error("`--plan` needs Terraform: {}", crate::terraform::binary::INSTALL_HINT)]
    NoTerraform,
    #[error("cannot plan `{account}`: {}", source.explain())]
    Plan {
        account: String,
        #[source]
        source: crate::pipeline::RunError,
    },
    #[error("`terraform show -json` of `{account}` is not JSON: {source}")]
    PlanJson {
        account: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The artifact (just written, or to verify) does not check out.
    #[error("{}", crate::diagnostics::error_chain(.0))]
    Artifact(#[from] artifact::ArtifactError),
    #[error("cannot create git tag `{tag}`: {reason}")]
    Tag { tag: String, reason: String },
}

impl From<Report> for BuildError {
    fn from(report: Report) -> Self {
        Self::Invalid(report)
    }
}

impl super::error::OpError for BuildError {
    fn own_code(&self) -> &'static str {
        match self {
            Self::NoAccounts => "usage",
            Self::Artifact(_) => "artifact",
            _ => "build",
        }
    }

    fn wraps(&self) -> Option<&dyn super::error::OpError> {
        match self {
            Self::Invalid(report) => Some(report),
            _ => None,
        }
    }

    fn is_usage(&self) -> bool {
        matches!(self, Self::NoAccounts)
    }
}

pub fn build(workspace: &Workspace, options: &BuildOptions) -> Result<Vec<Built>, BuildError> {
    if options.accounts.is_empty() && !options.all {
        return Err(BuildError::NoAccounts);
    }
    let accounts = if options.all { Vec::new() } else { options.accounts.clone() };
    let selection = Selection::of(&accounts);
    let project = &workspace.project;
    let version = crate::version::BuildVersion::resolve(options.version.as_deref(), &project.root);
    // Every selected account is checked first: nothing is planned or built when one has errors.
    let names = Mutex::new(Vec::new());
    let note = |a: &Account, _: &Path, _: crate::render::Tree| {
        names.lock().expect("build lock").push(a.name.clone());
        Ok(None)
    };
    let exact = || VersionSpec::Exact(version.clone());
    let checked = validate_and_render(workspace, selection, exact(), &default_out_dir, &note, None)?;
    if checked.has_errors() {
        return Err(BuildError::Invalid(checked.report()));
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let dist = options.out.as_ref().map_or_else(|| project.root.join("dist"), |o| cwd.join(o));
    let terraform = crate::terraform::Terraform::locate(options.terraform.as_deref());
    if options.plan && terraform.is_err() {
        return Err(BuildError::NoTerraform);
    }
    let terraform_version = terraform.as_ref().ok().and_then(|t| t.version().ok()).map(|v| v.text);
    let names = names.into_inner().expect("build lock");
    if names.is_empty() {
        return Ok(Vec::new());
    }
    // Versions are immutable: a tag that exists already is refused before anything is built.
    if options.tag {
        let existing = existing_tags(&project.root)?;
        if let Some(tag) = names.iter().map(|n| format!("{n}/{}", version.version)).find(|t| existing.contains(t)) {
            return Err(BuildError::Tag { tag, reason: "it exists already (versions are immutable)".into() });
        }
    }
    // An artifact is replaced only by one of its own account: `x` at `1-2` and `x-1` at `2` are
    // both `x-1-2.tar.gz`, and one would silently take the other's place.
    for name in &names {
        may_replace(&dist.join(artifact::file_name(name, &version.version)), name)?;
    }
    // Then each artifact is built as its tree comes, one account at a time (until one fails),
    // into a staging folder in `dist` (named so that the next build sweeps it after a kill): a
    // fleet's accounts and trees are never all held, and nothing is in `dist` until every
    // selected account built.
    let write_failed = |source| BuildError::Write { path: dist.clone(), source };
    fs_err::create_dir_all(&dist).map_err(write_failed)?;
    // Artifacts only: nothing there is a rendered tree, so nothing is kept.
    let _ = crate::render::tree::sweep_staging(&dist);
    let staging = crate::render::tree::staging_dir_in(&dist).map_err(write_failed)?;
    let planner = terraform.as_ref().ok().filter(|_| options.plan);
    let shared = Shared { version: &version, terraform_version: terraform_version.as_deref() };
    let staged = Mutex::new(Vec::new());
    let failure = Mutex::new(None);
    let make = |account: &Account, _: &Path, tree: crate::render::Tree| {
        if failure.lock().expect("build lock").is_some() {
            return Ok(None);
        }
        match stage_one(project, &shared, planner, account, &tree, staging.path()) {
            Ok(path) => staged.lock().expect("build lock").push((account.name.clone(), path)),
            Err(e) => *failure.lock().expect("build lock") = Some(e),
        }
        Ok(None)
    };
    let ran = with_jobs(1, || validate_and_render(workspace, selection, exact(), &default_out_dir, &make, None))?;
    if let Some(failure) = failure.into_inner().expect("build lock") {
        return Err(failure);
    }
    // An account file changed since the first pass.
    if ran.has_errors() {
        return Err(BuildError::Invalid(ran.report()));
    }
    let mut staged = staged.into_inner().expect("build lock");
    staged.sort();
    // Every artifact is moved in (and verified where it lies) before any is tagged.
    let mut built = Vec::new();
    for (account, from) in staged {
        let path = dist.join(artifact::file_name(&account, &version.version));
        fs_err::rename(&from, &path).map_err(|source| BuildError::Write { path: path.clone(), source })?;
        built.push(Built { account, path, digest: String::new(), tag: None });
    }
    crate::fsio::sync_dir(&dist).map_err(write_failed)?;
    for one in &mut built {
        one.digest = artifact::open(&one.path)?.manifest.digest;
    }
    if options.tag {
        for one in &mut built {
            let tag = format!("{}/{}", one.account, version.version);
            create_tag(&project.root, &tag, &one.digest)?;
            one.tag = Some(tag);
        }
    }
    Ok(built)
}

/// The project's git tags, once there is a commit to tag.
fn existing_tags(root: &Path) -> Result<std::collections::BTreeSet<String>, BuildError> {
    let failed = |reason: String| BuildError::Tag { tag: "<account>/<version>".into(), reason };
    let git = |args: &[&str]| super::revision::git(root, args).map_err(|e| crate::text::one_line(&e).into_owned());
    git(&["rev-parse", "--verify", "HEAD^{commit}"]).map_err(|e| failed(format!("there is no commit to tag ({e})")))?;
    // One tag per line, whatever the user's `column` settings.
    let tags = git(&["for-each-ref", "--format=%(refname:strip=2)", "refs/tags"]).map_err(failed)?;
    Ok(tags.lines().map(str::to_string).collect())
}

/// Refuses to replace the file at `path` with `account`'s artifact unless it is an artifact of
/// that account: another account's (whose name and version join to the same file name) or a
/// file Stamp cannot read as an artifact would be lost.
fn may_replace(path: &Path, account: &str) -> Result<(), BuildError> {
    let Ok(found) = path.symlink_metadata() else { return Ok(()) };
    let refuse = |why: String| BuildError::Write { path: path.to_path_buf(), source: std::io::Error::other(why) };
    // Opened only when it is a plain file: reading a FIFO put there would never end.
    if !found.is_file() {
        return Err(refuse("it is there and is not a plain file, so it is not replaced: move it away".into()));
    }
    match artifact::open(path) {
        Ok(found) if found.manifest.account == account => Ok(()),
        Ok(found) => Err(refuse(format!(
            "it holds the artifact of account `{}` at version `{}`, which this one would replace (a file name joins account and version with `-`): build into another folder (`--out`) or move it away",
            found.manifest.account, found.manifest.version
        ))),
        Err(e) => Err(refuse(format!(
            "it is there and is not an artifact Stamp can read ({}), so it is not replaced: move it away",
            crate::diagnostics::error_chain(&e)
        ))),
    }
}

/// What every artifact of one build shares.
struct Shared<'a> {
    version: &'a crate::version::BuildVersion,
    terraform_version: Option<&'a str>,
}

/// Plans (with `--plan`) and writes the artifact of one account into `folder`; its path.
fn stage_one(
    project: &crate::config::Project,
    shared: &Shared<'_>,
    planner: Option<&crate::terraform::Terraform>,
    account: &Account,
    tree: &crate::render::Tree,
    folder: &Path,
) -> Result<PathBuf, BuildError> {
    let Shared { version, terraform_version } = *shared;
    let planned = planner.map(|terraform| plan_files(project, account, tree, terraform)).transpose()?;
    let archetype = &project.archetypes[&account.archetype];
    let config = crate::schema::redact::redacted(account);
    let input = ArtifactInput {
        account: &account.name,
        archetype: &archetype.name,
        blueprint: &archetype.file.blueprint,
        environment: account.environment(),
        version,
        terraform_version,
        tree,
        slot: account.slot,
        config: &config,
        plan: planned.as_deref(),
    };
    let path = folder.join(artifact::file_name(&account.name, &version.version));
    artifact::write(&path, &artifact::build(&input))
        .map_err(|source| BuildError::Write { path: path.clone(), source })?;
    Ok(path)
}

/// `git tag -a <account>/<version>` on the current commit, so the source can be traced to its
/// environments.
fn create_tag(root: &Path, tag: &str, digest: &str) -> Result<(), BuildError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["tag", "-a", tag, "-m", &format!("stamp artifact {tag}\n\ndigest: {digest}")])
        .output()
        .map_err(|e| BuildError::Tag { tag: tag.to_string(), reason: format!("cannot run git: {e}") })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BuildError::Tag { tag: tag.to_string(), reason: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

/// `stamp verify`: every digest of the artifact checks out and no entry is unsafe.
pub fn verify(path: &Path) -> Result<artifact::Manifest, BuildError> {
    Ok(artifact::open(path)?.manifest)
}

/// Plans the account and returns its JSON plan (`terraform show -json`), every value Terraform
/// marks sensitive and every input variable redacted.
fn plan_files(
    project: &crate::config::Project,
    account: &Account,
    tree: &crate::render::Tree,
    terraform: &crate::terraform::Terraform,
) -> Result<Vec<u8>, BuildError> {
    let fail = |source| BuildError::Plan { account: account.name.clone(), source };
    let progress = crate::pipeline::account::Quiet;
    let mut run = crate::pipeline::AccountRun::start(project, account, terraform, &progress, None).map_err(fail)?;
    run.prepare(tree).map_err(fail)?;
    run.plan(false).map_err(fail)?;
    let json = run.plan_json().map_err(fail)?;
    let mut plan: serde_json::Value =
        serde_json::from_str(&json).map_err(|source| BuildError::PlanJson { account: account.name.clone(), source })?;
    crate::terraform::plan_json::redact(&mut plan);
    let mut bytes = serde_json::to_vec_pretty(&plan).expect("values serialise");
    bytes.push(b'\n');
    Ok(bytes)
}
