//! `stamp clone` and `stamp sync`: production-like copies. A clone builds TARGET from the
//! blueprint version SOURCE runs (with TARGET's own config); with `--data`, and with `sync`,
//! SOURCE's data is copied by the archetype's data hooks: snapshot SOURCE, keep a snapshot of
//! TARGET's own data, take TARGET offline, restore, scrub, bring it back, compare statistics.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::Workspace;
use super::check::{Checked, VersionSpec, render_one, validate_and_render_in};
use super::deploy::{self, ApplyOptions, Approver, DeployReport, Session};
use super::drift::{ParityIssue, parity};
use super::revision::Revision;
use crate::config::{Account, Project};
use crate::diagnostics::{Diagnostic, Report, Sources};
use crate::ledger::Ledger;
use crate::pipeline::AccountRun;
use crate::pipeline::account::{Dirs, Progress};
use crate::pipeline::data::{StatDifference, Step, compare_stats, parse_stats, snapshot_id};
use crate::terraform::Terraform;
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

pub(crate) fn refuse(message: impl Into<String>) -> Report {
    Report::new(vec![Diagnostic::error("data", message.into())], Sources::default())
}

/// The two accounts, checked: distinct, same archetype, target's data may be overwritten.
fn pair<'w>(workspace: &'w Workspace, options: &CopyOptions) -> Result<(&'w Account, &'w Account), Report> {
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
        if let Some(message) = super::history_problem(project, account) {
            return Err(refuse(message));
        }
    }
    if source.name == target.name {
        return Err(refuse("the source and the target are the same account"));
    }
    if source.archetype != target.archetype {
        return Err(refuse(format!(
            "`{}` is a `{}` account and `{}` a `{}` one: a clone has its source's archetype",
            source.name, source.archetype, target.name, target.archetype
        )));
    }
    if options.data && target.is_protected() && options.confirm.as_deref() != Some(target.name.as_str()) {
        return Err(refuse(format!(
            "account `{0}` is protected: overwriting its data needs `--confirm {0}` (its current data is kept as a snapshot)",
            target.name
        )));
    }
    if options.data {
        let archetype = &project.archetypes[&source.archetype];
        archetype
            .file
            .data
            .require(&archetype.name, &[Step::Snapshot, Step::Restore, Step::Scrub, Step::Stats])
            .map_err(refuse)?;
    }
    Ok((source, target))
}

/// `stamp clone SOURCE TARGET [--data]`.
pub fn clone(
    root: &Path,
    options: &CopyOptions,
    approver: &dyn Approver,
    progress: &dyn Progress,
) -> Result<CopyReport, Report> {
    let workspace = Workspace::load(root)?;
    let (source, target) = pair(&workspace, options)?;
    let project = &workspace.project;
    let deployed = deployed_version(project, source)?;
    let checked = render_at(project, &target.name, &deployed)?;
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
        report.data = Some(copy_data(project, &terraform, source, target, progress));
    }
    Ok(report)
}

/// `stamp sync SOURCE TARGET`.
pub fn sync(root: &Path, options: &CopyOptions, progress: &dyn Progress) -> Result<CopyReport, Report> {
    let options = CopyOptions { data: true, ..options.clone() };
    let workspace = Workspace::load(root)?;
    let (source, target) = pair(&workspace, &options)?;
    let project = &workspace.project;
    let terraform = deploy::locate(options.terraform.as_deref())?;
    let data = copy_data(project, &terraform, source, target, progress);
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

/// The version SOURCE's live slot last applied successfully, from the ledger.
fn deployed_version(project: &Project, source: &Account) -> Result<BuildVersion, Report> {
    let records = Ledger::of(project).records(&source.name);
    let Some(last) = crate::ledger::last_success(&records, source.slot, crate::ledger::Operation::Apply) else {
        return Err(refuse(format!(
            "`{}` has no successful apply in the ledger, so the version it runs is unknown: apply it first",
            source.name
        )));
    };
    if last.commit == "none" || last.environment_version.ends_with("-dirty") {
        return Err(refuse(format!(
            "`{}` runs {}, built from {}: that version cannot be rebuilt; apply it from a commit first",
            source.name,
            last.environment_version,
            if last.commit == "none" { "outside git" } else { "uncommitted changes" }
        )));
    }
    Ok(BuildVersion { version: last.version.clone(), commit: last.commit.clone(), dirty: false })
}

/// Renders `target` (its config as it is now) with the archetypes and blueprints of the
/// commit `version` was built from, for its work folder in this project.
fn render_at(project: &Project, target: &str, version: &BuildVersion) -> Result<Checked, Report> {
    let revision = Revision::checkout(&project.root, &version.commit).map_err(refuse)?;
    // The target's config is today's; only the blueprint version is the source's.
    let accounts = revision.root.join(&project.file.accounts);
    if accounts.exists() {
        fs_err::remove_dir_all(&accounts).map_err(|e| refuse(e.to_string()))?;
    }
    copy_dir(&project.root.join(&project.file.accounts), &accounts).map_err(|e| refuse(e.to_string()))?;
    let mut workspace = Workspace::load(&revision.root)?;
    // Blueprints are read from the checkout; runs, state and the ledger stay in this project.
    workspace.project.file.blueprints = revision.root.join(&workspace.project.file.blueprints);
    workspace.project.root.clone_from(&project.root);
    crate::ledger::annotate(&mut workspace.project);
    let work_dir = |w: &Workspace, a: &Account| Dirs::new(&w.project, a).work;
    validate_and_render_in(
        workspace,
        &[target.to_string()],
        VersionSpec::Exact(version.clone()),
        &work_dir,
        &super::check::keep,
    )
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.map_err(std::io::Error::other)?;
        let dest = to.join(entry.path().strip_prefix(from).expect("below its root"));
        if entry.file_type().is_dir() {
            fs_err::create_dir_all(&dest)?;
        } else {
            fs_err::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// An account's environment opened for data hooks: its work folder written and initialised
/// from the current render, its outputs read.
pub(crate) struct DataSide<'a> {
    pub run: AccountRun<'a>,
    pub env: crate::pipeline::hooks::HookEnv,
}

impl<'a> DataSide<'a> {
    /// Opens the environment where it was last deployed from this project (its work folder:
    /// the hooks' scripts are the deployed version's); only without one is the account
    /// rendered as it is now.
    pub(crate) fn open(
        project: &'a Project,
        account: &'a Account,
        terraform: &'a Terraform,
        progress: &'a dyn Progress,
    ) -> Result<Self, String> {
        let mut run = AccountRun::start(project, account, terraform, progress)
            .map_err(|e| format!("{}: {}", account.instance(), e.explain()))?;
        if !run.is_prepared() {
            let tree = Workspace::load(&project.root)
                .map_err(|r| r.messages())
                .and_then(|w| render_one(w, &account.name, account.slot, VersionSpec::Release(None)))
                .map_err(|e| format!("{}: {e}", account.instance()))?;
            run.prepare(&tree).map_err(|e| format!("{}: {}", account.instance(), e.explain()))?;
        }
        let env = run.data_env().map_err(|e| format!("{}: {}", account.instance(), e.explain()))?;
        Ok(Self { run, env })
    }

    pub(crate) fn hook(&mut self, step: Step, extra: &[(&str, &str)]) -> Result<String, String> {
        let name = self.run.account.instance();
        self.run.run_data(step, &self.env, extra).map_err(|e| format!("{name}: {e}"))
    }

    pub(crate) fn stats(&mut self) -> Result<Value, String> {
        let name = self.run.account.instance();
        parse_stats(&self.hook(Step::Stats, &[])?).map_err(|e| format!("{name}: {e}"))
    }

    pub(crate) fn snapshot(&mut self) -> Result<String, String> {
        let name = self.run.account.instance();
        snapshot_id(&self.hook(Step::Snapshot, &[])?).map_err(|e| format!("{name}: {e}"))
    }

    /// Sets availability; a no-op without an `availability` hook.
    pub(crate) fn availability(&mut self, state: &str) -> Result<bool, String> {
        if self.run.archetype.file.data.availability.is_none() {
            return Ok(false);
        }
        self.hook(Step::Availability, &[("STAMP_AVAILABILITY", state)]).map(|_| true)
    }

    pub(crate) fn restore(&mut self, snapshot: &str, of: &str) -> Result<String, String> {
        self.hook(Step::Restore, &[("STAMP_SNAPSHOT_ID", snapshot), ("STAMP_SNAPSHOT_ACCOUNT", of)])
    }
}

/// Copies SOURCE's data into TARGET: snapshot TARGET (its own data is kept), snapshot SOURCE,
/// TARGET to standby, restore, scrub, TARGET active again (also after an error), and compare
/// statistics.
fn copy_data(
    project: &Project,
    terraform: &Terraform,
    source: &Account,
    target: &Account,
    progress: &dyn Progress,
) -> DataCopy {
    let mut copy = DataCopy::default();
    let mut source_side = match DataSide::open(project, source, terraform, progress) {
        Ok(side) => side,
        Err(e) => return DataCopy { error: Some(e), ..copy },
    };
    let mut target_side = match DataSide::open(project, target, terraform, progress) {
        Ok(side) => side,
        Err(e) => return DataCopy { error: Some(e), ..copy },
    };
    let mut standby = false;
    let result = (|| -> Result<(), String> {
        copy.target_backup = Some(target_side.snapshot()?);
        copy.steps.push(format!("snapshot of {}'s own data", target.name));
        copy.source_stats = Some(source_side.stats()?);
        let snapshot = source_side.snapshot()?;
        copy.snapshot = Some(snapshot.clone());
        copy.steps.push(format!("snapshot of {}", source.name));
        standby = target_side.availability("standby")?;
        if standby {
            copy.steps.push(format!("{} in standby", target.name));
        }
        target_side.restore(&snapshot, &source.name)?;
        copy.steps.push(format!("restored into {}", target.name));
        target_side.hook(Step::Scrub, &[])?;
        copy.steps.push(format!("{} scrubbed", target.name));
        let found = target_side.stats()?;
        copy.differences = compare_stats(copy.source_stats.as_ref().expect("taken above"), &found);
        copy.target_stats = Some(found);
        Ok(())
    })();
    if let Err(e) = result {
        copy.error = Some(e);
    }
    if standby {
        match target_side.availability("active") {
            Ok(_) => copy.steps.push(format!("{} active again", target.name)),
            Err(e) => {
                let first = copy.error.take().map(|f| format!("{f}; ")).unwrap_or_default();
                copy.error = Some(format!("{first}and {} could not be brought back: {e}", target.name));
            }
        }
    }
    copy
}
