//! `stamp migrate ACCOUNT --to-version V`: the new version is built alongside the old one, in
//! the account's other slot, and only retires the old one once the data is proven copied:
//!
//! standby (old) -> snapshot (old) -> build (new) -> restore (new) -> verify (stats equal)
//! -> switch (new is live) -> retire (destroy old).
//!
//! Every step is recorded in a journal (`<ledger>/migrations/<account>.json`, written atomically)
//! as it completes, so a migration that was interrupted resumes where it stopped
//! (`--resume`) or is undone (`--rollback`), and a finished step is never run twice. Rules
//! never broken: the old environment is destroyed only after the switch to a new one whose
//! statistics equal the old one's; no snapshot is ever deleted; a statistics mismatch stops the
//! migration with both environments kept; any error before the switch puts the old environment
//! back into service.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Workspace;
use super::check::{VersionSpec, validate_and_render_in};
use super::data::{DataSide, refuse};
use super::deploy::{self, ApplyOptions, Approver, DeployReport, Session};
use crate::config::{Account, Project, Slot};
use crate::diagnostics::Report;
use crate::ledger::{Ledger, Record};
use crate::pipeline::account::{Dirs, Progress};
use crate::pipeline::data::{StatDifference, Step, compare_stats};
use crate::pipeline::lock::AccountLock;

const FORMAT: &str = "stamp-migration/1";

/// The steps of a migration, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationStep {
    Standby,
    Snapshot,
    Build,
    Restore,
    Verify,
    Switch,
    Retire,
}

const STEPS: [MigrationStep; 7] = [
    MigrationStep::Standby,
    MigrationStep::Snapshot,
    MigrationStep::Build,
    MigrationStep::Restore,
    MigrationStep::Verify,
    MigrationStep::Switch,
    MigrationStep::Retire,
];

impl MigrationStep {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Standby => "old environment in standby",
            Self::Snapshot => "snapshot of the old environment",
            Self::Build => "new version built alongside",
            Self::Restore => "snapshot restored into the new environment",
            Self::Verify => "statistics of old and new are equal",
            Self::Switch => "switched: the new environment is live",
            Self::Retire => "old environment retired",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Running,
    /// Stopped by an error or a statistics mismatch; resume or roll back.
    Stopped,
    Finished,
    RolledBack,
}

/// The journal of one migration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub format: String,
    pub account: String,
    pub from_slot: Slot,
    pub to_slot: Slot,
    pub to_version: String,
    pub started: String,
    pub status: Status,
    /// Completed steps, with when.
    pub done: Vec<(MigrationStep, String)>,
    /// Every snapshot taken by this migration, the one to restore last (none is ever deleted).
    pub snapshots: Vec<String>,
    pub old_stats: Option<Value>,
    pub new_stats: Option<Value>,
    pub differences: Vec<StatDifference>,
    pub error: Option<String>,
}

impl Journal {
    /// The snapshot to restore: the last one taken.
    pub fn snapshot(&self) -> Option<&str> {
        self.snapshots.last().map(String::as_str)
    }

    pub fn is_done(&self, step: MigrationStep) -> bool {
        self.done.iter().any(|(s, _)| *s == step)
    }

    fn mark(&mut self, step: MigrationStep) {
        if !self.is_done(step) {
            self.done.push((step, crate::ledger::now()));
        }
    }

    /// Forgets the data steps before the switch: after a stop, the old environment served
    /// traffic again, so its data must be frozen and copied anew. The new environment stays as
    /// built (its version is the journal's; to build another, roll back and migrate again).
    fn unfreeze(&mut self) {
        self.done.retain(|(s, _)| matches!(s, MigrationStep::Build | MigrationStep::Switch | MigrationStep::Retire));
    }
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Start { to_version: String },
    Resume,
    Rollback,
}

#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub account: String,
    pub mode: Mode,
    pub terraform: Option<PathBuf>,
}

/// What `migrate` did.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    pub journal: Journal,
    /// Path of the journal (archived under `done/` once finished or rolled back).
    pub journal_path: PathBuf,
    /// Steps done by this run.
    pub ran: Vec<MigrationStep>,
    pub deploys: Vec<DeployReport>,
    /// The old environment was put back into service by this run.
    pub reactivated: bool,
    pub warnings: Vec<String>,
}

impl MigrateReport {
    pub fn succeeded(&self) -> bool {
        matches!(self.journal.status, Status::Finished | Status::RolledBack)
    }
}

/// Journals live in the ledger folder: with the ledger's `switch` records they say which slot
/// runs, so they are shared wherever the ledger is.
fn journal_dir(project: &Project) -> PathBuf {
    project.root.join(&project.file.ledger).join("migrations")
}

fn journal_path(project: &Project, account: &str) -> PathBuf {
    journal_dir(project).join(format!("{account}.json"))
}

/// The migration of `account` that is under way, if any: `(journal path, status line)`.
pub fn in_progress(project: &Project, account: &str) -> Option<String> {
    let path = journal_path(project, account);
    if !path.exists() {
        return None;
    }
    let journal = match read(&path) {
        Ok(journal) => journal,
        Err(e) => {
            return Some(format!(
                "a migration of `{account}` is under way but its journal cannot be read ({e}); repair or remove `{}` once you know the state of both environments",
                project.display(&path)
            ));
        }
    };
    let next = STEPS.iter().find(|s| !journal.is_done(**s)).map_or("none", |s| s.describe());
    Some(format!(
        "a migration of `{account}` to {} is {} (next step: {next}); finish it with `stamp migrate {account} --resume` or undo it with `--rollback` (journal: {})",
        journal.to_version,
        if journal.status == Status::Stopped { "stopped" } else { "under way" },
        project.display(&path)
    ))
}

fn read(path: &Path) -> Result<Journal, String> {
    let text = fs_err::read_to_string(path).map_err(|e| e.to_string())?;
    let journal: Journal =
        serde_json::from_str(&text).map_err(|e| format!("`{}` is not a migration journal: {e}", path.display()))?;
    if journal.format != FORMAT {
        return Err(format!("`{}` has format `{}`, expected `{FORMAT}`", path.display(), journal.format));
    }
    Ok(journal)
}

/// Writes the journal atomically (temporary file, fsync, rename).
fn write(path: &Path, journal: &Journal) -> Result<(), String> {
    let text = serde_json::to_string_pretty(journal).expect("journals serialise") + "\n";
    crate::fsio::write_atomic(path, text.as_bytes()).map_err(|e| e.to_string())
}

/// `stamp migrate`.
pub fn migrate(
    root: &Path,
    options: &MigrateOptions,
    approver: &dyn Approver,
    progress: &dyn Progress,
) -> Result<MigrateReport, Report> {
    let workspace = Workspace::load(root)?;
    let project = &workspace.project;
    let account = workspace.account(&options.account)?;
    if let Some(problem) = super::ledger_problem(project, account) {
        return Err(refuse(problem));
    }
    let name = account.name.clone();
    let _lock = AccountLock::acquire(&project.root.join(".stamp/locks/migrations").join(format!("{name}.lock")), &name)
        .map_err(refuse)?;
    let path = journal_path(project, &name);
    let existing = path.exists().then(|| read(&path)).transpose().map_err(refuse)?;
    let journal = match (&options.mode, existing) {
        (Mode::Start { .. }, Some(_)) => return Err(refuse(in_progress(project, &name).unwrap_or_default())),
        (Mode::Start { to_version }, None) => {
            crate::version::validate(to_version).map_err(refuse)?;
            let archetype = &project.archetypes[&account.archetype];
            // Without availability the old environment keeps taking writes after its snapshot.
            archetype
                .file
                .data
                .require(&archetype.name, &[Step::Availability, Step::Snapshot, Step::Restore, Step::Stats])
                .map_err(refuse)?;
            let journal = Journal {
                format: FORMAT.into(),
                account: name.clone(),
                from_slot: account.slot,
                to_slot: account.slot.other(),
                to_version: to_version.clone(),
                started: crate::ledger::now(),
                status: Status::Running,
                done: Vec::new(),
                snapshots: Vec::new(),
                old_stats: None,
                new_stats: None,
                differences: Vec::new(),
                error: None,
            };
            write(&path, &journal).map_err(refuse)?;
            journal
        }
        (Mode::Resume | Mode::Rollback, None) => {
            return Err(refuse(format!("no migration of `{name}` is under way (no `{}`)", project.display(&path))));
        }
        (_, Some(mut journal)) => {
            // Killed after recording the switch but before journalling it: the ledger knows.
            if crate::ledger::live_slot(&Ledger::of(project).records(&name)) == journal.to_slot {
                journal.mark(MigrationStep::Switch);
            }
            journal
        }
    };
    let terraform = deploy::locate(options.terraform.as_deref())?;
    let mut run = Migration {
        project,
        account,
        terraform: &terraform,
        approver,
        progress,
        path,
        journal,
        ran: Vec::new(),
        deploys: Vec::new(),
        reactivated: false,
        warnings: workspace.warning_lines(),
    };
    if options.mode == Mode::Rollback {
        run.rollback()?;
    } else {
        run.forward();
    }
    let journal_path = run.archive();
    Ok(MigrateReport {
        journal: run.journal,
        journal_path,
        ran: run.ran,
        deploys: run.deploys,
        reactivated: run.reactivated,
        warnings: run.warnings,
    })
}

struct Migration<'a> {
    project: &'a Project,
    account: &'a Account,
    terraform: &'a crate::terraform::Terraform,
    approver: &'a dyn Approver,
    progress: &'a dyn Progress,
    path: PathBuf,
    journal: Journal,
    ran: Vec<MigrationStep>,
    deploys: Vec<DeployReport>,
    reactivated: bool,
    warnings: Vec<String>,
}

impl Migration<'_> {
    fn old_env(&self) -> Account {
        self.account.in_slot(self.journal.from_slot)
    }

    fn new_env(&self) -> Account {
        self.account.in_slot(self.journal.to_slot)
    }

    /// Writes the journal; a migration that cannot journal its steps must not go on.
    fn save(&mut self) -> Result<(), String> {
        write(&self.path, &self.journal).map_err(|e| format!("cannot write the migration journal: {e}"))
    }

    /// Saves, or notes that it could not (when stopping anyway).
    fn save_or_warn(&mut self) {
        if let Err(e) = self.save() {
            self.warnings.push(e);
        }
    }

    /// Runs the steps not yet done; on an error before the switch, the old environment is put
    /// back into service and the migration stops.
    fn forward(&mut self) {
        if self.journal.status == Status::Stopped && !self.journal.is_done(MigrationStep::Switch) {
            // The old environment served traffic again since: its data must be frozen and
            // copied anew.
            self.journal.unfreeze();
        }
        self.journal.status = Status::Running;
        self.journal.error = None;
        self.journal.differences.clear();
        let mut result = self.save();
        for step in STEPS {
            if result.is_err() {
                break;
            }
            if self.journal.is_done(step) {
                continue;
            }
            result = self.step(step).and_then(|()| {
                self.journal.mark(step);
                self.ran.push(step);
                self.save()
            });
        }
        match result {
            Ok(()) => {
                self.journal.status = Status::Finished;
                self.save_or_warn();
            }
            Err(e) => {
                self.journal.error = Some(e);
                self.journal.status = Status::Stopped;
                // Stopped is journalled before the old environment serves again, so a kill in
                // between never resumes from a snapshot older than its data.
                self.save_or_warn();
                if !self.journal.is_done(MigrationStep::Switch) {
                    self.reactivate_old();
                    self.save_or_warn();
                }
            }
        }
    }

    /// After an error before the switch: the old environment serves again (running the
    /// availability hook on an environment that never left service changes nothing).
    fn reactivate_old(&mut self) -> bool {
        let old = self.old_env();
        let result = self.side(&old).and_then(|mut side| side.availability("active"));
        match result {
            Ok(_) => {
                self.journal.done.retain(|(s, _)| *s != MigrationStep::Standby);
                self.reactivated = true;
                true
            }
            Err(e) => {
                self.warnings.push(format!(
                    "the old environment `{}` could not be brought back into service: {e}; do it by hand",
                    old.instance()
                ));
                false
            }
        }
    }

    fn side<'s>(&'s self, account: &'s Account) -> Result<DataSide<'s>, String> {
        DataSide::open(self.project, account, self.terraform, self.progress)
    }

    fn step(&mut self, step: MigrationStep) -> Result<(), String> {
        let (old, new) = (self.old_env(), self.new_env());
        match step {
            MigrationStep::Standby => self.side(&old)?.availability("standby").map(|_| ()),
            MigrationStep::Snapshot => {
                let mut side = self.side(&old)?;
                let stats = side.stats()?;
                let id = side.snapshot()?;
                drop(side);
                self.journal.old_stats = Some(stats);
                self.journal.snapshots.push(id);
                Ok(())
            }
            MigrationStep::Build => self.deploy(&new, false),
            MigrationStep::Restore => {
                let snapshot = self.journal.snapshot().ok_or("the journal has no snapshot to restore")?.to_string();
                self.side(&new)?.restore(&snapshot, &self.account.name).map(|_| ())
            }
            MigrationStep::Verify => {
                // The old environment is in standby: its statistics are those of the snapshot.
                let expected = self.side(&old)?.stats()?;
                let found = self.side(&new)?.stats()?;
                self.journal.differences = compare_stats(&expected, &found);
                self.journal.old_stats = Some(expected);
                self.journal.new_stats = Some(found);
                if self.journal.differences.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "the new environment's data differs from the old one's ({}): the migration stopped; both environments and snapshot {} are kept",
                        self.journal.differences.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                        self.journal.snapshot().unwrap_or("-")
                    ))
                }
            }
            MigrationStep::Switch => {
                self.side(&new)?.availability("active")?;
                let ledger = Ledger::of(self.project);
                // The switch names what now runs: the build of the new slot.
                let to = self.journal.to_slot;
                let records = ledger.records(&self.account.name);
                let built = crate::ledger::last_success(&records, to, crate::ledger::Operation::Apply).cloned();
                let (version, environment_version, commit, digest) = built.map_or_else(
                    || (self.journal.to_version.clone(), self.journal.to_version.clone(), String::new(), String::new()),
                    |r| (r.version, r.environment_version, r.commit, r.digest),
                );
                let record = Record {
                    time: crate::ledger::now(),
                    account: self.account.name.clone(),
                    environment: self.account.environment().to_string(),
                    operation: crate::ledger::Operation::Switch,
                    outcome: crate::ledger::Outcome::Succeeded,
                    smoke_tests_passed: None,
                    version,
                    environment_version,
                    commit,
                    digest,
                    who: std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
                    slot: Some(to),
                    created_at: None,
                };
                if let Err(e) = ledger.append(&record) {
                    // Unrecorded, the switch did not happen: the new environment leaves service.
                    let back = self.side(&new).and_then(|mut side| side.availability("standby"));
                    let note = back.err().map(|b| format!("; and it could not be put back to standby: {b}"));
                    return Err(format!("cannot record the switch: {e}{}", note.unwrap_or_default()));
                }
                Ok(())
            }
            MigrationStep::Retire => self.deploy(&old, true),
        }
    }

    /// Applies (or destroys) the account in `slot`'s environment, rendered at the target
    /// version.
    fn deploy(&mut self, account: &Account, destroy: bool) -> Result<(), String> {
        let mut workspace = Workspace::load(&self.project.root).map_err(|r| r.messages())?;
        workspace.set_slot(&account.name, account.slot);
        let work_dir = |w: &Workspace, a: &Account| Dirs::new(&w.project, a).work;
        let checked = validate_and_render_in(
            workspace,
            std::slice::from_ref(&account.name),
            VersionSpec::Release(Some(&self.journal.to_version)),
            &work_dir,
            &super::check::keep,
        )
        .map_err(|r| r.messages())?;
        let session = Session::new(checked, Some(&self.terraform.path)).map_err(|r| r.messages())?;
        // Migrate decides what is safe to destroy: the old slot only after the switch.
        let options = ApplyOptions { confirm: Some(account.name.clone()), ..ApplyOptions::default() };
        let report = if destroy {
            deploy::destroy_session(&session, &options, self.approver, self.progress)
        } else {
            deploy::apply_session(&session, &options, self.approver, self.progress).map_err(|r| r.messages())?
        };
        let succeeded = report.succeeded();
        let reason = report.refused.clone().or_else(|| report.results.iter().find_map(|r| r.error.clone()));
        self.deploys.push(report);
        if succeeded {
            Ok(())
        } else {
            Err(format!(
                "{} of `{}` failed: {}",
                if destroy { "destroying" } else { "building" },
                account.instance(),
                reason.unwrap_or_else(|| "see the report above".into())
            ))
        }
    }

    /// Undoes a migration that has not switched: the new environment is destroyed (the old
    /// one still holds the data) and the old one serves again. Snapshots are kept.
    fn rollback(&mut self) -> Result<(), Report> {
        if self.journal.is_done(MigrationStep::Switch) {
            return Err(refuse(format!(
                "the migration of `{}` has switched to the new environment already: finish it with `--resume`, or migrate again to the old version",
                self.account.name
            )));
        }
        // Journalled first: killed from here on, a resume rebuilds the new environment.
        self.journal
            .done
            .retain(|(s, _)| !matches!(s, MigrationStep::Build | MigrationStep::Restore | MigrationStep::Verify));
        self.journal.status = Status::Stopped;
        self.save().map_err(refuse)?;
        // The old environment serves again before anything is destroyed.
        if !self.reactivate_old() {
            self.journal.error = Some("rollback: the old environment could not be brought back into service".into());
            self.save_or_warn();
            return Ok(());
        }
        // Whatever of the new environment exists (even half-built) is destroyed: the old one
        // holds the data.
        let new = self.new_env();
        if let Err(e) = self.deploy(&new, true) {
            self.journal.error = Some(format!("rollback: {e}"));
            self.save_or_warn();
            return Ok(());
        }
        self.journal.status = Status::RolledBack;
        self.journal.error = None;
        self.save_or_warn();
        Ok(())
    }

    /// A finished or rolled-back journal moves to `done/`; its path.
    fn archive(&mut self) -> PathBuf {
        if !matches!(self.journal.status, Status::Finished | Status::RolledBack) {
            return self.path.clone();
        }
        let stamp: String = self.journal.started.chars().filter(char::is_ascii_alphanumeric).collect();
        let done = journal_dir(self.project).join("done").join(format!("{}-{stamp}.json", self.account.name));
        let moved = fs_err::create_dir_all(done.parent().expect("has a folder"))
            .and_then(|()| fs_err::rename(&self.path, &done));
        match moved {
            Ok(()) => done,
            Err(e) => {
                self.warnings.push(format!("cannot archive the migration journal: {e}"));
                self.path.clone()
            }
        }
    }
}
