//! What planning accounts found: the data of `stamp plan` (and `apply`, `destroy`). Rendered
//! by `report::plan` as terminal text, a pull-request comment and JSON.

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::pipeline::policy::PolicyResult;
use crate::terraform::plan::{Action, PlanSummary};

/// What planning one account gave.
#[derive(Debug, Clone, Serialize)]
pub struct AccountPlan {
    pub account: String,
    pub environment: String,
    pub archetype: String,
    pub protected: bool,
    /// The environment version the plan would deploy (`1.2.0+abc123`).
    pub version: String,
    pub outcome: PlanOutcome,
    /// Transient failures retried, by category (`throttling`, `network`, ...).
    pub retries: BTreeMap<String, u32>,
    /// Wall time of the account's whole run, in milliseconds.
    pub elapsed_ms: u64,
    /// The account's Terraform log, relative to the project.
    pub log: Option<String>,
    /// What the archetype's and the account's policy checks found, in the order they ran
    /// (left out when none is declared).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyResult>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum PlanOutcome {
    /// Terraform planned (possibly no changes).
    Planned { summary: PlanSummary },
    /// Rendering or Terraform failed.
    Failed {
        message: String,
        /// Terraform's error diagnostics or the tail of its output.
        details: Vec<String>,
    },
}

/// The plans of a run, in account order.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    /// `plan` or `destroy`.
    pub operation: String,
    pub accounts: Vec<AccountPlan>,
    /// Problems that did not stop the plan (a damaged ledger record, ...), one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl AccountPlan {
    /// The plan, when Terraform planned (with or without changes).
    pub fn summary(&self) -> Option<&PlanSummary> {
        match &self.outcome {
            PlanOutcome::Planned { summary } => Some(summary),
            PlanOutcome::Failed { .. } => None,
        }
    }

    /// The plan, when it has changes.
    pub fn changes(&self) -> Option<&PlanSummary> {
        self.summary().filter(|summary| summary.has_changes())
    }

    pub fn failed(&self) -> bool {
        matches!(self.outcome, PlanOutcome::Failed { .. })
    }

    /// A policy check failed: a finding no waiver covers, or a policy that gave no findings
    /// (it could not run, timed out, or printed something else). Such an account is not
    /// applied.
    pub fn policy_blocked(&self) -> bool {
        self.policies.iter().any(|p| !p.passed())
    }

    /// Why the account's policy checks block `apply`, one phrase per policy that failed.
    pub fn policy_problems(&self) -> Vec<String> {
        self.policies.iter().filter_map(PolicyResult::problem).collect()
    }
}

impl PlanReport {
    /// Counts over all accounts.
    pub fn totals(&self) -> PlanTotals {
        let mut totals = PlanTotals { accounts: self.accounts.len(), ..PlanTotals::default() };
        for account in &self.accounts {
            if account.policy_blocked() {
                totals.policy_blocked += 1;
            }
            let Some(summary) = account.summary() else {
                totals.failed += 1;
                continue;
            };
            if summary.has_changes() {
                totals.with_changes += 1;
            } else {
                totals.unchanged += 1;
            }
            totals.add += summary.count(Action::Create);
            totals.change += summary.count(Action::Update);
            totals.replace += summary.count(Action::Replace);
            totals.destroy += summary.count(Action::Delete);
            totals.stateful_destroys += summary.stateful_destroys().count();
        }
        totals
    }

    /// The exit code of the run, as `terraform plan -detailed-exitcode` gives it: 1 if any
    /// account failed or failed its policy checks (it could not be applied), else 2 if any
    /// account has changes, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.accounts.iter().any(|a| a.failed() || a.policy_blocked()) {
            1
        } else if self.accounts.iter().any(|account| account.changes().is_some()) {
            2
        } else {
            0
        }
    }
}

/// Counts over a whole report: the `totals` object of [`json`] and the last line of [`text`].
///
/// Resource counts add up the planned accounts only; a failed account has no plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PlanTotals {
    /// Accounts in the report.
    pub accounts: usize,
    /// Accounts whose plan has changes (resources or root outputs).
    pub with_changes: usize,
    /// Accounts planned without changes.
    pub unchanged: usize,
    /// Accounts whose rendering or planning failed.
    pub failed: usize,
    /// Resources to create.
    pub add: usize,
    /// Resources to update in place.
    pub change: usize,
    /// Resources to destroy and create again.
    pub replace: usize,
    /// Resources to destroy.
    pub destroy: usize,
    /// Destroys and replaces of stateful resources: data that would be lost.
    pub stateful_destroys: usize,
    /// Accounts whose policy checks failed (unwaived findings, or a policy error); left out
    /// when there are none.
    #[serde(skip_serializing_if = "is_zero")]
    pub policy_blocked: usize,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(count: &usize) -> bool {
    *count == 0
}
