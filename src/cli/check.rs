//! `stamp check`.

use super::exit::ExitStatus;
use super::{Format, Output};
use crate::diagnostics;
use crate::ops::Workspace;
use crate::ops::check::{CheckOptions, CheckReport, check};

/// Validate account configs and render them in memory, reporting every problem found.
///
/// Each account's effective config (stamp.yaml defaults <- archetype defaults <- account file)
/// is validated against its archetype's JSON Schema; accounts are checked against each other
/// (unique names, account ids and DNS zones; no overlapping CIDRs); then each account is
/// rendered in memory and every file is checked to be valid HCL. A file outside the accounts
/// folder is checked in the context of the project's accounts.
///
/// Only what changed is checked again: a named account is loaded whole, the others are known
/// from the build cache in `.stamp/cache/`, and an account whose clean check is cached under
/// exactly its inputs is not rendered again. `--no-cache` gives the same answer, in the time
/// of the whole work.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  stamp check\n  stamp check production staging\n  stamp check new-account.yaml\n  stamp check --format json\n  stamp check --policies production   # also checkov & co. on the rendered tree\n  stamp --no-cache check"
)]
pub struct Args {
    /// Accounts to check (names or YAML files). Default: every account.
    #[arg(value_name = "ACCOUNT")]
    pub(super) accounts: Vec<String>,
    /// Report format: `text` (diagnostics on stderr) or `json` (on stdout).
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Release version to stamp (default: the development version 0.0.YYDDD.SSSSS). Without
    /// `--policies`, only a blueprint whose templates read `stamp.version`, `stamp.commit` or
    /// `stamp.environment_version` is rendered with it (and git asked for the commit): for the
    /// others, the version cannot change what `check` finds.
    #[arg(long = "version", value_name = "VERSION", env = "STAMP_VERSION")]
    release: Option<String>,
    /// Also run the archetypes' and accounts' `on: tree` policies (checkov, ...) on each
    /// rendered tree: a finding no `policy_waivers:` entry covers, or a policy that fails to
    /// run, is an error. `on: plan` policies run with `stamp plan`.
    #[arg(long)]
    policies: bool,
}

impl Args {
    pub(super) fn policies(&self) -> bool {
        self.policies
    }

    /// A check of every account without policies begins while the project loads (see
    /// [`crate::ops::check::Prerender`]).
    pub(super) fn prerender(&self) -> Option<crate::ops::check::Prerender<'_>> {
        (self.accounts.is_empty() && !self.policies)
            .then_some(crate::ops::check::Prerender { version: self.release.as_deref() })
    }
}

pub fn run(workspace: &Workspace, args: &Args, out: &Output) -> ExitStatus {
    let options =
        CheckOptions { accounts: args.accounts.clone(), version: args.release.clone(), policies: args.policies };
    let report = check(workspace, &options);
    print(args, &report, out)
}

/// The project did not load (a broken `stamp.yaml`): its diagnostics, as `check` reports.
pub fn not_loaded(args: &Args, report: &crate::diagnostics::Report, out: &Output) -> ExitStatus {
    let report = CheckReport {
        accounts_checked: 0,
        accounts_rendered: 0,
        diagnostics: report.diagnostics.clone(),
        sources: report.sources.clone(),
    };
    print(args, &report, out)
}

fn print(args: &Args, report: &CheckReport, out: &Output) -> ExitStatus {
    match args.format {
        Format::Json => out.report(&diagnostics::render_json(&report.diagnostics)),
        Format::Text => {
            out.diagnostics(&report.diagnostics, &report.sources);
            if report.errors() == 0 {
                let n = report.accounts_checked;
                out.status(&format!("checked {n} account{}: no problems found", if n == 1 { "" } else { "s" }));
            }
        }
    }
    ExitStatus::failed_if(report.errors() > 0)
}
