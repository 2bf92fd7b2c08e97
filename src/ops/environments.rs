//! The environments that migrations and data copies work on, behind one small trait: the
//! steps of a migration or a clone are decided against [`Environments`], so their every
//! order of failure can be tried in a fast table test with environments kept in memory, while
//! [`Live`] runs them for real (data hooks, Terraform).

use std::collections::HashMap;

use serde_json::Value;

use super::Workspace;
use super::check::{Selection, VersionSpec, render_one, validate_and_render};
use super::deploy::{self, ApplyOptions, Approver, DeployReport, Session};
use super::error::OpError;
use crate::config::Account;
use crate::diagnostics::Report;
use crate::pipeline::AccountRun;
use crate::pipeline::account::{Dirs, Progress};
use crate::pipeline::data::{Step, parse_stats, snapshot_id};
use crate::pipeline::hooks::HookEnv;
use crate::terraform::Terraform;

/// Why a step on an environment failed: one line naming the environment, and the diagnostics
/// behind it when there are (a render of the new version that failed: its files, lines and
/// hints), kept whole for the report rather than flattened into the line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    pub message: String,
    pub report: Option<Report>,
}

impl StepError {
    /// `context: <the first error> (<its place>)`, with the diagnostics of `report` kept whole
    /// (the line is what a journal keeps; the report is shown with the run's output).
    pub fn with_report(context: impl Into<String>, report: Report) -> Self {
        let mut message = context.into();
        let first = report.diagnostics.iter().find(|d| d.severity == crate::diagnostics::Severity::Error);
        if let Some(first) = first {
            message = format!("{message}: {}", crate::text::one_line(&first.message));
            if let Some(at) = first.location.as_ref().filter(|l| l.line > 0) {
                message = format!("{message} ({}:{})", crate::text::one_line(&at.file), at.line);
            }
            let more = report.errors().saturating_sub(1);
            if more > 0 {
                message = format!("{message}, and {more} more");
            }
        }
        Self { message, report: Some(report) }
    }
}

impl From<String> for StepError {
    fn from(message: String) -> Self {
        Self { message, report: None }
    }
}

impl From<&str> for StepError {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

/// What migrations and clones do to an environment (an account in one of its slots).
pub trait Environments {
    /// Takes the environment out of service (`active: false`) or puts it back; `false` when
    /// its archetype has no availability hook (there is nothing to switch).
    fn availability(&mut self, env: &Account, active: bool) -> Result<bool, StepError>;
    /// Takes a snapshot of its data; the snapshot's id.
    fn snapshot(&mut self, env: &Account) -> Result<String, StepError>;
    /// Statistics of its data (row counts and the like).
    fn stats(&mut self, env: &Account) -> Result<Value, StepError>;
    /// Restores snapshot `snapshot` of account `of` into it.
    fn restore(&mut self, env: &Account, snapshot: &str, of: &str) -> Result<(), StepError>;
    /// Scrubs personal data from it (after a copy from production).
    fn scrub(&mut self, env: &Account) -> Result<(), StepError>;
    /// Builds (applies) it at `version`.
    fn build(&mut self, env: &Account, version: &str) -> Result<(), StepError>;
    /// Destroys it (its data is elsewhere by then: a migration retires only after its switch).
    fn retire(&mut self, env: &Account, version: &str) -> Result<(), StepError>;
}

/// The real environments of a project: data hooks run in each environment's work folder,
/// builds and retirements are Terraform applies and destroys.
pub struct Live<'a> {
    workspace: &'a Workspace,
    terraform: &'a Terraform,
    approver: &'a dyn Approver,
    progress: &'a dyn Progress,
    /// The hook environment of each environment opened (its outputs), by instance.
    facts: HashMap<String, HookEnv>,
    /// The applies and destroys run, in order.
    pub deploys: Vec<DeployReport>,
}

impl<'a> Live<'a> {
    pub fn new(
        workspace: &'a Workspace,
        terraform: &'a Terraform,
        approver: &'a dyn Approver,
        progress: &'a dyn Progress,
    ) -> Self {
        Self { workspace, terraform, approver, progress, facts: HashMap::new(), deploys: Vec::new() }
    }

    /// Runs data hook `step` in `env`: in its work folder as last deployed from this project
    /// (the hooks' scripts are the deployed version's); only without one is the account
    /// rendered as it is now.
    fn hook(&mut self, env: &Account, step: Step, extra: &[(&str, &str)]) -> Result<String, StepError> {
        let project = &self.workspace.project;
        let name = env.instance();
        let failed = |e: &dyn std::fmt::Display| StepError::from(format!("{name}: {e}"));
        let mut run =
            AccountRun::start(project, env, self.terraform, self.progress, Some(self.workspace.store.as_ref()))
                .map_err(|e| failed(&e.explain()))?;
        if !self.facts.contains_key(&name) {
            if !run.is_prepared() {
                let tree = render_one(self.workspace, &env.name, env.slot, VersionSpec::Release(None))
                    .map_err(|r| StepError::with_report(format!("{name}: cannot render it"), r))?;
                run.prepare(&tree).map_err(|e| failed(&e.explain()))?;
            }
            let facts = run.data_env().map_err(|e| failed(&e.explain()))?;
            self.facts.insert(name.clone(), facts);
        }
        run.run_data(step, &self.facts[&name], extra).map_err(|e| failed(&e))
    }

    /// Applies (or destroys) `env`, rendered at `version`.
    fn deploy(&mut self, env: &Account, version: &str, destroy: bool) -> Result<(), StepError> {
        // What it outputs changes: its hooks' facts are read again.
        self.facts.remove(&env.instance());
        let work_dir = |w: &Workspace, a: &Account| Dirs::new(&w.project, a).work;
        let accounts = [env.name.clone()];
        let what = if destroy { "destroying" } else { "building" };
        let failed = |error: &dyn OpError| {
            StepError::with_report(format!("{what} `{}` failed", env.instance()), error.to_report())
        };
        let checked = validate_and_render(
            self.workspace,
            Selection { accounts: &accounts, slot: Some((&env.name, env.slot)) },
            VersionSpec::Release(Some(version)),
            &work_dir,
            &super::check::keep,
            None,
        )
        .map_err(|e| failed(&e))?;
        let mut session = Session::new(checked, Some(&self.terraform.path)).map_err(|e| failed(&e))?;
        session.by_migration = true;
        // The caller decided what is safe to destroy (a migration: the old slot only after its
        // switch).
        let options = ApplyOptions { confirm: Some(env.name.clone()), ..ApplyOptions::default() };
        let report = if destroy {
            deploy::destroy_session(&session, &options, self.approver, self.progress)
        } else {
            deploy::apply_session(&session, &options, self.approver, self.progress).map_err(|e| failed(&e))?
        };
        let succeeded = report.succeeded();
        let reason = report.refused.clone().or_else(|| report.results.iter().find_map(|r| r.error.clone()));
        self.deploys.push(report);
        if succeeded {
            Ok(())
        } else {
            Err(format!(
                "{what} of `{}` failed: {}",
                env.instance(),
                reason.unwrap_or_else(|| "see the report above".into())
            )
            .into())
        }
    }
}

impl Environments for Live<'_> {
    fn availability(&mut self, env: &Account, active: bool) -> Result<bool, StepError> {
        let archetype = &self.workspace.project.archetypes[&env.archetype];
        if archetype.file.data.availability.is_none() {
            return Ok(false);
        }
        let state = if active { "active" } else { "standby" };
        self.hook(env, Step::Availability, &[("STAMP_AVAILABILITY", state)]).map(|_| true)
    }

    fn snapshot(&mut self, env: &Account) -> Result<String, StepError> {
        let out = self.hook(env, Step::Snapshot, &[])?;
        snapshot_id(&out).map_err(|e| format!("{}: {e}", env.instance()).into())
    }

    fn stats(&mut self, env: &Account) -> Result<Value, StepError> {
        let out = self.hook(env, Step::Stats, &[])?;
        parse_stats(&out).map_err(|e| format!("{}: {e}", env.instance()).into())
    }

    fn restore(&mut self, env: &Account, snapshot: &str, of: &str) -> Result<(), StepError> {
        self.hook(env, Step::Restore, &[("STAMP_SNAPSHOT_ID", snapshot), ("STAMP_SNAPSHOT_ACCOUNT", of)]).map(|_| ())
    }

    fn scrub(&mut self, env: &Account) -> Result<(), StepError> {
        self.hook(env, Step::Scrub, &[]).map(|_| ())
    }

    fn build(&mut self, env: &Account, version: &str) -> Result<(), StepError> {
        self.deploy(env, version, false)
    }

    fn retire(&mut self, env: &Account, version: &str) -> Result<(), StepError> {
        self.deploy(env, version, true)
    }
}
