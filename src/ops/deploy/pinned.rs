//! `stamp apply` and `destroy` of the working tree's accounts, in three passes over them, so a
//! fleet's accounts, trees and locks are never all held at once:
//!
//! 1. every selected account is checked (nothing is planned when one has errors, is in the
//!    middle of a migration, or is protected and not confirmed for `destroy`);
//! 2. each is planned as its tree comes (`--jobs` at once) under its lock, which is let go
//!    once the plan is made: what is kept is the plan's summary and what pins it ([`Pin`]);
//! 3. after protection, policies and approval, each planned account is rendered again and, under
//!    its lock again, applied from that same plan file in that same work folder, or refused
//!    when anything moved since: it renders differently, another run held it, its plan file was
//!    replaced, its state moved on or a migration started. Each outcome goes to the ledger as
//!    it is known, while the account is still held.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use super::{
    AccountResult, ApplyOptions, Approver, DeployError, DeployReport, PlanContext, Stage, deploy_one, destroy_one,
    locate, plan_each, policy_refusal, protection, record_one,
};
use crate::config::Account;
use crate::ledger::Operation;
use crate::ops::Workspace;
use crate::ops::check::{Selection, VersionSpec, validate_and_render, with_jobs};
use crate::ops::plan_report::{AccountPlan, PlanOutcome, PlanReport};
use crate::pipeline::AccountRun;
use crate::pipeline::account::{Dirs, Progress};
use crate::render::Tree;
use crate::terraform::plan::PlanSummary;
use crate::terraform::process::interrupted;

/// What planning one account leaves for applying it once its run (and lock) is let go.
struct Pin {
    tree_digest: String,
    /// Left in the work folder, where the next run that takes the account's lock takes it
    /// away: the account is applied only when no other run held it since (its work folder, what
    /// pre-deploy hooks left there, its plan file and `init` are as this run left them).
    token: String,
    /// The sha256 of the Terraform plan file the plan was read from: the account is applied
    /// only while its plan file is still that one, never a plan another run made meanwhile.
    plan_file: String,
    /// The state's `[lineage, serial]` (`None`: no state yet) the plan was made against: the
    /// account is applied (or its hooks run, or its outcome recorded) only while the state is
    /// that one. Another machine's apply meanwhile makes the plan stale, which Terraform does
    /// not notice in every version when there was no state yet.
    state: Option<(String, u64)>,
}

/// What the checking pass learnt of the selected accounts.
#[derive(Default)]
struct Facts {
    protected: Vec<String>,
    /// Accounts in the middle of a migration (or with a damaged history), with the problem.
    held: Vec<(String, String)>,
}

/// `apply` (`Stage::Deploy`) or `destroy` (`Stage::Destroy`) of the named accounts, or of
/// every account with `--all`, rendered from the working tree.
pub(super) fn apply_or_destroy(
    workspace: &Workspace,
    options: &ApplyOptions,
    stage: Stage,
    approver: &dyn Approver,
    progress: &dyn Progress,
) -> Result<DeployReport, DeployError> {
    let deploy = &options.deploy;
    if deploy.accounts.is_empty() && !deploy.all {
        return Err(DeployError::Usage("name the accounts, or pass `--all`"));
    }
    let named = if deploy.all { Vec::new() } else { deploy.accounts.clone() };
    let selection = Selection::of(&named);
    let work_dir = |w: &Workspace, a: &Account| Dirs::new(&w.project, a).work;
    let store = workspace.store.as_ref();

    // 1. Check.
    let facts = Mutex::new(Facts::default());
    let learn = |account: &Account, _: &Path, _: Tree| {
        let held = crate::ops::history_problem(store, account);
        let mut facts = facts.lock().expect("facts lock");
        if account.is_protected() {
            facts.protected.push(account.name.clone());
        }
        if let Some(problem) = held {
            facts.held.push((account.name.clone(), problem));
        }
        Ok(None)
    };
    let release = VersionSpec::Release(deploy.version.as_deref());
    let checked = validate_and_render(workspace, selection, release, &work_dir, &learn, None)?;
    if checked.has_errors() {
        return Err(DeployError::Invalid(checked.report()));
    }
    let terraform = locate(deploy.terraform.as_deref())?;
    let Facts { mut protected, mut held } = facts.into_inner().expect("facts lock");
    held.sort();
    if let Some((_, problem)) = held.into_iter().next() {
        return Err(DeployError::UnderMigration(problem));
    }
    let mut warnings = crate::ops::warning_lines(&checked.diagnostics);
    let refused = |report: PlanReport, refusal: String| DeployReport {
        warnings: warnings.clone(),
        ..DeployReport::refused(report, refusal)
    };
    let operation = if stage == Stage::Destroy { "destroy" } else { "plan" };
    let plan_report =
        |accounts: Vec<AccountPlan>| PlanReport { operation: operation.into(), accounts, warnings: Vec::new() };
    protected.sort();
    let confirmed = |name: &&String| options.confirm.as_deref() == Some(name.as_str());
    if stage == Stage::Destroy
        && let Some(name) = protected.iter().find(|name| !confirmed(name))
    {
        let refusal =
            format!("account `{name}` is protected: destroying it needs `--confirm {name}`; nothing was destroyed");
        return Ok(refused(plan_report(Vec::new()), refusal));
    }

    // 2. Plan.
    let context = PlanContext {
        project: &workspace.project,
        terraform: &terraform,
        store,
        by_migration: false,
        version: checked.version.environment_version(),
        stage,
        progress,
        read_state: true,
    };
    let (planned, ran) = plan_each(workspace, selection, &context, &checked, deploy.jobs, &pin);
    let (plans, pins): (Vec<AccountPlan>, Vec<Option<Pin>>) = planned.into_iter().unzip();
    let report = plan_report(plans);
    // A file changed since the first pass: the plans made (and hooks run) are shown, and
    // nothing is applied.
    let changed = match ran {
        Ok(ran) if ran.has_errors() => Some(ran.diagnostics),
        Ok(_) => None,
        Err(report) => Some(report.diagnostics),
    };
    if let Some(problems) = changed {
        let errors = crate::ops::diagnostic_lines(&problems, crate::diagnostics::Severity::Error);
        let refusal =
            format!("something changed while the accounts were planned: {}; nothing was applied", errors.join("; "));
        return Ok(refused(report, refusal));
    }

    // Protection, policies and approval, from the plans.
    let refusal = match stage {
        Stage::Destroy => None,
        _ => protection(&report, options.confirm.as_deref(), false).or_else(|| policy_refusal(&report)),
    };
    if let Some(refusal) = refusal {
        return Ok(refused(report, refusal));
    }
    let anything = report.accounts.iter().any(
        |a| matches!(&a.outcome, PlanOutcome::Planned { summary } if stage != Stage::Destroy || summary.has_changes()),
    );
    if anything && let Err(refusal) = approver.approve(&report) {
        return Ok(refused(report, refusal));
    }

    // 3. Apply what was approved.
    let approved: BTreeMap<&str, (&PlanSummary, &Pin)> = report
        .accounts
        .iter()
        .zip(&pins)
        .filter_map(|(plan, pin)| match (&plan.outcome, pin) {
            (PlanOutcome::Planned { summary }, Some(pin)) => Some((plan.account.as_str(), (summary, pin))),
            _ => None,
        })
        .collect();
    let names: Vec<String> = approved.keys().map(|name| (*name).to_string()).collect();
    let done = Mutex::new(Vec::new());
    let mut problems = Vec::new();
    if !names.is_empty() {
        let environment_version = checked.version.environment_version();
        let applying = Applying {
            context: &context,
            version: &checked.version,
            operation: if stage == Stage::Destroy { Operation::Destroy } else { Operation::Apply },
            act: &|run, summary| match stage {
                Stage::Destroy => destroy_one(run, summary),
                _ => deploy_one(run, summary, &environment_version, options),
            },
        };
        let act = |account: &Account, _: &Path, tree: Tree| {
            let Some(&(summary, pin)) = approved.get(account.name.as_str()) else { return Ok(None) };
            let applied = applying.one(account, &tree, pin, summary);
            done.lock().expect("results lock").push(applied);
            Ok(None)
        };
        let selected = Selection::of(&names);
        // Accounts that no longer check cleanly (a file changed since the first pass) are not
        // handed on: they get no result from the pass, and are refused below with its errors.
        let exact = VersionSpec::Exact(checked.version.clone());
        let again = with_jobs(deploy.jobs, || validate_and_render(workspace, selected, exact, &work_dir, &act, None));
        problems = match again {
            Ok(checked) => checked.diagnostics,
            Err(report) => report.diagnostics,
        };
    }
    let mut done = done.into_inner().expect("results lock");
    let mut report = report;
    let mut results = Vec::new();
    let reached: std::collections::BTreeSet<String> = done.iter().map(|(result, ..)| result.account.clone()).collect();
    // Each refused account is told its own errors (in its file), and those of no file.
    let mut errors_in: BTreeMap<Option<&str>, Vec<String>> = BTreeMap::new();
    for d in problems.iter().filter(|d| d.severity == crate::diagnostics::Severity::Error) {
        errors_in.entry(d.location.as_ref().map(|l| l.file.as_str())).or_default().push(crate::ops::diagnostic_line(d));
    }
    let files: BTreeMap<&str, &str> =
        workspace.project.catalog.iter().map(|e| (e.name(), e.display.as_str())).collect();
    for name in names.iter().filter(|name| !reached.contains(*name)) {
        let own = files.get(name.as_str()).and_then(|file| errors_in.get(&Some(*file)));
        let errors: Vec<&str> = errors_in.get(&None).into_iter().chain(own).flatten().map(String::as_str).collect();
        let mut result = AccountResult::new(name);
        result.error = Some(format!(
            "account `{name}` no longer checks cleanly (something changed since it was planned): nothing was changed; {}",
            if errors.is_empty() { format!("see `stamp check {name}`") } else { errors.join("; ") }
        ));
        done.push((result, BTreeMap::new(), None));
    }
    done.sort_by(|a, b| a.0.account.cmp(&b.0.account));
    for (result, retries, warning) in done {
        if let Ok(at) = report.accounts.binary_search_by(|p| p.account.cmp(&result.account)) {
            for (category, count) in retries {
                *report.accounts[at].retries.entry(category).or_default() += count;
            }
        }
        warnings.extend(warning);
        results.push(result);
    }
    Ok(DeployReport { plan: report, refused: None, results, warnings })
}

/// An account's plan, and what pins it when it was made cleanly; its run (and lock) ends here.
fn pin(planned: super::Planned<'_>) -> (AccountPlan, Option<Pin>) {
    let super::Planned { run, mut plan, tree_digest, state } = planned;
    let (PlanOutcome::Planned { .. }, Some(run)) = (&plan.outcome, run) else { return (plan, None) };
    let token = token(&run.account.name);
    let pinned = run.leave_token(&token).and_then(|()| {
        // The plan Terraform wrote, unchanged by the policies that ran on it since.
        let (plan_file, _) = run.plan_file_as_planned()?;
        Ok(Pin { tree_digest, token, plan_file, state })
    });
    match pinned {
        Ok(pin) => (plan, Some(pin)),
        Err(e) => {
            plan.outcome = super::failed(&e);
            (plan, None)
        }
    }
}

/// A value no other run leaves: this process, the time and a count.
fn token(account: &str) -> String {
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!(
        "planned by stamp pid {} at {}.{:09} ({count}) for {account}\n",
        std::process::id(),
        since.as_secs(),
        since.subsec_nanos()
    )
}

/// What applying every approved account shares.
struct Applying<'a> {
    context: &'a PlanContext<'a>,
    version: &'a crate::version::BuildVersion,
    operation: Operation,
    act: &'a (dyn Fn(&mut AccountRun<'_>, &PlanSummary) -> AccountResult + Sync),
}

impl Applying<'_> {
    /// Applies (or destroys) one account from the plan file it was planned into, under its
    /// lock again, when nothing moved since: its result, the retries its run made, and a
    /// warning when its ledger record could not be written. Refused accounts (nothing was
    /// tried) are not recorded.
    fn one(
        &self,
        account: &Account,
        tree: &Tree,
        pin: &Pin,
        summary: &PlanSummary,
    ) -> (AccountResult, BTreeMap<String, u32>, Option<String>) {
        let context = self.context;
        let refused = |error: String| {
            let mut result = AccountResult::new(&account.name);
            result.error = Some(error);
            (result, BTreeMap::new(), None)
        };
        let again = "nothing was changed; plan it again";
        let name = &account.name;
        if interrupted() {
            return refused("interrupted: nothing was changed".into());
        }
        if tree.digest() != pin.tree_digest {
            return refused(format!(
                "account `{name}` renders differently than when it was planned (a file changed meanwhile): {again}"
            ));
        }
        let started =
            AccountRun::start(context.project, account, context.terraform, context.progress, Some(context.store));
        let mut run = match started {
            Ok(run) => run,
            Err(e) => return refused(e.explain()),
        };
        if let Some(problem) = crate::ops::moved_on(context.store, account) {
            return refused(problem);
        }
        if run.found_token() != Some(pin.token.as_str()) {
            return refused(format!("account `{name}`: another run held it since this one planned it: {again}"));
        }
        match run.plan_file_digest() {
            Ok(digest) if digest == pin.plan_file => run.adopt_plan_file(digest),
            Ok(_) => return refused(format!("account `{name}`: its plan file is not the one planned: {again}")),
            Err(e) => return refused(e.explain()),
        }
        match run.state_version() {
            Ok(now) if now == pin.state => {}
            Ok(_) => return refused(format!("the state of account `{name}` changed since it was planned: {again}")),
            Err(e) => return refused(e.explain()),
        }
        let result = (self.act)(&mut run, summary);
        // Recorded while the account is still held, so no run that reads the ledger (which slot
        // is live, when an ephemeral account was made) starts before it.
        let warning = record_one(context.store, self.version, self.operation, account, &result, &pin.tree_digest);
        let retries = std::mem::take(&mut run.retries);
        (result, retries, warning)
    }
}
