//! `stamp plan`, `apply` and `destroy`: each selected account is validated and rendered, then
//! planned by Terraform in its own work folder (in parallel, `-j N`), under its own lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::Workspace;
use super::check::{Checked, Selection, VersionSpec, discard, validate_and_render, with_jobs};
use crate::config::{Account, Project};
use crate::diagnostics::Report;
use crate::ledger::{Operation, Outcome};
use crate::ops::plan_report::{AccountPlan, PlanOutcome, PlanReport};
use crate::pipeline::account::{Dirs, Progress};
use crate::pipeline::hooks::{HookKind, HookResult};
use crate::pipeline::{AccountRun, RunError};
use crate::render::Tree;
use crate::terraform::Terraform;
use crate::terraform::binary::INSTALL_HINT;
use crate::terraform::plan::PlanSummary;
use crate::terraform::process::interrupted;

mod pinned;
mod plan_file;

/// Options shared by plan, apply and destroy.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub accounts: Vec<String>,
    pub all: bool,
    pub version: Option<String>,
    /// `--terraform` or `STAMP_TERRAFORM`.
    pub terraform: Option<PathBuf>,
    /// Accounts run at once.
    pub jobs: usize,
    /// Run from this artifact instead of rendering the working tree.
    pub artifact: Option<PathBuf>,
}

/// Why `plan`, `apply`, `destroy` or `output` did not run.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The selected accounts do not validate or render (their diagnostics, whole).
    #[error(transparent)]
    Invalid(Report),
    /// The command line asks for something these commands do not do.
    #[error("{0}")]
    Usage(&'static str),
    #[error("{0}")]
    TerraformMissing(String),
    #[error("{}", crate::diagnostics::error_chain(.0))]
    Artifact(#[from] crate::artifact::ArtifactError),
    #[error("`{}` is an artifact of account `{account}`, not `{named}`", path.display())]
    ArtifactOfAnother { path: PathBuf, account: String, named: String },
    #[error("the artifact's account `{0}` is not in this project (its archetype's hooks and protection are needed)")]
    ArtifactAccountUnknown(String),
    #[error(
        "`{}` was built for the {built_for} slot of `{account}`, which now runs in its {live} slot (after a migration): build it again",
        path.display()
    )]
    ArtifactSlot { path: PathBuf, account: String, built_for: crate::config::Slot, live: crate::config::Slot },
    /// The account is in the middle of a migration (or its history is damaged).
    #[error("{0}")]
    UnderMigration(String),
    /// A saved plan (`--out`, `--plan`) that cannot be written or used.
    #[error("{reason}")]
    SavedPlan { path: PathBuf, reason: String },
    /// `stamp output` could not read the live state.
    #[error("{0}")]
    Output(String),
    #[error("account `{0}` has never been deployed: its state has no `stamp` output")]
    NeverDeployed(String),
}

impl From<Report> for DeployError {
    fn from(report: Report) -> Self {
        Self::Invalid(report)
    }
}

impl super::error::OpError for DeployError {
    fn own_code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::Usage(_) => "usage",
            Self::TerraformMissing(_) => "terraform.missing",
            Self::Artifact(_)
            | Self::ArtifactOfAnother { .. }
            | Self::ArtifactAccountUnknown(_)
            | Self::ArtifactSlot { .. } => "deploy.artifact",
            Self::UnderMigration(_) => "deploy.migration",
            Self::SavedPlan { .. } => "deploy.saved_plan",
            Self::Output(_) | Self::NeverDeployed(_) => "deploy.output",
        }
    }

    fn wraps(&self) -> Option<&dyn super::error::OpError> {
        match self {
            Self::Invalid(report) => Some(report),
            _ => None,
        }
    }

    fn is_usage(&self) -> bool {
        matches!(self, Self::Usage(_))
    }

    fn hints(&self) -> Vec<String> {
        match self {
            Self::TerraformMissing(_) => vec![INSTALL_HINT.to_string()],
            _ => Vec::new(),
        }
    }
}

/// How the user answers "apply these changes?".
pub trait Approver: Sync {
    /// Shown the plans; `Err` says why not to go on.
    fn approve(&self, report: &PlanReport) -> Result<(), String>;
}

/// A loaded, validated selection of accounts with their rendered trees.
pub(crate) struct Session<'w> {
    pub(crate) checked: Checked<'w>,
    pub(crate) terraform: Terraform,
    /// Run by a migration (or a data copy), which changes accounts under way itself.
    pub(crate) by_migration: bool,
}

/// The Terraform to run (`--terraform`, `STAMP_TERRAFORM`, or on `PATH`).
pub(crate) fn locate(explicit: Option<&Path>) -> Result<Terraform, DeployError> {
    Terraform::locate(explicit).map_err(|e| DeployError::TerraformMissing(e.to_string()))
}

impl<'w> Session<'w> {
    fn open(workspace: &'w Workspace, options: &DeployOptions) -> Result<Self, DeployError> {
        if let Some(path) = &options.artifact {
            return Self::from_artifact(workspace, path, options);
        }
        if options.accounts.is_empty() && !options.all {
            return Err(DeployError::Usage("name the accounts, or pass `--all`"));
        }
        let accounts = if options.all { Vec::new() } else { options.accounts.clone() };
        let work_dir = |w: &Workspace, a: &Account| Dirs::new(&w.project, a).work;
        let checked = validate_and_render(
            workspace,
            Selection::of(&accounts),
            VersionSpec::Release(options.version.as_deref()),
            &work_dir,
            &super::check::keep,
            None,
        )?;
        Self::new(checked, options.terraform.as_deref())
    }

    /// A session of accounts validated and rendered elsewhere (rendered for their work
    /// folders); refused when they have errors.
    pub(crate) fn new(checked: Checked<'w>, terraform: Option<&Path>) -> Result<Self, DeployError> {
        if checked.has_errors() {
            return Err(DeployError::Invalid(checked.report()));
        }
        let terraform = locate(terraform)?;
        Ok(Self { checked, terraform, by_migration: false })
    }

    /// The account of a verified artifact, with the artifact's tree instead of a render of the
    /// working tree: an old version is planned, applied or destroyed exactly as it was built.
    fn from_artifact(workspace: &'w Workspace, path: &Path, options: &DeployOptions) -> Result<Self, DeployError> {
        let artifact = crate::artifact::open(path)?;
        let manifest = &artifact.manifest;
        if let Some(named) = options.accounts.first().filter(|n| **n != manifest.account) {
            return Err(DeployError::ArtifactOfAnother {
                path: path.to_path_buf(),
                account: manifest.account.clone(),
                named: named.clone(),
            });
        }
        let Some(entry) = workspace.project.catalog.iter().find(|e| e.name() == manifest.account) else {
            return Err(DeployError::ArtifactAccountUnknown(manifest.account.clone()));
        };
        let account = workspace.whole(entry)?;
        let built_for = manifest.slot.unwrap_or_default();
        if built_for != account.slot {
            return Err(DeployError::ArtifactSlot {
                path: path.to_path_buf(),
                account: manifest.account.clone(),
                built_for,
                live: account.slot,
            });
        }
        let version = crate::version::BuildVersion {
            version: manifest.version.clone(),
            commit: manifest.commit.clone(),
            dirty: manifest.dirty,
        };
        let trees = vec![(account, Some(artifact.tree()))];
        let terraform = locate(options.terraform.as_deref())?;
        Ok(Self {
            checked: Checked { workspace, version, trees, checked: 1, rendered: 0, diagnostics: Vec::new() },
            terraform,
            by_migration: false,
        })
    }

    /// An account in the middle of a migration is changed only by `stamp migrate`.
    fn refuse_during_migration(&self) -> Result<(), DeployError> {
        for (account, _) in self.targets() {
            if let Some(message) = super::history_problem(self.store(), account) {
                return Err(DeployError::UnderMigration(message));
            }
        }
        Ok(())
    }

    pub(crate) fn project(&self) -> &'w Project {
        &self.checked.workspace.project
    }

    pub(crate) fn store(&self) -> &'w dyn crate::store::Store {
        self.checked.workspace.store.as_ref()
    }

    /// The warnings found while loading and rendering the selected accounts.
    pub(crate) fn warnings(&self) -> Vec<String> {
        super::warning_lines(&self.checked.diagnostics)
    }

    /// The selected accounts with their trees.
    fn targets(&self) -> Vec<(&Account, &Tree)> {
        self.checked.trees.iter().filter_map(|(account, tree)| Some((account.as_ref(), tree.as_ref()?))).collect()
    }
}

/// A started run with its plan.
struct Planned<'a> {
    run: Option<AccountRun<'a>>,
    plan: AccountPlan,
    tree_digest: String,
    /// The state's `[lineage, serial]` read just before a plan that changes the account was
    /// made (`None`: no state yet, or a preview).
    state: Option<(String, u64)>,
}

fn account_plan(
    account: &Account,
    version: &str,
    outcome: PlanOutcome,
    run: Option<&AccountRun<'_>>,
    elapsed: u64,
) -> AccountPlan {
    AccountPlan {
        account: account.name.clone(),
        environment: account.environment().to_string(),
        archetype: account.archetype.clone(),
        protected: account.is_protected(),
        version: version.to_string(),
        outcome,
        retries: run.map(|r| r.retries.clone()).unwrap_or_default(),
        elapsed_ms: elapsed,
        log: run.map(|r| r.project.display(&r.dirs.log)),
        policies: Vec::new(),
    }
}

fn failed(error: &RunError) -> PlanOutcome {
    PlanOutcome::Failed { message: error.to_string(), details: error.details() }
}

/// Starts, prepares and plans every target in parallel.
/// What to plan for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `stamp plan`: nothing runs but Terraform.
    Preview,
    /// `stamp apply`: pre-deploy hooks run first, before anything is planned.
    Deploy,
    Destroy,
}

fn plan_all<'a>(
    session: &'a Session,
    options: &DeployOptions,
    stage: Stage,
    progress: &'a dyn Progress,
) -> Vec<Planned<'a>> {
    let context = PlanContext {
        project: session.project(),
        terraform: &session.terraform,
        store: session.store(),
        by_migration: session.by_migration,
        version: session.checked.version.environment_version(),
        stage,
        progress,
        read_state: false,
    };
    let targets = session.targets();
    progress.start(targets.len());
    with_jobs(options.jobs, || targets.par_iter().map(|(account, tree)| plan_one(&context, account, tree)).collect())
}

/// What every account's plan of one run shares.
struct PlanContext<'a> {
    project: &'a Project,
    terraform: &'a Terraform,
    store: &'a dyn crate::store::Store,
    /// Run by a migration (or a data copy), which changes accounts under way itself.
    by_migration: bool,
    version: String,
    stage: Stage,
    progress: &'a dyn Progress,
    /// Read each account's state version just before planning it ([`Planned::state`]).
    read_state: bool,
}

/// How many plans are made of an account whose state changes while it is planned.
const STATE_TRIES: usize = 3;

/// Starts, prepares and plans one account.
fn plan_one<'a>(context: &PlanContext<'a>, account: &'a Account, tree: &Tree) -> Planned<'a> {
    let PlanContext { project, terraform, store, by_migration, ref version, stage, progress, .. } = *context;
    let start = Instant::now();
    let digest = tree.digest();
    if interrupted() {
        let error = RunError::Interrupted("nothing".into());
        return Planned {
            run: None,
            plan: account_plan(account, version, failed(&error), None, 0),
            tree_digest: digest,
            state: None,
        };
    }
    // A run that changes the account holds its lock in a shared store too, and checks under it
    // that no migration started meanwhile.
    let changes = (stage != Stage::Preview).then_some(store);
    let started = AccountRun::start(project, account, terraform, progress, changes).and_then(|run| {
        let check = changes.filter(|_| !by_migration);
        match check.and_then(|store| super::moved_on(store, account)) {
            Some(problem) => Err(RunError::Refused(problem)),
            None => Ok(run),
        }
    });
    let mut run = match started {
        Ok(run) => run,
        Err(e) => {
            return Planned {
                run: None,
                plan: account_plan(account, version, failed(&e), None, 0),
                tree_digest: digest,
                state: None,
            };
        }
    };
    // Pre-deploy hooks run in this run's freshly written tree, before anything is planned.
    let mut state = None;
    let outcome = match run.write_tree(tree) {
        Err(e) => failed(&e),
        Ok(()) => match (stage == Stage::Deploy).then(|| pre_deploy(&mut run, version)).flatten() {
            Some(hook_failure) => hook_failure,
            None => {
                let planned = run.init().and_then(|()| {
                    if !context.read_state {
                        return run.plan(stage == Stage::Destroy);
                    }
                    // Read before and after planning, until the state held still for a whole
                    // plan: the plan was made against that state (another machine's apply
                    // meanwhile plans the account again rather than refusing it later).
                    for _ in 0..STATE_TRIES {
                        let before = run.state_version()?;
                        let summary = run.plan(stage == Stage::Destroy)?;
                        let after = run.state_version()?;
                        if before == after {
                            state = after;
                            return Ok(summary);
                        }
                    }
                    Err(RunError::Refused(
                        "the state kept changing while the account was planned (another run is applying it): plan it again"
                            .into(),
                    ))
                });
                match planned {
                    Ok(summary) => PlanOutcome::Planned { summary },
                    Err(e) => failed(&e),
                }
            }
        },
    };
    // Policies check what would be applied: the tree, and the plan.
    let policies = if stage != Stage::Destroy && matches!(outcome, PlanOutcome::Planned { .. }) {
        run.run_policies(version)
    } else {
        Vec::new()
    };
    let elapsed = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    progress.phase(&account.name, "planned");
    progress.account_done(&account.name);
    let mut plan = account_plan(account, version, outcome, Some(&run), elapsed);
    plan.policies = policies;
    Planned { run: Some(run), plan, tree_digest: digest, state }
}

/// `stamp plan --all`: every account is checked first (nothing is planned when one has
/// errors), then each is planned as its tree comes (`--jobs` at once) and let go, so a
/// fleet's accounts and trees are never all held.
fn plan_every_account(
    workspace: &Workspace,
    options: &DeployOptions,
    progress: &dyn Progress,
) -> Result<PlanReport, DeployError> {
    let work_dir = |w: &Workspace, a: &Account| Dirs::new(&w.project, a).work;
    let every = Selection::of(&[]);
    let release = VersionSpec::Release(options.version.as_deref());
    let checked = validate_and_render(workspace, every, release, &work_dir, &discard, None)?;
    if checked.has_errors() {
        return Err(DeployError::Invalid(checked.report()));
    }
    let terraform = locate(options.terraform.as_deref())?;
    let context = PlanContext {
        project: &workspace.project,
        terraform: &terraform,
        store: workspace.store.as_ref(),
        by_migration: false,
        version: checked.version.environment_version(),
        stage: Stage::Preview,
        progress,
        read_state: false,
    };
    let (plans, ran) = plan_each(workspace, every, &context, &checked, options.jobs, &|planned| (planned.plan, ()));
    // An account file changed since the first pass.
    let ran = ran?;
    if ran.has_errors() {
        return Err(DeployError::Invalid(ran.report()));
    }
    let accounts = plans.into_iter().map(|(plan, ())| plan).collect();
    Ok(PlanReport { operation: "plan".into(), accounts, warnings: super::warning_lines(&checked.diagnostics) })
}

/// Plans each selected account (in its work folder) as its tree comes, `jobs` at once, once a
/// checking pass (`checked`) found them clean: `keep` makes each plan into what is kept of it,
/// while its run still holds the account. Sorted by account, with the pass's own check: errors
/// there mean a file changed since the checking pass.
fn plan_each<'w, T: Send>(
    workspace: &'w Workspace,
    selection: Selection<'_>,
    context: &PlanContext<'_>,
    checked: &Checked<'_>,
    jobs: usize,
    keep: &(dyn Fn(Planned<'_>) -> (AccountPlan, T) + Sync),
) -> (Vec<(AccountPlan, T)>, Result<Checked<'w>, Report>) {
    let work_dir = |w: &Workspace, a: &Account| Dirs::new(&w.project, a).work;
    context.progress.start(checked.checked);
    let kept = std::sync::Mutex::new(Vec::new());
    let plan = |account: &Account, _: &Path, tree: Tree| {
        let one = keep(plan_one(context, account, &tree));
        kept.lock().expect("plans lock").push(one);
        Ok(None)
    };
    let exact = VersionSpec::Exact(checked.version.clone());
    let ran = with_jobs(jobs, || validate_and_render(workspace, selection, exact, &work_dir, &plan, None));
    let mut kept = kept.into_inner().expect("plans lock");
    kept.sort_by(|a, b| a.0.account.cmp(&b.0.account));
    (kept, ran)
}

/// Runs the pre-deploy hooks; the failed outcome if one fails.
fn pre_deploy(run: &mut AccountRun<'_>, version: &str) -> Option<PlanOutcome> {
    let hooks = run.hooks();
    let env = run.hook_env(version, &BTreeMap::new());
    let results = run.run_hooks(HookKind::PreDeploy, hooks.pre_deploy.as_deref().unwrap_or_default(), &env);
    results.iter().find(|h| !h.passed).map(|failed| PlanOutcome::Failed {
        message: format!("pre-deploy hook `{}` failed: nothing was planned", failed.name),
        details: failed.output.lines().map(str::to_string).collect(),
    })
}

/// `stamp plan`.
pub fn plan(
    workspace: &Workspace,
    options: &DeployOptions,
    save: Option<&Path>,
    progress: &dyn Progress,
) -> Result<PlanReport, DeployError> {
    const ONE: &str = "`--out` saves the plan of exactly one account";
    if save.is_some() && (options.all || options.accounts.len() != 1) {
        return Err(DeployError::Usage(ONE));
    }
    if options.all && options.artifact.is_none() {
        return plan_every_account(workspace, options, progress);
    }
    let session = Session::open(workspace, options)?;
    let mut planned = plan_all(&session, options, Stage::Preview, progress);
    if let Some(path) = save {
        let [one] = planned.as_mut_slice() else {
            return Err(DeployError::Usage(ONE));
        };
        if let (Some(run), PlanOutcome::Planned { .. }) = (one.run.as_mut(), &one.plan.outcome) {
            save_plan(run, &one.tree_digest, &one.plan.version, path)
                .map_err(|reason| DeployError::SavedPlan { path: path.to_path_buf(), reason })?;
        }
    }
    Ok(PlanReport {
        operation: "plan".into(),
        accounts: planned.into_iter().map(|p| p.plan).collect(),
        warnings: session.warnings(),
    })
}

/// What applying (or destroying) one account did.
#[derive(Debug, Clone, Serialize)]
pub struct AccountResult {
    pub account: String,
    /// Terraform applied the plan.
    pub applied: bool,
    pub hooks: Vec<HookResult>,
    /// What was done after a failed smoke test (`destroyed`, `kept (--keep-on-failure)`).
    pub cleanup: Option<String>,
    pub error: Option<String>,
    /// How the run recovered from transient failures of `apply` (planned again, applied the
    /// rest).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recovered: Vec<String>,
}

impl AccountResult {
    fn new(account: &str) -> Self {
        Self {
            account: account.to_string(),
            applied: false,
            hooks: Vec::new(),
            cleanup: None,
            error: None,
            recovered: Vec::new(),
        }
    }

    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.hooks.iter().all(|h| h.passed)
    }
}

/// What `apply` or `destroy` did.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub plan: PlanReport,
    /// Why nothing was applied (refused by protection, not approved), if so.
    pub refused: Option<String>,
    pub results: Vec<AccountResult>,
    /// Problems that did not stop the run (e.g. an unwritable ledger).
    pub warnings: Vec<String>,
}

impl DeployReport {
    /// Nothing was applied, for `reason`.
    fn refused(plan: PlanReport, reason: String) -> Self {
        Self { plan, refused: Some(reason), results: Vec::new(), warnings: Vec::new() }
    }

    pub fn succeeded(&self) -> bool {
        self.refused.is_none()
            && self.results.iter().all(AccountResult::succeeded)
            && !self.plan.accounts.iter().any(|a| matches!(a.outcome, PlanOutcome::Failed { .. }))
    }
}

/// Options of `apply` and `destroy`.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    pub deploy: DeployOptions,
    /// `--confirm <account>`: needed to destroy, or destroy data of, a protected account.
    pub confirm: Option<String>,
    /// Keep an ephemeral account whose smoke tests failed.
    pub keep_on_failure: bool,
    /// Apply this saved plan instead of planning.
    pub saved_plan: Option<PathBuf>,
}

/// `stamp apply`: plan, check protection, ask, apply exactly that plan, post-deploy hooks,
/// smoke tests, and clean up an ephemeral account whose smoke tests fail.
pub fn apply(
    workspace: &Workspace,
    options: &ApplyOptions,
    approver: &dyn Approver,
    progress: &dyn Progress,
) -> Result<DeployReport, DeployError> {
    let mut deploy = options.deploy.clone();
    if let Some(path) = &options.saved_plan
        && deploy.accounts.is_empty()
        && !deploy.all
    {
        let saved_plan = |reason: String| DeployError::SavedPlan { path: path.clone(), reason };
        let text = read_saved_plan(path).map_err(saved_plan)?;
        let saved: SavedPlan = serde_json::from_str(&text)
            .map_err(|e| saved_plan(format!("`{}` is not a saved Stamp plan: {e}", path.display())))?;
        deploy.accounts = vec![saved.account];
    }
    if options.saved_plan.is_none() && deploy.artifact.is_none() {
        return pinned::apply_or_destroy(workspace, options, Stage::Deploy, approver, progress);
    }
    let session = Session::open(workspace, &deploy)?;
    session.refuse_during_migration()?;
    apply_session(&session, options, approver, progress)
}

/// `apply` of an opened session.
pub(crate) fn apply_session(
    session: &Session,
    options: &ApplyOptions,
    approver: &dyn Approver,
    progress: &dyn Progress,
) -> Result<DeployReport, DeployError> {
    let mut planned = match &options.saved_plan {
        Some(path) => vec![
            load_saved_plan(session, path, progress)
                .map_err(|reason| DeployError::SavedPlan { path: path.clone(), reason })?,
        ],
        None => plan_all(session, &options.deploy, Stage::Deploy, progress),
    };
    let report = PlanReport {
        operation: "plan".into(),
        accounts: planned.iter().map(|p| p.plan.clone()).collect(),
        warnings: Vec::new(),
    };
    if let Some(refusal) = protection(&report, options.confirm.as_deref(), false) {
        return Ok(DeployReport::refused(report, refusal));
    }
    if let Some(refusal) = policy_refusal(&report) {
        return Ok(DeployReport::refused(report, refusal));
    }
    let anything = report.accounts.iter().any(|a| matches!(&a.outcome, PlanOutcome::Planned { .. }));
    if anything && let Err(refusal) = approver.approve(&report) {
        return Ok(DeployReport::refused(report, refusal));
    }
    let version = session.checked.version.environment_version();
    let results =
        for_each_planned(&mut planned, options.deploy.jobs, |run, summary| deploy_one(run, summary, &version, options));
    for p in &mut planned {
        if let Some(run) = &p.run {
            p.plan.retries.clone_from(&run.retries);
        }
    }
    let digests: BTreeMap<String, String> =
        planned.iter().map(|p| (p.plan.account.clone(), p.tree_digest.clone())).collect();
    // Recorded while the runs still hold their accounts.
    let mut warnings = session.warnings();
    warnings.extend(record(session, Operation::Apply, &results, &digests));
    let plan = PlanReport {
        operation: "plan".into(),
        accounts: planned.into_iter().map(|p| p.plan).collect(),
        warnings: Vec::new(),
    };
    Ok(DeployReport { plan, refused: None, results, warnings })
}

/// Runs `act` on every account that planned cleanly, `jobs` at a time; after Ctrl-C nothing
/// new starts.
fn for_each_planned<'a>(
    planned: &mut [Planned<'a>],
    jobs: usize,
    act: impl Fn(&mut AccountRun<'a>, &PlanSummary) -> AccountResult + Sync,
) -> Vec<AccountResult> {
    with_jobs(jobs, || {
        planned
            .par_iter_mut()
            .filter_map(|p| {
                let PlanOutcome::Planned { summary } = &p.plan.outcome else { return None };
                let run = p.run.as_mut()?;
                if interrupted() {
                    let mut result = AccountResult::new(&run.account.name);
                    result.error = Some("interrupted: nothing was changed".into());
                    return Some(result);
                }
                Some(act(run, summary))
            })
            .collect()
    })
}

/// Apply, post-deploy hooks, smoke tests, and cleanup of a failed ephemeral account.
fn deploy_one(run: &mut AccountRun<'_>, summary: &PlanSummary, version: &str, options: &ApplyOptions) -> AccountResult {
    let mut result = AccountResult::new(&run.account.name);
    if summary.has_changes() {
        match run.apply_approved("apply", summary, false, Some(version)) {
            Ok(recovered) => result.recovered = recovered,
            Err(e) => {
                result.error = Some(e.explain());
                return result;
            }
        }
        result.applied = true;
    }
    let hooks = run.hooks();
    let post = hooks.post_deploy.as_deref().unwrap_or_default();
    let smoke = hooks.smoke_tests.as_deref().unwrap_or_default();
    if post.is_empty() && smoke.is_empty() {
        return result;
    }
    let outputs = match run.outputs() {
        Ok(outputs) => outputs,
        Err(e) => {
            result.error = Some(e.explain());
            return result;
        }
    };
    let env = run.hook_env(version, &outputs);
    result.hooks = run.run_hooks(HookKind::PostDeploy, post, &env);
    if result.hooks.iter().all(|h| h.passed) {
        result.hooks.extend(run.run_smoke_tests(smoke, &env));
    }
    let smoke_failed = result.hooks.iter().any(|h| !h.passed && h.kind == HookKind::SmokeTest);
    let ephemeral = run.account.is_ephemeral();
    if smoke_failed && ephemeral {
        let name = run.account.name.clone();
        result.cleanup = Some(if options.keep_on_failure {
            "kept for inspection (--keep-on-failure)".to_string()
        } else if run.account.is_protected() {
            // A protected account is destroyed only by a destroy `--confirm` names it for: not
            // by a failed smoke test (a `--confirm` given to this apply approved what its plan
            // showed, never a destroy of the whole account).
            format!("kept: the account is protected (`stamp destroy {name} --confirm {name}` destroys it)")
        } else {
            match run.plan(true).and_then(|cleanup| run.apply_approved("destroy (cleanup)", &cleanup, true, None)) {
                Ok(_) => "destroyed: the ephemeral account's smoke tests failed".to_string(),
                Err(e) => format!("cleanup failed: {}", e.explain()),
            }
        });
    }
    result
}

/// A protected account may not lose stateful resources (or be destroyed) unless `--confirm`
/// names it.
fn protection(report: &PlanReport, confirm: Option<&str>, destroying: bool) -> Option<String> {
    for account in &report.accounts {
        let PlanOutcome::Planned { summary } = &account.outcome else { continue };
        if !account.protected || confirm == Some(account.account.as_str()) {
            continue;
        }
        if destroying {
            return Some(format!(
                "account `{}` is protected: destroying it needs `--confirm {}`",
                account.account, account.account
            ));
        }
        let lost: Vec<String> =
            summary.stateful_destroys().map(|c| format!("`{}` ({})", c.address, c.action.verb())).collect();
        if !lost.is_empty() {
            return Some(format!(
                "account `{}` is protected and this plan would destroy stateful resources: {}; nothing was applied (pass `--confirm {}` if that is really intended)",
                account.account,
                lost.join(", "),
                account.account
            ));
        }
        // Moved where Stamp does not know it holds data, a later plan could replace it unasked.
        let unprotected: Vec<String> =
            summary.changes.iter().filter(|c| c.unprotected_move).map(|c| format!("`{}`", c.address)).collect();
        if !unprotected.is_empty() {
            return Some(format!(
                "account `{}` is protected and this plan moves stateful resources to {}, which the archetype does not list as stateful: once moved they would lose their protection; list the new addresses in `stateful_resources` (or pass `--confirm {}`)",
                account.account,
                unprotected.join(", "),
                account.account
            ));
        }
    }
    None
}

/// Accounts whose policy checks failed are not applied, and neither is anything else of the
/// run: what is applied together was approved together.
fn policy_refusal(report: &PlanReport) -> Option<String> {
    let blocked: Vec<String> = report
        .accounts
        .iter()
        .filter(|a| a.policy_blocked())
        .map(|a| format!("account `{}`: {}", a.account, a.policy_problems().join("; ")))
        .collect();
    (!blocked.is_empty()).then(|| {
        format!(
            "policy checks failed, so nothing was applied: {}; fix the findings, or waive each in the account's `policy_waivers:` with a reason",
            blocked.join("; ")
        )
    })
}

/// `stamp destroy`: protected accounts need `--confirm <account>`; others an approval.
pub fn destroy(
    workspace: &Workspace,
    options: &ApplyOptions,
    approver: &dyn Approver,
    progress: &dyn Progress,
) -> Result<DeployReport, DeployError> {
    if options.deploy.artifact.is_none() {
        return pinned::apply_or_destroy(workspace, options, Stage::Destroy, approver, progress);
    }
    let session = Session::open(workspace, &options.deploy)?;
    session.refuse_during_migration()?;
    Ok(destroy_session(&session, options, approver, progress))
}

/// `destroy` of an opened session.
pub(crate) fn destroy_session(
    session: &Session,
    options: &ApplyOptions,
    approver: &dyn Approver,
    progress: &dyn Progress,
) -> DeployReport {
    // Refuse protected accounts before touching anything.
    let unconfirmed: Vec<&str> = session
        .targets()
        .iter()
        .filter(|(a, _)| a.is_protected() && options.confirm.as_deref() != Some(a.name.as_str()))
        .map(|(a, _)| a.name.as_str())
        .collect();
    if let Some(name) = unconfirmed.first() {
        let empty = PlanReport { operation: "destroy".into(), accounts: Vec::new(), warnings: Vec::new() };
        let refusal =
            format!("account `{name}` is protected: destroying it needs `--confirm {name}`; nothing was destroyed");
        return DeployReport::refused(empty, refusal);
    }
    let mut planned = plan_all(session, &options.deploy, Stage::Destroy, progress);
    let report = PlanReport {
        operation: "destroy".into(),
        accounts: planned.iter().map(|p| p.plan.clone()).collect(),
        warnings: Vec::new(),
    };
    let anything =
        report.accounts.iter().any(|a| matches!(&a.outcome, PlanOutcome::Planned { summary } if summary.has_changes()));
    if anything && let Err(refusal) = approver.approve(&report) {
        return DeployReport::refused(report, refusal);
    }
    let results = for_each_planned(&mut planned, options.deploy.jobs, destroy_one);
    let digests: BTreeMap<String, String> =
        planned.iter().map(|p| (p.plan.account.clone(), p.tree_digest.clone())).collect();
    let mut warnings = session.warnings();
    warnings.extend(record(session, Operation::Destroy, &results, &digests));
    DeployReport { plan: report, refused: None, results, warnings }
}

/// Destroys what the approved plan destroys.
fn destroy_one(run: &mut AccountRun<'_>, summary: &PlanSummary) -> AccountResult {
    let mut result = AccountResult::new(&run.account.name);
    if summary.has_changes() {
        match run.apply_approved("destroy", summary, true, None) {
            Ok(recovered) => {
                result.applied = true;
                result.recovered = recovered;
            }
            Err(e) => result.error = Some(e.explain()),
        }
    }
    result
}

/// A saved plan: `stamp plan ACCOUNT --out FILE`, applied later by `stamp apply --plan FILE`.
/// What the plan will do is read from the Terraform plan file in it when it is applied, never
/// from anything else in the file (which anyone can edit). The plan file holds the values of
/// Terraform variables in clear, so the saved plan is written readable by its owner only.
#[derive(Debug, Serialize, Deserialize)]
struct SavedPlan {
    format: String,
    account: String,
    environment_version: String,
    /// sha256 of the rendered tree the plan was made from.
    tree_digest: String,
    /// The Terraform plan file, base64.
    plan_file: String,
}

const SAVED_PLAN_FORMAT: &str = "stamp-plan/3";
/// Saved by earlier Stamps: their `summary` (1) and `state` (2) fields are ignored like any
/// other extra field (the state a plan was made against is read from its plan file).
const EARLIER_SAVED_PLAN_FORMATS: [&str; 2] = ["stamp-plan/1", "stamp-plan/2"];

fn save_plan(run: &mut AccountRun<'_>, digest: &str, version: &str, path: &Path) -> Result<(), String> {
    use base64::Engine as _;
    // The plan Terraform wrote, unchanged by the policies that ran on it since.
    let (_, bytes) = run.plan_file_as_planned().map_err(|e| e.explain())?;
    let saved = SavedPlan {
        format: SAVED_PLAN_FORMAT.into(),
        account: run.account.name.clone(),
        environment_version: version.to_string(),
        tree_digest: digest.to_string(),
        plan_file: base64::engine::general_purpose::STANDARD.encode(bytes),
    };
    let text = serde_json::to_string_pretty(&saved).expect("plans serialise") + "\n";
    crate::fsio::write_atomic_with(path, text.as_bytes(), crate::fsio::Mode::Private).map_err(|e| e.to_string())
}

/// The text of the saved plan at `path`: a plain file (never a FIFO, whose reading could wait
/// for ever) of at most 256 MiB (it is held in memory, with its plan file decoded).
fn read_saved_plan(path: &Path) -> Result<String, String> {
    let bytes = crate::fsio::read_plain(path, 256 << 20).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| format!("`{}` is not a saved Stamp plan: it is not UTF-8", path.display()))
}

fn load_saved_plan<'a>(session: &'a Session, path: &Path, progress: &'a dyn Progress) -> Result<Planned<'a>, String> {
    use base64::Engine as _;
    let text = read_saved_plan(path)?;
    let saved: SavedPlan =
        serde_json::from_str(&text).map_err(|e| format!("`{}` is not a saved Stamp plan: {e}", path.display()))?;
    if saved.format != SAVED_PLAN_FORMAT && !EARLIER_SAVED_PLAN_FORMATS.contains(&saved.format.as_str()) {
        return Err(format!("`{}` has format `{}`, expected `{SAVED_PLAN_FORMAT}`", path.display(), saved.format));
    }
    let targets = session.targets();
    let [(account, tree)] = targets.as_slice() else {
        return Err("`--plan` applies the plan of exactly one account".into());
    };
    if saved.account != account.name {
        return Err(format!(
            "the saved plan was made for account `{}`, not `{}`; refusing to apply it",
            saved.account, account.name
        ));
    }
    let digest = tree.digest();
    if digest != saved.tree_digest {
        return Err(format!(
            "the saved plan was made from different rendered files (version {}) than account `{}` renders now (version {}); plan again",
            saved.environment_version,
            account.name,
            session.checked.version.environment_version()
        ));
    }
    let mut run = AccountRun::start(session.project(), account, &session.terraform, progress, Some(session.store()))
        .map_err(|e| e.to_string())?;
    if let Some(problem) = super::moved_on(session.store(), account) {
        return Err(problem);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&saved.plan_file)
        .map_err(|e| format!("corrupt plan file: {e}"))?;
    // Terraform applies the plan file's own configuration to the backend and state it was made
    // against, whatever the file around it says: both must be this account's.
    let planned = plan_file::PlanFile::read(&bytes)
        .map_err(|e| format!("cannot read the saved plan's Terraform plan file: {e}"))?;
    run.prepare(tree).map_err(|e| e.explain())?;
    // The configuration Terraform will apply is the work folder's: the tree the policies check,
    // and the modules `init` installed for it.
    if let Some(difference) =
        planned.differs_from(&run.dirs.work, &run.dirs.data).or_else(|| planned.backend_differs(&run.dirs.data))
    {
        return Err(format!(
            "the saved plan does not apply what account `{}` renders now: {difference}; plan again",
            account.name
        ));
    }
    let stale = || {
        format!(
            "the saved plan is stale: the state of account `{}` changed since it was made; plan again",
            account.name
        )
    };
    match run.state_version().map_err(|e| e.explain())? {
        Some((lineage, serial)) if lineage == planned.lineage => {
            if serial != planned.serial {
                return Err(stale());
            }
        }
        // Made before there was a state: Terraform checks no lineage then, so Stamp does.
        None if planned.lineage.is_empty() && planned.serial == 0 && planned.resources == 0 => {}
        // Made before the account had a state (its first apply has a lineage of its own).
        Some(_) if planned.lineage.is_empty() && planned.resources == 0 => return Err(stale()),
        _ => {
            return Err(format!(
                "the saved plan was made against another state than account `{}` has (another account's?); refusing to apply it",
                account.name
            ));
        }
    }
    crate::fsio::write_atomic_with(&run.dirs.plan_file, &bytes, crate::fsio::Mode::Private)
        .map_err(|e| e.to_string())?;
    run.adopt_plan_file(crate::artifact::sha256_hex(&bytes));
    // What the plan will do, from Terraform's reading of the plan file itself: protection and
    // the approval prompt are decided from this.
    let json = run.plan_json().map_err(|e| format!("cannot read the saved plan: {}", e.explain()))?;
    let archetype = run.archetype;
    let summary = crate::terraform::plan_json::summary(&json, &|t, a| archetype.is_stateful(t, a))
        .map_err(|e| format!("cannot read the saved plan: {e}"))?;
    let policies = run.run_policies(&saved.environment_version);
    let mut plan = account_plan(account, &saved.environment_version, PlanOutcome::Planned { summary }, Some(&run), 0);
    plan.policies = policies;
    Ok(Planned { run: Some(run), plan, tree_digest: digest, state: None })
}

/// `stamp output`: the `stamp` metadata output of the account's live state.
pub fn output(
    workspace: &Workspace,
    options: &DeployOptions,
    progress: &dyn Progress,
) -> Result<serde_json::Value, DeployError> {
    let session = Session::open(workspace, options)?;
    let targets = session.targets();
    let [(account, tree)] = targets.as_slice() else {
        return Err(DeployError::Usage("`stamp output` takes exactly one account"));
    };
    let failure = |e: &RunError| DeployError::Output(e.explain());
    let mut run =
        AccountRun::start(session.project(), account, &session.terraform, progress, None).map_err(|e| failure(&e))?;
    run.prepare(tree).map_err(|e| failure(&e))?;
    let outputs = run.outputs().map_err(|e| failure(&e))?;
    outputs.get("stamp").cloned().ok_or_else(|| DeployError::NeverDeployed(account.name.clone()))
}

/// What `stamp doctor` found.
#[derive(Debug, Clone, Serialize)]
pub struct Doctor {
    pub terraform: Option<String>,
    pub flavor: Option<String>,
    pub version: Option<String>,
    pub supported: bool,
    pub problem: Option<String>,
}

/// `stamp doctor`: which Terraform is used, and whether it is supported.
pub fn doctor(explicit: Option<&Path>) -> Doctor {
    match Terraform::locate(explicit) {
        Err(e) => Doctor {
            terraform: None,
            flavor: None,
            version: None,
            supported: false,
            problem: Some(format!("{e}; {INSTALL_HINT}")),
        },
        Ok(tf) => match tf.version() {
            Ok(v) => Doctor {
                terraform: Some(tf.path.display().to_string()),
                flavor: Some(v.flavor.to_string()),
                supported: v.is_supported(),
                problem: (!v.is_supported()).then(|| {
                    format!(
                        "version {} is older than {}.{}",
                        v.text,
                        crate::terraform::binary::MIN_VERSION.0,
                        crate::terraform::binary::MIN_VERSION.1
                    )
                }),
                version: Some(v.text),
            },
            Err(e) => Doctor {
                terraform: Some(tf.path.display().to_string()),
                flavor: None,
                version: None,
                supported: false,
                problem: Some(e.to_string()),
            },
        },
    }
}

/// Writes each account's outcome to the deployment ledger.
fn record(
    session: &Session,
    operation: Operation,
    results: &[AccountResult],
    digests: &BTreeMap<String, String>,
) -> Vec<String> {
    let project = session.project();
    results
        .iter()
        .filter_map(|result| {
            // The account as this session ran it (a migration's build runs it in its new slot).
            let ran = session.checked.trees.iter().map(|(a, _)| a.as_ref()).find(|a| a.name == result.account);
            let account = ran.or_else(|| project.accounts.iter().find(|a| a.name == result.account))?;
            let digest = digests.get(&account.name).map_or("", String::as_str);
            record_one(session.store(), &session.checked.version, operation, account, result, digest)
        })
        .collect()
}

/// Writes one account's outcome to the deployment ledger; a warning when that fails.
fn record_one(
    store: &dyn crate::store::Store,
    version: &crate::version::BuildVersion,
    operation: Operation,
    account: &Account,
    result: &AccountResult,
    digest: &str,
) -> Option<String> {
    let smoke: Vec<&HookResult> = result.hooks.iter().filter(|h| h.kind == HookKind::SmokeTest).collect();
    let smoke_tests_passed = (!smoke.is_empty()).then(|| smoke.iter().all(|h| h.passed));
    let outcome = match (&result.error, smoke_tests_passed) {
        (Some(_), _) => Outcome::Failed,
        (None, Some(false)) => Outcome::SmokeFailed,
        _ if !result.succeeded() => Outcome::Failed,
        _ => Outcome::Succeeded,
    };
    let entry = crate::ledger::Record {
        time: crate::ledger::now(),
        account: account.name.clone(),
        environment: account.environment().to_string(),
        operation,
        outcome,
        smoke_tests_passed,
        version: version.version.clone(),
        environment_version: version.environment_version(),
        commit: version.commit.clone(),
        digest: digest.to_string(),
        who: crate::ledger::who(),
        slot: (account.slot != crate::config::Slot::Blue).then_some(account.slot),
        created_at: account.is_ephemeral().then(|| {
            account.created_at.clone().unwrap_or_else(|| crate::ephemeral::format_time(crate::ephemeral::run_started()))
        }),
    };
    // A ledger that cannot be written must not hide that the deployment happened.
    store
        .append(&entry)
        .err()
        .map(|e| format!("cannot record the {operation} of `{}` in the ledger: {e}", account.name))
}
