//! `stamp migrate ACCOUNT --to-version V`: the new version is built alongside the old one, in
//! the account's other slot, and only retires the old one once the data is proven copied:
//!
//! standby (old) -> snapshot (old) -> build (new) -> restore (new) -> verify (stats equal)
//! -> switch (new is live) -> retire (destroy old).
//!
//! Every step is recorded in the migration's journal, kept by the store beside the ledger, as
//! it completes, so a migration that was interrupted resumes where it stopped (`--resume`,
//! from any machine sharing the store) or is undone (`--rollback`), and a finished step is
//! never run twice. Rules never broken: the old environment is destroyed only after the switch
//! to a new one whose statistics equal the old one's; no snapshot is ever deleted; a
//! statistics mismatch stops the migration with both environments kept; any error before the
//! switch puts the old environment back into service.

use std::path::PathBuf;

use serde::Serialize;

use super::Workspace;
use super::deploy::{self, Approver, DeployError, DeployReport};
use super::environments::{Environments, Live, StepError};
use crate::config::Account;
use crate::diagnostics::Report;
use crate::ledger::journal::{Journal, MigrationStep, STEPS, Status};
use crate::ledger::{Operation, Outcome, Record};
use crate::pipeline::account::{Dirs, Progress};
use crate::pipeline::data::{Step, compare_stats};
use crate::pipeline::lock::AccountLock;
use crate::store::{Store, StoreError};

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
    /// Where the journal is (among the finished ones once finished or rolled back).
    pub journal_place: String,
    /// Steps done by this run.
    pub ran: Vec<MigrationStep>,
    pub deploys: Vec<DeployReport>,
    /// The old environment was put back into service by this run.
    pub reactivated: bool,
    pub warnings: Vec<String>,
    /// The diagnostics behind a step's error (a render of the new version that failed: its
    /// files, lines and hints), kept whole.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Report>,
}

impl MigrateReport {
    pub fn succeeded(&self) -> bool {
        self.journal.is_over()
    }
}

/// What driving a migration did (without the applies, which the environments keep).
#[derive(Debug, Clone)]
pub struct Driven {
    pub journal: Journal,
    pub journal_place: String,
    pub ran: Vec<MigrationStep>,
    pub reactivated: bool,
    pub warnings: Vec<String>,
    /// The diagnostics behind a step's error, kept whole.
    pub details: Vec<Report>,
}

/// Why `migrate` did not run (once running, a failed step stops the migration and is in its
/// report instead).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The account is not there (its diagnostic, whole).
    #[error(transparent)]
    Invalid(Report),
    /// Its ledger is damaged, so which slot is live is not known.
    #[error("{0}")]
    Ledger(String),
    #[error("{0}")]
    Version(String),
    #[error("{0}")]
    NoDataHooks(String),
    /// Another run holds the account (on this machine or, with a shared store, any).
    #[error("{0}")]
    Locked(String),
    /// Refused by the journal: a migration is under way (`--resume`), none is, it has switched
    /// already, or another run took it over.
    #[error("{0}")]
    Journal(String),
    #[error(transparent)]
    Deploy(#[from] DeployError),
}

impl From<Report> for MigrateError {
    fn from(report: Report) -> Self {
        Self::Invalid(report)
    }
}

impl super::error::OpError for MigrateError {
    fn own_code(&self) -> &'static str {
        match self {
            Self::Ledger(_) => "ledger.damaged",
            Self::Locked(_) => "migrate.locked",
            _ => "migrate",
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

/// `stamp migrate`.
pub fn migrate(
    workspace: &Workspace,
    options: &MigrateOptions,
    approver: &dyn Approver,
    progress: &dyn Progress,
) -> Result<MigrateReport, MigrateError> {
    let project = &workspace.project;
    let account = workspace.account(&options.account)?;
    if let Mode::Start { to_version } = &options.mode {
        crate::version::validate(to_version).map_err(MigrateError::Version)?;
        let archetype = &project.archetypes[&account.archetype];
        // Without availability the old environment keeps taking writes after its snapshot.
        archetype
            .file
            .data
            .require(&archetype.name, &[Step::Availability, Step::Snapshot, Step::Restore, Step::Stats])
            .map_err(MigrateError::NoDataHooks)?;
    }
    // Both environments, on this machine and (with a shared store) on every other, for the
    // whole migration: its steps take the same locks again.
    let locks = project.root.join(".stamp/locks");
    let _locks = [
        AccountLock::acquire(&locks.join("migrations").join(format!("{}.lock", account.name)), &account.name),
        AccountLock::acquire(&Dirs::new(project, &account.in_slot(account.slot)).lock, &account.name),
        AccountLock::acquire(&Dirs::new(project, &account.in_slot(account.slot.other())).lock, &account.name),
    ]
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .map_err(MigrateError::Locked)?;
    let _shared = crate::store::lock(workspace.store.as_ref(), &crate::store::account_key(&account.name))
        .map_err(MigrateError::Locked)?;
    // Which slot is live is read again under the lock: another machine may have migrated the
    // account since the project was loaded.
    let mut account = account.clone();
    account.annotate(&workspace.store.history(&account.name).map_err(|e| MigrateError::Journal(e.to_string()))?);
    let account = &account;
    if let Some(problem) = super::ledger_problem(workspace.store.as_ref(), account) {
        return Err(MigrateError::Ledger(problem));
    }
    let terraform = deploy::locate(options.terraform.as_deref())?;
    let mut live = Live::new(workspace, &terraform, approver, progress);
    let driven = drive(workspace.store.as_ref(), account, &mut live, &options.mode).map_err(MigrateError::Journal)?;
    let mut warnings = workspace.warning_lines();
    warnings.extend(driven.warnings);
    Ok(MigrateReport {
        journal: driven.journal,
        journal_place: driven.journal_place,
        ran: driven.ran,
        deploys: live.deploys,
        reactivated: driven.reactivated,
        warnings,
        details: driven.details,
    })
}

/// Starts, resumes or rolls back the migration of `account` (as loaded: its live slot is the
/// one migrated from) against `envs`, journalled in `store`. The caller holds the account's
/// locks. `Err`: refused before anything was done (or the journal was taken over by another
/// run).
pub fn drive(store: &dyn Store, account: &Account, envs: &mut dyn Environments, mode: &Mode) -> Result<Driven, String> {
    let name = &account.name;
    let mut existing = store.journal(name).map_err(|e| e.to_string())?;
    // Ended, but not yet moved among the finished ones (that failed, or was killed): moved now.
    if let Some(stored) = existing.take_if(|stored| stored.journal.is_over()) {
        store.finish_journal(name, stored.revision).map_err(|e| e.to_string())?;
    }
    let (journal, revision) = match (mode, existing) {
        (Mode::Start { .. }, Some(stored)) => return Err(stored.journal.under_way(&store.journal_place(name))),
        (Mode::Start { to_version }, None) => {
            let journal = Journal::start(name, account.slot, to_version);
            let revision = store.put_journal(&journal, None).map_err(|e| e.to_string())?;
            (journal, revision)
        }
        (Mode::Resume | Mode::Rollback, None) => {
            return Err(format!("no migration of `{name}` is under way (no journal in {})", store.describe()));
        }
        (_, Some(stored)) => {
            let mut journal = stored.journal;
            // Killed after recording the switch but before journalling it: the ledger knows.
            let history = store.history(name).map_err(|e| e.to_string())?;
            if crate::ledger::live_slot(&history.records) == journal.to_slot {
                journal.mark(MigrationStep::Switch);
            }
            (journal, stored.revision)
        }
    };
    let mut run = Migration {
        store,
        account,
        envs,
        journal,
        revision,
        ran: Vec::new(),
        reactivated: false,
        warnings: Vec::new(),
        details: Vec::new(),
    };
    if *mode == Mode::Rollback {
        run.rollback()?;
    } else {
        run.forward()?;
    }
    let journal_place = run.finish();
    Ok(Driven {
        journal: run.journal,
        journal_place,
        ran: run.ran,
        reactivated: run.reactivated,
        warnings: run.warnings,
        details: run.details,
    })
}

struct Migration<'a> {
    store: &'a dyn Store,
    account: &'a Account,
    envs: &'a mut dyn Environments,
    journal: Journal,
    /// The journal's revision in the store, as last written by this run.
    revision: u64,
    ran: Vec<MigrationStep>,
    reactivated: bool,
    warnings: Vec<String>,
    details: Vec<Report>,
}

/// Why a migration stopped: a step failed (the migration stops cleanly and the old environment
/// serves again), or its journal could not be kept (nothing more may be done).
enum Stop {
    Step(StepError),
    /// Another run advanced the journal: it is driving now.
    TakenOver(String),
}

impl Migration<'_> {
    fn old_env(&self) -> Account {
        self.account.in_slot(self.journal.from_slot)
    }

    fn new_env(&self) -> Account {
        self.account.in_slot(self.journal.to_slot)
    }

    /// Writes the journal; a migration that cannot journal its steps must not go on.
    fn save(&mut self) -> Result<(), Stop> {
        match self.store.put_journal(&self.journal, Some(self.revision)) {
            Ok(revision) => {
                self.revision = revision;
                Ok(())
            }
            // Another run advanced it, or this run lost its locks: nothing more may be done.
            Err(e @ (StoreError::Conflict { .. } | StoreError::LostLocks)) => Err(Stop::TakenOver(e.to_string())),
            Err(e) => Err(Stop::Step(format!("cannot write the migration journal: {e}").into())),
        }
    }

    /// Saves, or notes that it could not (when stopping anyway).
    fn save_or_warn(&mut self) {
        match self.save() {
            Ok(()) => {}
            Err(Stop::Step(e)) => self.warnings.push(e.message),
            Err(Stop::TakenOver(e)) => self.warnings.push(e),
        }
    }

    /// Runs the steps not yet done; on an error before the switch, the old environment is put
    /// back into service and the migration stops.
    fn forward(&mut self) -> Result<(), String> {
        if self.journal.status == Status::Stopped && !self.journal.is_done(MigrationStep::Switch) {
            // The old environment served traffic again since: its data must be frozen and
            // copied anew.
            self.journal.unfreeze();
        }
        let read = self.journal.clone();
        self.journal.status = Status::Running;
        self.journal.error = None;
        self.journal.differences.clear();
        // Written only when this changed it (a fresh journal is running already).
        let mut result = if self.journal == read { Ok(()) } else { self.save() };
        for step in STEPS {
            if result.is_err() {
                break;
            }
            if self.journal.is_done(step) {
                continue;
            }
            result = self.step(step).map_err(Stop::Step).and_then(|()| {
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
            Err(Stop::TakenOver(e)) => return Err(e),
            Err(Stop::Step(e)) => {
                self.journal.error = Some(e.message);
                self.details.extend(e.report);
                self.journal.status = Status::Stopped;
                // Stopped is journalled before the old environment serves again, so a kill in
                // between never resumes from a snapshot older than its data. A run that lost
                // the journal (or its locks) touches nothing more.
                match self.save() {
                    Ok(()) => {}
                    Err(Stop::TakenOver(taken)) => return Err(taken),
                    Err(Stop::Step(e)) => self.warnings.push(e.message),
                }
                if !self.journal.is_done(MigrationStep::Switch) {
                    self.reactivate_old();
                    self.save_or_warn();
                }
            }
        }
        Ok(())
    }

    /// After an error before the switch: the old environment serves again (running the
    /// availability hook on an environment that never left service changes nothing).
    fn reactivate_old(&mut self) -> bool {
        let old = self.old_env();
        match self.envs.availability(&old, true) {
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

    /// Refuses to `act` on `env` (build, restore into or retire it) when the ledger says it is
    /// the live environment: a migration applies and destroys with the confirmation filled in,
    /// on the word of a journal (a file, a row) that can be edited.
    fn never_live(&self, env: &Account, act: &str) -> Result<(), StepError> {
        let history = self.store.history(&self.account.name).map_err(|e| StepError::from(e.to_string()))?;
        if crate::ledger::live_slot(&history.records) == env.slot {
            return Err(format!(
                "refusing to {act} `{}`: the ledger says it is the live environment (does the journal say otherwise?)",
                env.instance()
            )
            .into());
        }
        Ok(())
    }

    fn retire(&mut self, env: &Account) -> Result<(), StepError> {
        self.never_live(env, "retire")?;
        self.envs.retire(env, &self.journal.to_version)
    }

    fn step(&mut self, step: MigrationStep) -> Result<(), StepError> {
        let (old, new) = (self.old_env(), self.new_env());
        match step {
            MigrationStep::Standby => self.envs.availability(&old, false).map(|_| ()),
            MigrationStep::Snapshot => {
                let stats = self.envs.stats(&old)?;
                let id = self.envs.snapshot(&old)?;
                self.journal.old_stats = Some(stats);
                self.journal.snapshots.push(id);
                Ok(())
            }
            MigrationStep::Build => {
                self.never_live(&new, "build the new version into")?;
                self.envs.build(&new, &self.journal.to_version)
            }
            MigrationStep::Restore => {
                self.never_live(&new, "restore a snapshot into")?;
                let snapshot = self.journal.snapshot().ok_or("the journal has no snapshot to restore")?.to_string();
                self.envs.restore(&new, &snapshot, &self.account.name)
            }
            MigrationStep::Verify => {
                // The old environment is in standby: its statistics are those of the snapshot.
                let expected = self.envs.stats(&old)?;
                let found = self.envs.stats(&new)?;
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
                    )
                    .into())
                }
            }
            MigrationStep::Switch => {
                self.envs.availability(&new, true)?;
                if let Err(e) = self.store.append(&self.switch_record().map_err(StepError::from)?) {
                    // Unrecorded, the switch did not happen: the new environment leaves service.
                    let back = self.envs.availability(&new, false);
                    let note = back.err().map(|b| format!("; and it could not be put back to standby: {b}"));
                    return Err(format!("cannot record the switch: {e}{}", note.unwrap_or_default()).into());
                }
                Ok(())
            }
            MigrationStep::Retire => self.retire(&old),
        }
    }

    /// The ledger record of the switch: it names what now runs, the build of the new slot.
    fn switch_record(&self) -> Result<Record, String> {
        let to = self.journal.to_slot;
        let history = self.store.history(&self.account.name).map_err(|e| e.to_string())?;
        let built = crate::ledger::last_success(&history.records, to, Operation::Apply).cloned();
        let (version, environment_version, commit, digest) = built.map_or_else(
            || (self.journal.to_version.clone(), self.journal.to_version.clone(), String::new(), String::new()),
            |r| (r.version, r.environment_version, r.commit, r.digest),
        );
        Ok(Record {
            time: crate::ledger::now(),
            account: self.account.name.clone(),
            environment: self.account.environment().to_string(),
            operation: Operation::Switch,
            outcome: Outcome::Succeeded,
            smoke_tests_passed: None,
            version,
            environment_version,
            commit,
            digest,
            who: crate::ledger::who(),
            slot: Some(to),
            created_at: None,
        })
    }

    /// Undoes a migration that has not switched: the new environment is destroyed (the old
    /// one still holds the data) and the old one serves again. Snapshots are kept.
    fn rollback(&mut self) -> Result<(), String> {
        if self.journal.is_done(MigrationStep::Switch) {
            return Err(format!(
                "the migration of `{}` has switched to the new environment already: finish it with `--resume`, or migrate again to the old version",
                self.account.name
            ));
        }
        // Journalled first: killed from here on, a resume rebuilds the new environment.
        self.journal
            .done
            .retain(|(s, _)| !matches!(s, MigrationStep::Build | MigrationStep::Restore | MigrationStep::Verify));
        self.journal.status = Status::Stopped;
        match self.save() {
            Ok(()) => {}
            Err(Stop::Step(e)) => return Err(e.message),
            Err(Stop::TakenOver(e)) => return Err(e),
        }
        // The old environment serves again before anything is destroyed.
        if !self.reactivate_old() {
            self.journal.error = Some("rollback: the old environment could not be brought back into service".into());
            self.save_or_warn();
            return Ok(());
        }
        // Whatever of the new environment exists (even half-built) is destroyed: the old one
        // holds the data.
        let new = self.new_env();
        if let Err(e) = self.retire(&new) {
            self.journal.error = Some(format!("rollback: {e}"));
            self.details.extend(e.report);
            self.save_or_warn();
            return Ok(());
        }
        self.journal.status = Status::RolledBack;
        self.journal.error = None;
        self.save_or_warn();
        Ok(())
    }

    /// An ended journal moves among the finished ones; where the journal is now.
    fn finish(&mut self) -> String {
        let place = self.store.journal_place(&self.account.name);
        if !self.journal.is_over() {
            return place;
        }
        match self.store.finish_journal(&self.account.name, self.revision) {
            Ok(done) => done,
            Err(e) => {
                self.warnings.push(format!("cannot move the ended migration journal among the finished ones: {e}"));
                place
            }
        }
    }
}
