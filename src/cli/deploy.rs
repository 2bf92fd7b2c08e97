//! `stamp plan`, `apply`, `destroy`, `output` and `doctor`: the commands that run Terraform.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Output;
use super::exit::ExitStatus;
use super::progress::Shown;
use crate::ops::deploy::{self, ApplyOptions, Approver, DeployOptions, DeployReport};
use crate::ops::{Named, Workspace, Written};
use crate::report::deploy as deploy_report;
use crate::report::plan::{self as plan_report, PlanReport};

/// GitHub's comment limit is 65,536 characters; stay under it.
const MARKDOWN_LIMIT: usize = 65_000;

/// Which accounts, which Terraform, how many at once.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// Accounts (names or YAML files).
    #[arg(value_name = "ACCOUNT")]
    pub(super) accounts: Vec<String>,
    /// Every account of the project.
    #[arg(long, conflicts_with = "accounts")]
    all: bool,
    /// How many accounts to run at once (at most 256).
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 4)]
    jobs: usize,
    /// Release version to stamp (default: the development version 0.0.YYDDD.SSSSS).
    #[arg(long = "version", value_name = "VERSION", env = "STAMP_VERSION")]
    release: Option<String>,
    #[command(flatten)]
    terraform: super::TerraformArg,
    /// Run from an artifact built by `stamp build` (verified first) instead of the working tree.
    #[arg(long, value_name = "FILE", conflicts_with = "all")]
    artifact: Option<PathBuf>,
}

impl Target {
    /// The ACCOUNT arguments.
    pub(super) fn accounts(&self) -> &[String] {
        &self.accounts
    }

    /// Names no account at all (a usage error).
    fn is_empty(&self) -> bool {
        self.accounts.is_empty() && !self.all && self.artifact.is_none()
    }

    fn options(&self) -> DeployOptions {
        DeployOptions {
            accounts: self.accounts.clone(),
            all: self.all,
            version: self.release.clone(),
            terraform: self.terraform.path(),
            jobs: self.jobs,
            artifact: self.artifact.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Markdown,
    Json,
}

/// Render, init and plan accounts, and summarise what would change.
///
/// Each account runs in its own work folder under `.stamp/work/`, with Terraform's output in
/// `.stamp/logs/<account>.log`. The archetype's and account's `policies:` run on each planned
/// account and their findings are shown with the plan. Exit codes follow `terraform plan
/// -detailed-exitcode`: 0 no changes, 2 changes, 1 error or failed policy checks.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp plan local-staging\n  stamp plan --all -j 8 --format markdown > plan.md\n  stamp plan production --out production.plan   # then: stamp apply --plan production.plan\n\nPolicy checks (`policies:`) run after each plan: a finding no waiver covers makes `plan` exit 1\nand refuses `apply`. Providers are installed once per run into Stamp's provider cache\n(~/.cache/stamp/providers; STAMP_PROVIDER_CACHE=DIR, or off)."
)]
pub struct PlanArgs {
    #[command(flatten)]
    pub(super) target: Target,
    /// Report format; markdown is ready to paste as a pull-request comment.
    #[arg(long, value_enum, default_value = "text")]
    format: PlanFormat,
    /// Save the plan (one account) for `stamp apply --plan FILE`.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Where the full markdown report goes when the comment is cut to fit, relative to the
    /// working folder like every path given [default: `.stamp/reports/plan.md` in the project].
    #[arg(long, value_name = "FILE")]
    report_file: Option<PathBuf>,
    /// Plan only the accounts whose rendered output changed since this git revision.
    #[arg(long, value_name = "REV", conflicts_with_all = ["accounts", "all"])]
    affected_since: Option<String>,
}

/// Where `plan --format markdown` writes its full report unless told: in the project.
const REPORT_FILE: &str = ".stamp/reports/plan.md";

pub fn plan(workspace: &Workspace, args: &PlanArgs, out: &Output) -> ExitStatus {
    if args.target.is_empty() && args.affected_since.is_none() {
        return no_target(out, "plan");
    }
    // What it writes where the user says: the saved plan, and the markdown report's full text.
    let project = &workspace.project;
    let saved = args.out.as_deref().map(|out| (out.to_path_buf(), Named::Given("--out", out)));
    let report_file = args.report_file.as_deref();
    let report_path = match report_file {
        Some(given) => std::env::current_dir().unwrap_or_default().join(given),
        None => project.root.join(REPORT_FILE),
    };
    let report = (args.format == PlanFormat::Markdown).then(|| {
        let named = report_file
            .map_or(Named::Default("report file", REPORT_FILE), |given| Named::Given("--report-file", given));
        (report_path.clone(), named)
    });
    for (path, named) in saved.into_iter().chain(report) {
        if let Err(problem) = crate::ops::outside_own_folder(project, &path, named, Written::Entry) {
            let hint = match named {
                Named::Default(..) => "pass `--report-file FILE` to write it elsewhere",
                Named::Given(..) => "write it elsewhere",
            };
            out.error(&format!("{problem}: {hint}"));
            return ExitStatus::Failure;
        }
    }
    let mut options = args.target.options();
    if let Some(since) = &args.affected_since {
        match crate::ops::affected::affected(workspace, since) {
            Ok(found) if found.to_plan().is_empty() => {
                out.status(&format!("no account is affected since `{since}`: nothing to plan"));
                return ExitStatus::Success;
            }
            Ok(found) => options.accounts = found.to_plan(),
            Err(error) => return super::show_error(out, &error),
        }
    }
    let progress = Shown::new(out.quiet);
    let result = deploy::plan(workspace, &options, args.out.as_deref(), &progress);
    progress.finish();
    let report = match result {
        Ok(report) => report,
        Err(error) => return super::show_error(out, &error),
    };
    for warning in &report.warnings {
        out.warning(warning);
    }
    match args.format {
        PlanFormat::Text => out.report(&plan_report::text(&report)),
        PlanFormat::Json => out.report(&plan_report::json(&report)),
        PlanFormat::Markdown => {
            let full = plan_report::markdown(&report, usize::MAX, None);
            let written = report_path
                .parent()
                .map_or(Ok(()), fs_err::create_dir_all)
                .and_then(|()| crate::fsio::write_atomic(&report_path, full.as_bytes()));
            let shown = report_file.map_or_else(|| REPORT_FILE.to_string(), |given| given.display().to_string());
            out.report(&plan_report::markdown(&report, MARKDOWN_LIMIT, written.is_ok().then_some(shown.as_str())));
        }
    }
    if let Some(path) = &args.out
        && report.exit_code() != 1
    {
        out.status(&format!(
            "saved the plan to `{}`; apply it with `stamp apply --plan {}`",
            path.display(),
            path.display()
        ));
    }
    match report.exit_code() {
        0 => ExitStatus::Success,
        2 => ExitStatus::Found,
        _ => ExitStatus::Failure,
    }
}

/// Plan, show the summary, ask, then apply exactly that plan, run post-deploy hooks and smoke
/// tests.
///
/// Without a terminal to ask on, `apply` refuses unless `--auto-approve` is given. A plan that
/// destroys or replaces a stateful resource (database, bucket, hosted zone) of a protected
/// account is refused unless `--confirm <account>` names it. When a smoke test of an
/// `ephemeral: true` account fails, what was created is destroyed unless `--keep-on-failure`.
/// When an account's policy checks fail (a finding not waived in its `policy_waivers:`, or a
/// policy that failed to run), nothing is applied. Accounts are not held while the plans wait
/// for approval (except with `--plan` or `--artifact`): an account that another run used, or
/// whose state or files changed, meanwhile is refused ("plan it again") and the others are
/// applied.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp apply local-staging\n  stamp apply local-staging --auto-approve\n  stamp apply --plan production.plan\n  stamp apply production --confirm production   # a plan that replaces a database"
)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub(super) target: Target,
    /// Apply without asking.
    #[arg(long)]
    auto_approve: bool,
    /// Allow losing stateful resources of this protected account.
    #[arg(long, value_name = "ACCOUNT")]
    confirm: Option<String>,
    /// Keep an ephemeral account whose smoke tests failed.
    #[arg(long)]
    keep_on_failure: bool,
    /// Apply a plan saved by `stamp plan --out FILE`.
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
}

/// The usage error for a command that names no account.
fn no_target(out: &Output, command: &str) -> ExitStatus {
    out.error(&format!("name the accounts to {command}, or pass `--all` (or `--artifact FILE`)"));
    ExitStatus::Usage
}

pub fn apply(workspace: &Workspace, args: &ApplyArgs, out: &Output) -> ExitStatus {
    if args.target.is_empty() && args.plan.is_none() {
        return no_target(out, "apply");
    }
    let options = ApplyOptions {
        deploy: args.target.options(),
        confirm: args.confirm.clone(),
        keep_on_failure: args.keep_on_failure,
        saved_plan: args.plan.clone(),
    };
    with_prompt(out, args.auto_approve, |approver, progress| deploy::apply(workspace, &options, approver, progress))
}

/// Destroy accounts' infrastructure.
///
/// Accounts marked `protected: true` are refused unless `--confirm <account>` names them; others
/// need `--auto-approve` or a `yes` on a terminal.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp destroy local-staging\n  stamp destroy local-staging --auto-approve\n  stamp destroy local-prod --confirm local-prod"
)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub(super) target: Target,
    /// Destroy without asking.
    #[arg(long)]
    auto_approve: bool,
    /// Needed to destroy a protected account: its name.
    #[arg(long, value_name = "ACCOUNT")]
    confirm: Option<String>,
}

pub fn destroy(workspace: &Workspace, args: &DestroyArgs, out: &Output) -> ExitStatus {
    if args.target.is_empty() {
        return no_target(out, "destroy");
    }
    let options =
        ApplyOptions { deploy: args.target.options(), confirm: args.confirm.clone(), ..ApplyOptions::default() };
    // `--confirm <account>` is an explicit yes for that account.
    let confirmed = args.confirm.is_some()
        && args.target.accounts.len() == 1
        && args.confirm.as_ref() == args.target.accounts.first();
    with_prompt(out, args.auto_approve || confirmed, |approver, progress| {
        deploy::destroy(workspace, &options, approver, progress)
    })
}

/// Runs a deployment with progress and a prompt, then prints what it did.
fn with_prompt(
    out: &Output,
    auto_approve: bool,
    run: impl FnOnce(&Prompt<'_>, &Shown) -> Result<DeployReport, crate::ops::deploy::DeployError>,
) -> ExitStatus {
    let progress = Shown::new(out.quiet);
    let approver = Prompt::new(auto_approve, out, &progress);
    let result = run(&approver, &progress);
    progress.finish();
    finish(result, out, &approver)
}

pub(super) fn finish(
    result: Result<DeployReport, crate::ops::deploy::DeployError>,
    out: &Output,
    approver: &Prompt<'_>,
) -> ExitStatus {
    let report = match result {
        Ok(report) => report,
        Err(error) => return super::show_error(out, &error),
    };
    if !approver.shown.swap(false, Ordering::SeqCst) && !report.plan.accounts.is_empty() {
        out.report(&plan_report::text(&report.plan));
    }
    if let Some(refusal) = &report.refused {
        out.error(refusal);
        return ExitStatus::Failure;
    }
    for warning in &report.warnings {
        out.warning(warning);
    }
    out.report(&deploy_report::results_text(&report));
    ExitStatus::failed_if(!report.succeeded())
}

/// Asks on the terminal, or refuses without one unless told to go ahead.
pub(super) struct Prompt<'a> {
    auto_approve: bool,
    out: &'a Output,
    progress: &'a Shown,
    /// The plan was printed when approval was asked for (so it is not printed twice).
    shown: AtomicBool,
    /// Show plans on stderr: stdout carries a machine-readable report.
    plans_to_stderr: bool,
}

impl<'a> Prompt<'a> {
    pub(super) fn new(auto_approve: bool, out: &'a Output, progress: &'a Shown) -> Self {
        Self { auto_approve, out, progress, shown: AtomicBool::new(false), plans_to_stderr: false }
    }

    /// Shows plans on stderr (and not with `--quiet`), for commands printing JSON.
    #[must_use]
    pub(super) fn plans_to_stderr(mut self, yes: bool) -> Self {
        self.plans_to_stderr = yes;
        self
    }
}

impl Approver for Prompt<'_> {
    fn approve(&self, report: &PlanReport) -> Result<(), String> {
        self.progress.finish();
        if self.plans_to_stderr {
            self.out.status(plan_report::text(report).trim_end());
        } else {
            self.out.report(&plan_report::text(report));
        }
        self.shown.store(true, Ordering::SeqCst);
        if self.auto_approve {
            return Ok(());
        }
        let verb = deploy_report::verb(&report.operation);
        if !std::io::stdin().is_terminal() {
            return Err(format!(
                "refusing to {verb} without a terminal to ask on: pass `--auto-approve` to {verb} without asking"
            ));
        }
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\nDo you want to {verb} these changes? Only `yes` is accepted: ");
        let _ = stderr.flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if answer.trim() == "yes" {
            Ok(())
        } else {
            Err(format!("not approved: nothing was {}", if verb == "apply" { "applied" } else { "destroyed" }))
        }
    }
}

/// Print the `stamp` output of an account's live state: version, commit and digests.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  stamp output local-prod\n  stamp output local-prod | jq -r .environment_version")]
pub struct OutputArgs {
    #[command(flatten)]
    pub(super) target: Target,
}

pub fn output(workspace: &Workspace, args: &OutputArgs, out: &Output) -> ExitStatus {
    if args.target.is_empty() {
        return no_target(out, "read");
    }
    let progress = Shown::new(true);
    match deploy::output(workspace, &args.target.options(), &progress) {
        Ok(value) => {
            out.report(&format!("{}\n", serde_json::to_string_pretty(&value).expect("json")));
            ExitStatus::Success
        }
        Err(error) => super::show_error(out, &error),
    }
}

/// Show which Terraform binary Stamp uses, its version, and whether it is supported.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  stamp doctor\n  stamp doctor --terraform /usr/local/bin/tofu")]
pub struct DoctorArgs {
    #[command(flatten)]
    terraform: super::TerraformArg,
}

pub fn doctor(args: &DoctorArgs, out: &Output) -> ExitStatus {
    let found = deploy::doctor(args.terraform.path().as_deref());
    out.report(&deploy_report::doctor_text(&found));
    if let Some(problem) = &found.problem {
        out.error(problem);
    }
    ExitStatus::failed_if(!found.supported)
}

/// Promote a version to the next stage of the promotion chain (`promotion:` in `stamp.yaml`).
///
/// Refused unless the deployment ledger shows the same version applied and smoke-tested
/// successfully in every earlier stage. Then the target stage's artifacts of that version are
/// built and applied: build once, promote unchanged.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp promote 1.4.0 --to staging\n  stamp promote 1.4.0 --to production --auto-approve"
)]
pub struct PromoteArgs {
    /// The version to promote.
    version: String,
    /// The environment (stage) to promote to.
    #[arg(long, value_name = "ENVIRONMENT")]
    to: String,
    /// Apply without asking.
    #[arg(long)]
    auto_approve: bool,
    #[command(flatten)]
    terraform: super::TerraformArg,
}

pub fn promote(workspace: &Workspace, args: &PromoteArgs, out: &Output) -> ExitStatus {
    let options = crate::ops::promote::PromoteOptions {
        version: args.version.clone(),
        to: args.to.clone(),
        terraform: args.terraform.path(),
    };
    let progress = Shown::new(out.quiet);
    let approver = Prompt::new(args.auto_approve, out, &progress);
    let result = crate::ops::promote::promote(workspace, &options, &approver, &progress);
    progress.finish();
    match result {
        Err(error) => super::show_error(out, &error),
        Ok(reports) => {
            let mut failed = false;
            for report in reports {
                failed |= finish(Ok(report), out, &approver) != ExitStatus::Success;
            }
            ExitStatus::failed_if(failed)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DriftFormat {
    Text,
    Markdown,
    Json,
    Html,
}

/// Report, per account: the deployed version (from the live state), how far behind the current
/// version it is, whether the live infrastructure drifted from what was deployed, and how it
/// differs from the reference account in ways its archetype does not allow.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp drift\n  stamp drift staging qa --reference production\n  stamp drift --format html --out drift.html"
)]
pub struct DriftArgs {
    /// Accounts (default: every account).
    #[arg(value_name = "ACCOUNT")]
    pub(super) accounts: Vec<String>,
    /// The account production-like accounts are compared with (default: `production`).
    #[arg(long, value_name = "ACCOUNT")]
    reference: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: DriftFormat,
    /// Write the report to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    terraform: super::TerraformArg,
}

impl DriftArgs {
    /// The named accounts and the reference (with no account named, every account is read
    /// from the catalog one at a time).
    pub(super) fn loads_only(&self) -> Vec<String> {
        let reference = self.reference.clone().unwrap_or_else(|| crate::ops::drift::DEFAULT_REFERENCE.to_string());
        self.accounts.iter().cloned().chain([reference]).collect()
    }
}

pub fn drift(workspace: &Workspace, args: &DriftArgs, out: &Output) -> ExitStatus {
    use crate::report::drift as formats;
    if let Some(path) = &args.out
        && let Err(problem) =
            crate::ops::outside_own_folder(&workspace.project, path, Named::Given("--out", path), Written::Entry)
    {
        out.error(&format!("{problem}: write it elsewhere"));
        return ExitStatus::Failure;
    }
    let options = crate::ops::drift::DriftOptions {
        accounts: args.accounts.clone(),
        reference: args.reference.clone(),
        terraform: args.terraform.path(),
    };
    let progress = Shown::new(out.quiet);
    let result = crate::ops::drift::drift(workspace, &options, &progress);
    progress.finish();
    let report = match result {
        Ok(report) => report,
        Err(error) => return super::show_error(out, &error),
    };
    let text = match args.format {
        DriftFormat::Text => formats::text(&report),
        DriftFormat::Markdown => formats::markdown(&report),
        DriftFormat::Json => formats::json(&report),
        DriftFormat::Html => formats::html(&report),
    };
    match &args.out {
        Some(path) => {
            if let Err(e) = crate::fsio::write_atomic(path, text.as_bytes()) {
                out.error(&format!("cannot write `{}`: {e}", path.display()));
                return ExitStatus::Failure;
            }
            out.status(&format!("wrote the drift report to `{}`", path.display()));
        }
        None => out.report(&text),
    }
    ExitStatus::Success
}
