//! `stamp clone` and `stamp sync`: production-like copies. A clone builds TARGET from the
//! blueprint version SOURCE runs (with TARGET's own config); with `--data`, and with `sync`,
//! SOURCE's data is copied by the archetype's data hooks: snapshot SOURCE, keep a snapshot of
//! TARGET's own data, take TARGET offline, restore, scrub, bring it back, compare statistics.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::Workspace;
use super::check::{Checked, Selection, VersionSpec, validate_and_render};
use super::deploy::{self, ApplyOptions, Approver, DeployError, DeployReport, Session};
use super::drift::{ParityIssue, parity};
use super::environments::{Environments, Live, StepError};
use super::revision::Snapshot;
use crate::config::project::{AccountFile, LoadOptions, Scope, account_files_in};
use crate::config::{Account, Project};
use crate::diagnostics::Report;
use crate::pipeline::account::{Dirs, Progress};
use crate::pipeline::data::{StatDifference, Step, compare_stats};
use crate::pipeline::lock::AccountLock;
use crate::store::Store;
use crate::version::BuildVersion;

#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    pub source: String,
    pub target: String,
    /// `clone --data` (always on for `sync`).
    pub data: bool,
    /// `--confirm TARGET`: needed to overwrite a protected account's data.
    pub confirm: Option<String>,
    pub terraform: Option<PathBuf>,
}

/// What a data copy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DataCopy {
    /// Snapshot of the source that was restored.
    pub snapshot: Option<String>,
    /// Snapshot of the target's own data, taken before it was overwritten.
    pub target_backup: Option<String>,
    pub source_stats: Option<Value>,
    pub target_stats: Option<Value>,
    /// Statistics that differ after the copy: the copy is not faithful.
    pub differences: Vec<StatDifference>,
    /// Steps done, in order (`snapshot source`, `standby target`, ...).
    pub steps: Vec<String>,
    pub error: Option<String>,
    /// The diagnostics behind the error (a render that failed), kept whole.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Report>,
}

impl DataCopy {
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.differences.is_empty()
    }
}

/// What `clone` or `sync` did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub source: String,
    pub target: String,
    /// The blueprint version TARGET was built from (clone).
    pub version: Option<String>,
    pub deploy: Option<DeployReport>,
    pub data: Option<DataCopy>,
    /// Config differences of TARGET from SOURCE its archetype does not allow.
    pub parity: Vec<ParityIssue>,
    /// Problems found while loading (a damaged ledger record, ...), one line each.
    pub warnings: Vec<String>,
}

impl CopyReport {
    pub fn succeeded(&self) -> bool {
        self.deploy.as_ref().is_none_or(DeployReport::succeeded) && self.data.as_ref().is_none_or(DataCopy::succeeded)
    }
}

/// Why `clone` or `sync` did not run.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// An account that is not there or does not validate (its diagnostics, whole).
    #[error(transparent)]
    Invalid(Report),
    /// The account is in the middle of a migration, or its history is damaged.
    #[error("{0}")]
    UnderMigration(String),
    #[error("the source and the target are the same account")]
    SameAccount,
    #[error(
        "`{source_account}` is a `{source_archetype}` account and `{target}` a `{target_archetype}` one: a clone has its source's archetype"
    )]
    OtherArchetype { source_account: String, source_archetype: String, target: String, target_archetype: String },
    #[error(
        "account `{0}` is protected: overwriting its data needs `--confirm {0}` (its current data is kept as a snapshot)"
    )]
    Protected(String),
    #[error("{0}")]
    NoDataHooks(String),
    /// Another run holds one of the accounts.
    #[error("{0}")]
    Locked(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("`{0}` has no successful apply in the ledger, so the version it runs is unknown: apply it first")]
    NeverApplied(String),
    #[error(
        "`{account}` runs {version}, built from {built_from}: that version cannot be rebuilt; apply it from a commit first"
    )]
    NotRebuildable { account: String, version: String, built_from: &'static str },
    /// The blueprint version the source runs could not be checked out.
    #[error("{0}")]
    Revision(String),
    #[error("cannot read the account files in `{}`: {source}", path.display())]
    Accounts {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Deploy(#[from] DeployError),
}

impl From<Report> for CopyError {
    fn from(report: Report) -> Self {
        Self::Invalid(report)
    }
}

impl super::error::OpError for CopyError {
    fn own_code(&self) -> &'static str {
        match self {
            Self::Locked(_) => "data.locked",
            Self::Store(_) => "store",
            _ => "data",
        }
    }

    fn wraps(&self) -> Option<&dyn super::error::OpError> {
        match self {
            Self::Invalid(report) => Some(report),
            Self::Deploy(e) => Some(e),
            _ => None,
        }
    }
}

/// The two accounts, checked: distinct, same archetype, target's data may be overwritten.
fn pair<'w>(workspace: &'w Workspace, options: &CopyOptions) -> Result<(&'w Account, &'w Account), CopyError> {
    let project = &workspace.project;
    let source = workspace.account(&options.source)?;
    let target = workspace.account(&options.target).map_err(|mut report| {
        let hint = format!(
            "a clone needs its own config: write `{}/{}.yaml` with its own CIDRs, zones and sizes",
            project.file.accounts.display(),
            options.target
        );
        report.diagnostics = report.diagnostics.into_iter().map(|d| d.hint(hint.clone())).collect();
        report
    })?;
    for account in [source, target] {
        if let Some(message) = super::history_problem(workspace.store.as_ref(), account) {
            return Err(CopyError::UnderMigration(message));
        }
    }
    if source.name == target.name {
        return Err(CopyError::SameAccount);
    }
    if source.archetype != target.archetype {
        return Err(CopyError::OtherArchetype {
            source_account: source.name.clone(),
            source_archetype: source.archetype.clone(),
            target: target.name.clone(),
            target_archetype: target.archetype.clone(),
        });
    }
    if options.data && target.is_protected() && options.confirm.as_deref() != Some(target.name.as_str()) {
        return Err(CopyError::Protected(target.name.clone()));
    }
    if options.data {
        let archetype = &project.archetypes[&source.archetype];
        archetype
            .file
            .data
            .require(&archetype.name, &[Step::Snapshot, Step::Restore, Step::Scrub, Step::Stats])
            .map_err(CopyError::NoDataHooks)?;
    }
    Ok((source, target))
}

/// `stamp clone SOURCE TARGET [--data]`.
pub fn clone(
    workspace: &Workspace,
    options: &CopyOptions,
    approver: &dyn Approver,
    progress: &dyn Progress,
) -> Result<CopyReport, CopyError> {
    let (source, target) = pair(workspace, options)?;
    let _locks = lock_pair(workspace, source, target)?;
    let project = &workspace.project;
    let deployed = deployed_version(workspace.store.as_ref(), source)?;
    let (_revision, then) = workspace_at(workspace, &deployed, &target.name)?;
    let checked = render_at(&then, &target.name, &deployed)?;
    let session = Session::new(checked, options.terraform.as_deref())?;
    let apply = ApplyOptions { confirm: options.confirm.clone(), ..ApplyOptions::default() };
    let deploy = deploy::apply_session(&session, &apply, approver, progress)?;
    let mut report = CopyReport {
        source: source.name.clone(),
        target: target.name.clone(),
        version: Some(deployed.environment_version()),
        parity: parity(project, source, target),
        data: None,
        deploy: None,
        warnings: workspace.warning_lines(),
    };
    let applied = deploy.succeeded();
    report.deploy = Some(deploy);
    if options.data && applied {
        let terraform = deploy::locate(options.terraform.as_deref())?;
        let mut live = Live::new(workspace, &terraform, approver, progress);
        report.data = Some(copy_data(&mut live, source, target));
    }
    Ok(report)
}

/// `stamp sync SOURCE TARGET`.
pub fn sync(workspace: &Workspace, options: &CopyOptions, progress: &dyn Progress) -> Result<CopyReport, CopyError> {
    let options = CopyOptions { data: true, ..options.clone() };
    let (source, target) = pair(workspace, &options)?;
    let _locks = lock_pair(workspace, source, target)?;
    let project = &workspace.project;
    let terraform = deploy::locate(options.terraform.as_deref())?;
    // Sync builds nothing: nothing is applied, so nothing needs approving.
    let mut live = Live::new(workspace, &terraform, &NothingToApprove, progress);
    let data = copy_data(&mut live, source, target);
    Ok(CopyReport {
        source: source.name.clone(),
        target: target.name.clone(),
        version: None,
        deploy: None,
        data: Some(data),
        parity: parity(project, source, target),
        warnings: workspace.warning_lines(),
    })
}

/// Approves nothing (for runs that apply nothing).
struct NothingToApprove;

impl Approver for NothingToApprove {
    fn approve(&self, _: &crate::ops::plan_report::PlanReport) -> Result<(), String> {
        Err("this command applies nothing".into())
    }
}

/// The version SOURCE's live slot last applied successfully, from the ledger.
fn deployed_version(store: &dyn Store, source: &Account) -> Result<BuildVersion, CopyError> {
    let history = store.history(&source.name)?;
    let Some(last) = crate::ledger::last_success(&history.records, source.slot, crate::ledger::Operation::Apply) else {
        return Err(CopyError::NeverApplied(source.name.clone()));
    };
    if last.commit == "none" || last.environment_version.ends_with("-dirty") {
        return Err(CopyError::NotRebuildable {
            account: source.name.clone(),
            version: last.environment_version.clone(),
            built_from: if last.commit == "none" { "outside git" } else { "uncommitted changes" },
        });
    }
    Ok(BuildVersion { version: last.version.clone(), commit: last.commit.clone(), dirty: false })
}

/// The project with its config as it is now but the archetypes, blueprints and defaults of
/// the commit `version` was built from (read from git's objects into the returned snapshot,
/// which must outlive rendering), running in this project's folders with its store and cache;
/// `target` is loaded whole. Every account file is read where it is now (the others known by
/// their summaries, from the cache): nothing is written where the accounts live, and the cost
/// follows what changed since the commit, not the number of accounts.
fn workspace_at(
    workspace: &Workspace,
    version: &BuildVersion,
    target: &str,
) -> Result<(Snapshot, Workspace), CopyError> {
    let (project, store) = (&workspace.project, Arc::clone(&workspace.store));
    let snapshot = Snapshot::without_accounts(&project.root, &version.commit).map_err(CopyError::Revision)?;
    // The target's config is today's; only the blueprint version is the source's.
    let folder = project.root.join(&project.file.accounts);
    let now = account_files_in(&folder).map_err(|source| CopyError::Accounts { path: folder.clone(), source })?;
    let files = now
        .into_iter()
        .map(|file| {
            // In the revision's project where it is in this one (its name is shown the same),
            // read where it is now.
            let path =
                file.path.strip_prefix(&project.root).map_or_else(|_| file.path.clone(), |p| snapshot.root.join(p));
            AccountFile { path, elsewhere: Some(file.read_from().to_path_buf()), stat: file.stat }
        })
        .collect();
    let only = [target.to_string()];
    let options =
        LoadOptions { scope: Scope::Only(&only), memo: Arc::clone(&project.memo), files: Some(files), prepare: None };
    let (mut then, diagnostics) = Project::load_with(&snapshot.root, options)?;
    then.as_careful_as(project);
    // Runs, state, the ledger, snapshots, providers and the account files stay in this project.
    super::keep_settings_of(project, &mut then);
    then.file.archetypes = snapshot.root.join(&then.file.archetypes);
    then.file.blueprints = snapshot.root.join(&then.file.blueprints);
    then.root.clone_from(&project.root);
    Ok((snapshot, Workspace::with_store(then, diagnostics, store)?))
}

/// Renders `target` in `workspace` at exactly `version`, for its work folder.
fn render_at<'w>(workspace: &'w Workspace, target: &str, version: &BuildVersion) -> Result<Checked<'w>, Report> {
    let work_dir = |w: &Workspace, a: &Account| Dirs::new(&w.project, a).work;
    let accounts = [target.to_string()];
    validate_and_render(
        workspace,
        Selection::of(&accounts),
        VersionSpec::Exact(version.clone()),
        &work_dir,
        &super::check::keep,
        None,
    )
}

/// Copies SOURCE's data into TARGET: snapshot TARGET (its own data is kept), snapshot SOURCE,
/// TARGET to standby, restore, scrub, TARGET active again (also after an error), and compare
/// statistics. The caller holds both accounts' locks.
pub fn copy_data(envs: &mut dyn Environments, source: &Account, target: &Account) -> DataCopy {
    let mut copy = DataCopy::default();
    let mut standby = false;
    // Whether TARGET holds SOURCE's data not scrubbed yet: it must never serve it.
    let mut unscrubbed = false;
    let result = (|| -> Result<(), StepError> {
        copy.target_backup = Some(envs.snapshot(target)?);
        copy.steps.push(format!("snapshot of {}'s own data", target.name));
        copy.source_stats = Some(envs.stats(source)?);
        let snapshot = envs.snapshot(source)?;
        copy.snapshot = Some(snapshot.clone());
        copy.steps.push(format!("snapshot of {}", source.name));
        standby = envs.availability(target, false)?;
        if standby {
            copy.steps.push(format!("{} in standby", target.name));
        }
        unscrubbed = true;
        envs.restore(target, &snapshot, &source.name)?;
        copy.steps.push(format!("restored into {}", target.name));
        envs.scrub(target)?;
        unscrubbed = false;
        copy.steps.push(format!("{} scrubbed", target.name));
        let found = envs.stats(target)?;
        copy.differences = compare_stats(copy.source_stats.as_ref().expect("taken above"), &found);
        copy.target_stats = Some(found);
        Ok(())
    })();
    if let Err(e) = result {
        copy.error = Some(e.message);
        copy.details.extend(e.report);
    }
    // Failed between the restore and the scrub (or in the restore, which may have written part
    // of it): TARGET gets its own data back before it serves again, else stays out of service.
    if unscrubbed {
        let own = copy.target_backup.clone().ok_or_else(|| StepError::from("no snapshot of its own data"));
        match own.and_then(|own| envs.restore(target, &own, &target.name)) {
            Ok(()) => copy.steps.push(format!("{}'s own data restored: the copy was not scrubbed", target.name)),
            Err(e) => {
                let first = copy.error.take().map(|f| format!("{f}; ")).unwrap_or_default();
                // Without an availability hook it never left service: say so, never that it did.
                let service = if standby {
                    "it is left out of service"
                } else {
                    "it has no availability hook to take it out of service: take it out by hand"
                };
                copy.error = Some(format!(
                    "{first}and {} may hold {}'s data unscrubbed, and its own could not be restored: {e}; {service}",
                    target.name, source.name
                ));
                copy.details.extend(e.report);
                return copy;
            }
        }
    }
    if standby {
        match envs.availability(target, true) {
            Ok(_) => copy.steps.push(format!("{} active again", target.name)),
            Err(e) => {
                let first = copy.error.take().map(|f| format!("{f}; ")).unwrap_or_default();
                copy.error = Some(format!("{first}and {} could not be brought back: {e}", target.name));
                copy.details.extend(e.report);
            }
        }
    }
    copy
}

/// The locks of both accounts' live environments, here and in a shared store, for the whole
/// copy.
fn lock_pair(
    workspace: &Workspace,
    source: &Account,
    target: &Account,
) -> Result<Vec<Box<dyn std::any::Any>>, CopyError> {
    let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
    for account in [source, target] {
        let path = Dirs::new(&workspace.project, account).lock;
        held.push(Box::new(AccountLock::acquire(&path, &account.name).map_err(CopyError::Locked)?));
        let key = crate::store::account_key(&account.name);
        held.push(Box::new(crate::store::lock(workspace.store.as_ref(), &key).map_err(CopyError::Locked)?));
        if let Some(problem) = super::moved_on(workspace.store.as_ref(), account) {
            return Err(CopyError::UnderMigration(problem));
        }
    }
    Ok(held)
}
